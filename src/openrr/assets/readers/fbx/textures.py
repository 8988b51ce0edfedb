"""The images an FBX material uses: embedded in the file, or files beside it, confined to the model's folder.

Apart from the materials because this is where file names from the model meet the file system. A name is
tried as the file gives it (relative, without ``..``), then by its base name in the model's folder, where
exporters' absolute paths (``D:\\textures\\wood.jpg``) usually end up; a path that resolves outside the
folder (``..``, an absolute path, a symbolic link leading out) is never opened. Last, a file of the folder
whose name differs only in letter case is taken, as Windows (where most FBX files are made) would. A
texture that cannot be found or decoded is a warning and the material goes without it; one past the pixel
allowance fails the conversion, from its header alone.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import PIL.Image
from numpy.typing import NDArray

from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.assets.readers.fbx import native
from openrr.model.budget import Allowance, BudgetExceeded
from openrr.model.errors import ModelLoadError
from openrr.model.images import FORMATS as IMAGE_FORMATS
from openrr.model.images import decode_image

MAX_TEXTURE_FILE_BYTES = 256 << 20  # one image file, compressed
MAX_EMBEDDED = 1 << 14
MAX_FOLDER_ENTRIES = 10_000  # looked through for a texture named in other letter cases

Image = NDArray[np.uint8]


class Textures:
    """The images of one FBX file, each decoded once, within ``allowance``."""

    def __init__(self, job: Job, model: Path, scene: Any, allowance: Allowance) -> None:
        self.job = job
        self.model = model
        self.folder = model.parent.resolve()
        self.allowance = allowance
        self.decoded: dict[str, Image | None] = {}
        count = int(scene.mNumTextures)
        if count > MAX_EMBEDDED:
            raise ConversionFailed(f"{model.name} embeds {count} textures, more than {MAX_EMBEDDED}")
        self.embedded = [native.embedded_texture(scene.mTextures[i].contents) for i in range(count)]
        # By the whole name, else by its base name, as the material names it (assimp's own matching).
        self.by_name: dict[str, int] = {}
        for i, (name, _) in enumerate(self.embedded):
            if not name:
                continue
            self.by_name.setdefault(_normalised(name), i)
            self.by_name.setdefault(_normalised(name).rsplit("/", 1)[-1], i)

    def image(self, name: str, material: str) -> Image | None:
        """The RGBA pixels of the texture the material names ``name`` (``*N``: the N-th embedded one);
        None, with a warning, where it is missing or unreadable."""
        if name not in self.decoded:
            self.decoded[name] = self._load(name, f"texture {name!r} of material {material!r}")
        return self.decoded[name]

    def _load(self, name: str, what: str) -> Image | None:
        index = self._embedded_index(name)
        if index is not None:
            return self._decode(self.embedded[index][1], what)
        path = self._beside(name)
        if path is None:
            self.job.warn(
                "TextureMissing",
                "Texture not found",
                f"{what} is neither embedded in {self.model.name} nor a file in its folder; left out",
            )
            return None
        try:
            if path.stat().st_size > MAX_TEXTURE_FILE_BYTES:
                raise ConversionFailed(f"{what}: {path.name} is larger than {MAX_TEXTURE_FILE_BYTES} bytes")
            data = path.read_bytes()
        except OSError as exc:
            self.job.warn("TextureUnreadable", "Texture unreadable", f"{what}: {exc.strerror}; left out")
            return None
        return self._decode(data, what)

    def _embedded_index(self, name: str) -> int | None:
        if name.startswith("*") and name[1:].isdigit():
            index = int(name[1:])
            return index if index < len(self.embedded) else None
        key = _normalised(name)
        return self.by_name.get(key, self.by_name.get(key.rsplit("/", 1)[-1]))

    def _beside(self, name: str) -> Path | None:
        """The file ``name`` means, inside the model's folder, or None."""
        given = PurePosixPath(name.replace("\\", "/"))
        drive = len(name) > 1 and name[1] == ":"
        candidates = [given] if not given.is_absolute() and not drive and ".." not in given.parts else []
        candidates.append(PurePosixPath(given.name))
        for candidate in candidates:
            if not candidate.name or candidate.name in (".", ".."):
                continue
            path = (self.folder / candidate).resolve()
            if path.is_relative_to(self.folder) and path.is_file():
                return path
        return self._any_case(given.name)

    def _any_case(self, name: str) -> Path | None:
        """A file of the model's folder named ``name`` in other letter cases (models written on Windows
        name ``wood.JPG`` what lies beside them as ``wood.jpg``); the folder's first entries only."""
        wanted = name.lower()
        try:
            entries = list(itertools.islice(self.folder.iterdir(), MAX_FOLDER_ENTRIES))
        except OSError:
            return None
        for entry in entries:
            if entry.name.lower() == wanted:
                path = entry.resolve()
                if path.is_relative_to(self.folder) and path.is_file():
                    return path
        return None

    def _decode(self, content: bytes | Image, what: str) -> Image | None:
        if isinstance(content, np.ndarray):  # texels assimp decoded itself
            self._take(content.shape[1], content.shape[0], what)
            return content
        try:
            with PIL.Image.open(io.BytesIO(content), formats=IMAGE_FORMATS) as header:
                width, height = header.size
        except PIL.Image.DecompressionBombError:  # where Pillow's own limit is on (openrr's loader lifts it)
            raise ConversionFailed(
                f"{what}: the image is too large to decode", code="InputTooLarge"
            ) from None
        except (OSError, ValueError, SyntaxError) as exc:
            self.job.warn(
                "TextureUnreadable", "Texture unreadable", f"{what}: {type(exc).__name__}; left out"
            )
            return None
        self._take(width, height, what)
        try:
            # The allowance is counted above, from the header: an unlimited one here decodes what it let in.
            return decode_image(content, Allowance(), what)
        except ModelLoadError as exc:
            self.job.warn("TextureUnreadable", "Texture unreadable", f"{exc.message}; left out")
            return None

    def _take(self, width: int, height: int, what: str) -> None:
        try:
            self.allowance.take_texture(width, height, what)
        except BudgetExceeded as exc:
            raise ConversionFailed(exc.message, code="InputTooLarge") from None


def _normalised(name: str) -> str:
    return name.replace("\\", "/").lower()
