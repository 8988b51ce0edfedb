"""Image files a client names on their own (a texture, a sky): read under the session's model source policy
and decoded within a pixel allowance, as the images a model references are.

Apart from ``loader.py``, which reads whole models through trimesh: an image here is one file, so it is
fetched directly (a local file inside the model roots, or an http(s) URL whose every request is checked and
pinned as a model's are, ``openrr.model.fetch``) and decoded by Pillow, whose header gives the size that
is checked against the ``Allowance`` before a single pixel is decoded (a decompression bomb is refused
while it is still a few bytes; Pillow's own process-wide bomb limit is off, see ``loader.py``).

Blocking (name lookups, downloads, decoding): call these off the event loop and off the GL thread.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import PIL.Image
from numpy.typing import NDArray

from openrr.model.budget import Allowance, BudgetExceeded
from openrr.model.errors import ModelLoadError
from openrr.model.fetch import pinned_client
from openrr.model.sources import CheckedURL, ModelSourcePolicy, display_name

DEFAULT_MAX_BYTES = 64 * 2**20  # an image file, compressed
DEFAULT_TIMEOUT = 30.0
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TGA")  # what glTF and the usual sky panoramas come as


def read_image_file(
    url: str,
    policy: ModelSourcePolicy,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
) -> bytes:
    """The bytes of the image at ``url`` (a path, ``file:`` or http(s) URL). Raises ``SourceRefused``
    outside the policy and ``ModelLoadError`` when it cannot be read or exceeds ``max_bytes``."""
    checked = policy.guard(url)  # SourceRefused
    if isinstance(checked, CheckedURL):
        return _download(checked, policy, max_bytes, timeout)
    path = Path(checked)
    try:
        if not path.is_file():
            raise ModelLoadError(f"{display_name(url)}: no such image file")
        if path.stat().st_size > max_bytes:
            raise ModelLoadError(f"{display_name(url)}: the image file exceeds {max_bytes} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"{display_name(url)}: cannot read the image ({exc.strerror})") from None


def _download(checked: CheckedURL, policy: ModelSourcePolicy, max_bytes: int, timeout: float) -> bytes:
    name = display_name(checked.url)
    guard = policy.guard_after(checked)  # redirects are checked (and pinned) again
    try:
        with pinned_client(timeout, guard) as client, client.stream("GET", checked.url) as response:
            if response.status_code >= 400:
                raise ModelLoadError(f"{name}: the server answered HTTP {response.status_code}")
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise ModelLoadError(f"{name}: the image file exceeds {max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise ModelLoadError(f"{name}: download failed: {type(exc).__name__}") from None


def decode_image(data: bytes, allowance: Allowance, what: str) -> NDArray[np.uint8]:
    """The image in ``data`` as RGBA uint8 (H, W, 4), row 0 first, its pixels taken from ``allowance``
    (refused past it from the header alone). ``ModelLoadError`` for that and anything undecodable."""
    try:
        with PIL.Image.open(io.BytesIO(data), formats=FORMATS) as image:
            allowance.take_texture(image.width, image.height, what)
            rgba = np.ascontiguousarray(np.asarray(image.convert("RGBA"), dtype=np.uint8))
    except BudgetExceeded as exc:
        raise ModelLoadError(exc.message) from None
    except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as exc:
        # PIL.UnidentifiedImageError is an OSError; truncated or corrupt data raise OSError or SyntaxError.
        raise ModelLoadError(f"{what}: not a readable image ({type(exc).__name__})") from None
    if rgba.ndim != 3 or rgba.shape[2] != 4 or 0 in rgba.shape:
        raise ModelLoadError(f"{what}: not a readable image (shape {rgba.shape})")
    return rgba
