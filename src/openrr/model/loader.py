"""Load glTF 2.0 models (.gltf with external or embedded resources, .glb) and openrr's converted
``.arrAsset`` files (``openrr.model.arrasset``, recognised by content or name) into a ``Scene``.

Sources are local paths (``file://`` URLs too) and http(s) URLs. Every failure, whatever its cause (a
missing file, a bad download, broken JSON or binary data, a size limit), raises ``ModelLoadError`` with a
message fit for a client; no trimesh, JSON or httpx exception escapes.

Textures and geometry are counted against an ``Allowance`` (``openrr.model.budget``) before they are
decoded or copied: a texture by its image header, so a small PNG that decodes to gigabytes is refused.

Each glTF node keeps its ``extras`` as object metadata (``Node.metadata``), every key unless the caller's
``MetadataKeeper`` selects (the converter applies ``metadataKeys`` that way), within a per-model limit
(``openrr.model.metadata``); an ``.arrAsset`` holds what its conversion kept.

Parsing is trimesh's (fast for files with thousands of nodes, unlike pygltflib); turning trimesh's scene
into a ``Scene`` is ``openrr.model.trimesh_scene``'s. This module finds, fetches, checks and parses the bytes.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlparse

import httpx
import PIL.Image
import trimesh
from trimesh.resolvers import FilePathResolver, Resolver

from openrr.model.arrasset.layout import MAGIC
from openrr.model.arrasset.reader import read_asset
from openrr.model.budget import Allowance, BudgetExceeded, default_allowance, usage
from openrr.model.builtin import builtin_scene
from openrr.model.errors import ModelLoadError
from openrr.model.fetch import pinned_client, unchecked
from openrr.model.gltf_extensions import prepare
from openrr.model.gltf_extensions_materials import MaterialExtension
from openrr.model.metadata import MetadataKeeper
from openrr.model.scene import Scene
from openrr.model.sources import quote_url
from openrr.model.trimesh_scene import ProgressCallback, convert_trimesh
from openrr.protocol.builtin_models import is_builtin

log = logging.getLogger("openrr.model.loader")

# Pillow's own bomb check (a warning past 89 Mpx, an error past twice that) is replaced by the allowance,
# which is checked from the header before any pixel is decoded: trimesh swallows Pillow's error and drops
# the texture without a word, and Pillow's limit is process-wide and not per session. Image.open stays lazy.
PIL.Image.MAX_IMAGE_PIXELS = None

DEFAULT_MAX_BYTES = 1 << 30  # the model file plus everything it references
DEFAULT_TIMEOUT = 30.0


class _Budget:
    """Bytes still allowed for one model, shared by the main file and its external resources."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int, what: str) -> None:
        self.used += size
        if self.used > self.limit:
            raise ModelLoadError(f"{what}: the model exceeds the size limit of {self.limit} bytes")


class _LocalResolver(FilePathResolver):
    """trimesh's resolver (confined to the model's folder) plus percent-decoding and the size budget."""

    def __init__(self, path: Path, budget: _Budget, guard: Callable[[str], object] | None) -> None:
        super().__init__(str(path))
        self.folder = path.parent
        self.budget = budget
        self.guard = guard
        self.failures: list[str] = []

    def get(self, name: str) -> bytes:
        # As written, percent-decoded, and with Windows separators ("map_Kd .\\wood.jpg" in MTL files
        # made on Windows), each checked by the guard before it is opened.
        candidates = list(dict.fromkeys([name, unquote(name), unquote(name).replace("\\", "/")]))
        problem: Exception | None = None
        for candidate in candidates:
            if self.guard is not None:  # "../../etc/passwd" or a symlink out of the allowed folders
                _guarded(self.guard, str(self.folder / candidate))
            try:
                data: bytes = super().get(candidate)
            except FileNotFoundError as exc:
                problem = exc  # try the next spelling
            except (OSError, ValueError) as exc:
                problem = exc
                break
            else:
                self.budget.take(len(data), name)
                return data
        self.failures.append(f"{name}: {problem}")
        raise ModelLoadError(f"missing or unreadable resource {name!r}") from problem


class _HttpResolver(Resolver):
    """Fetches a .gltf's relative or absolute http(s) references with the same client and budget."""

    def __init__(
        self, base_url: str, client: httpx.Client, budget: _Budget, report: ProgressCallback
    ) -> None:
        self.base_url = base_url
        self.client = client
        self.budget = budget
        self.report = report
        self.failures: list[str] = []

    def progress(self, fraction: float, message: str) -> None:
        # Buffers and images are fetched while parsing, after the model's own download (0 to 0.5).
        self.report(0.5, "downloading resources")

    def get(self, key: str) -> bytes:
        url = urljoin(self.base_url, key)
        try:
            return _download(self.client, url, self.budget, self.progress)
        except ModelLoadError as exc:
            self.failures.append(exc.message)
            raise

    def write(self, name: str, data: Any) -> None:
        raise NotImplementedError("remote models are read-only")

    def namespaced(self, namespace: str) -> _HttpResolver:
        base = urljoin(self.base_url, namespace.rstrip("/") + "/")
        return _HttpResolver(base, self.client, self.budget, self.report)

    def keys(self) -> list[str]:
        return []


def _shown(location: str) -> str:
    """A location as messages show it: URLs without credentials, query or fragment (SAS tokens)."""
    if urlparse(location).scheme.lower() in ("http", "https"):
        return quote_url(location)
    return location


def _guarded(guard: Callable[[str], object], location: str) -> object:
    try:
        return guard(location)
    except Exception as exc:  # noqa: BLE001 - a guard refuses by raising, whatever it raises (see load_model)
        raise ModelLoadError(str(getattr(exc, "message", exc))) from None


def _download(client: httpx.Client, url: str, budget: _Budget, progress: ProgressCallback | None) -> bytes:
    if urlparse(url).scheme not in ("http", "https"):
        raise ModelLoadError(f"{_shown(url)}: only http(s) references are allowed in a remote model")
    try:
        with client.stream("GET", url) as response:
            if response.status_code >= 400:
                raise ModelLoadError(f"{_shown(url)}: the server answered HTTP {response.status_code}")
            total = int(response.headers.get("content-length") or 0)
            if total:
                budget.take(total, _shown(url))
                budget.used -= total  # counted for real as the bytes arrive
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes():
                budget.take(len(chunk), _shown(url))
                chunks.append(chunk)
                received += len(chunk)
                if progress is not None:
                    # Every chunk, even without a length: raising from progress is how a caller stops
                    # a download that trickles (its client left, its deadline passed).
                    progress(0.5 * min(received / total, 1.0) if total else 0.0, "downloading")
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise ModelLoadError(f"{_shown(url)}: download failed: {type(exc).__name__}") from exc


def load_model(
    source: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
    guard: Callable[[str], object] | None = None,
    allowance: Allowance | None = None,
    metadata: MetadataKeeper | None = None,
) -> Scene:
    """Load a glTF 2.0 model or an ``.arrAsset`` from a path or an http(s)/file URL into a new ``Scene``;
    a ``builtin://`` URL is generated (``openrr.model.builtin``; an unknown name is a ``ModelLoadError``).

    ``progress(fraction, message)`` is called with fractions rising from 0 to 1; an exception it raises
    aborts the load and propagates (use that to cancel). ``max_bytes`` bounds the file plus its
    external buffers and images; ``timeout`` bounds each network operation. Blocking: run it off the
    event loop. ``guard(location)`` is called before every HTTP request (the model, its buffers and
    images, every redirect) and before every local file a .gltf references, and refuses it by raising;
    the refusal becomes a ``ModelLoadError``. For a request, the ``CheckedURL`` it returns names the only
    addresses the connection may go to (``openrr.model.fetch``); without a guard, or with one that returns
    something else, the host is resolved once and that answer is used. Proxy variables are ignored.
    URLs in messages never show credentials or query strings.
    ``allowance`` bounds the model's decoded texture pixels and geometry bytes (default:
    ``openrr.model.budget.default_allowance``); what the model took is in ``allowance.used`` afterwards.
    ``metadata`` selects and bounds the glTF nodes' object metadata (default: every key, within
    ``openrr.model.metadata.MAX_METADATA_BYTES``; past the limit the remaining nodes keep none, logged
    as a warning, and ``metadata.overflow`` counts them).
    """
    if allowance is None:
        allowance = default_allowance()
    report = progress or (lambda fraction, message: None)
    if is_builtin(os.fspath(source)):  # generated here: no file, no network
        report(0.0, "generating")
        scene = builtin_scene(os.fspath(source), allowance)
        report(1.0, "loaded")
        return scene
    budget = _Budget(max_bytes)
    text = os.fspath(source)
    scheme = urlparse(text).scheme.lower() if "://" in text else ""
    report(0.0, "reading")
    if scheme in ("http", "https"):
        # Every request is checked, and connects only to the addresses its check saw (DNS rebinding).
        check_url = guard or unchecked
        with pinned_client(timeout, lambda url: _guarded(check_url, url)) as client:
            data = _download(client, text, budget, report)
            if _is_arrasset(data, text):
                return _load_arrasset(data, _shown(text), Path(urlparse(text).path).name, report, allowance)
            resolver: _LocalResolver | _HttpResolver = _HttpResolver(text, client, budget, report)
            loaded, extended = _parse(data, _shown(text), resolver, report, allowance)
        name = Path(urlparse(text).path).name
    elif scheme in ("", "file"):
        path = Path(unquote(urlparse(text).path) if scheme else text)
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        try:
            budget.take(path.stat().st_size, str(path))
            data = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if _is_arrasset(data, text):
            return _load_arrasset(data, str(path), path.name, report, allowance)
        loaded, extended = _parse(data, str(path), _LocalResolver(path, budget, guard), report, allowance)
        name = path.name
    else:
        raise ModelLoadError(f"unsupported model location {text!r}: use a file path or an http(s) URL")
    keeper = metadata or MetadataKeeper()
    scene = _scene(loaded, name, _shown(text), report, allowance, keeper, extended)
    report(1.0, "loaded")
    return scene


def _scene(
    loaded: trimesh.Scene,
    name: str,
    label: str,
    report: ProgressCallback,
    allowance: Allowance,
    metadata: MetadataKeeper,
    extended: dict[str, MaterialExtension],
) -> Scene:
    """The parsed model as a ``Scene``; its content's problems as ``ModelLoadError``. ``extended``: the
    glTF material extensions ``openrr.model.gltf_extensions`` found, by material marker."""
    try:
        scene = convert_trimesh(loaded, name, report, allowance, metadata, extended)
    except BudgetExceeded as exc:
        raise ModelLoadError(f"{label}: {exc.message}") from None
    except (ValueError, OSError, KeyError, IndexError, PIL.Image.DecompressionBombError) as exc:
        # Bad indices, undecodable or absurd images... (a progress callback's own exception propagates)
        raise ModelLoadError(f"{label}: invalid model content: {exc}") from exc
    if metadata.overflow:
        log.warning("%s: %s", label, metadata.summary())
    return scene


# -- converted assets (.arrAsset, written by the converter, openrr.assets) ---------------------------------


def _is_arrasset(data: bytes, location: str) -> bool:
    """By content (the magic), or by name so that a wrong file named .arrAsset gets the asset reader's
    message rather than a glTF parser's."""
    return data[: len(MAGIC)] == MAGIC or urlparse(location).path.lower().endswith(".arrasset")


def _load_arrasset(
    data: bytes, label: str, name: str, report: ProgressCallback, allowance: Allowance
) -> Scene:
    """The asset's scene, its meshes with their levels of detail. The arrays share ``data``'s memory.
    Its images are already pixels (inflated within the reader's own bound), so the allowance is checked
    on the whole scene."""
    report(0.5, "parsing")
    scene = read_asset(data, name=name, label=label).scene
    try:
        allowance.check(usage(scene), label)
    except BudgetExceeded as exc:
        raise ModelLoadError(exc.message) from None
    report(1.0, "loaded")
    return scene


def _parse(
    data: bytes,
    label: str,
    resolver: _LocalResolver | _HttpResolver,
    report: ProgressCallback,
    allowance: Allowance,
) -> tuple[trimesh.Scene, dict[str, MaterialExtension]]:
    """trimesh's parse of the file, after ``openrr.model.gltf_extensions`` decoded what trimesh cannot
    read; and the material extensions that found."""
    report(0.5, "parsing")
    if data[:4] == b"glTF":
        file_type = "glb"
    else:
        # Checked here because trimesh answers broken JSON with a confusing "model.gltf" lookup.
        try:
            header = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelLoadError(f"{label}: not a glTF file (neither GLB nor glTF JSON)") from exc
        if not isinstance(header, dict) or "asset" not in header:
            raise ModelLoadError(f"{label}: not a glTF file (no 'asset' in the JSON)")
        file_type = "gltf"
    prepared = prepare(data, file_type, resolver.get, allowance, label)
    try:
        loaded = trimesh.load_scene(
            io.BytesIO(prepared.data), file_type=prepared.file_type, resolver=resolver
        )
    except ModelLoadError as exc:
        raise ModelLoadError(f"{label}: {exc.message}") from exc
    except MemoryError:  # the process's memory ceiling, not the file's fault: the caller ends the session
        raise
    except Exception as exc:
        raise ModelLoadError(f"{label}: invalid glTF data: {type(exc).__name__}: {exc}") from exc
    if resolver.failures:  # trimesh skips images it cannot fetch; say so rather than render untextured
        log.warning("%s: resources not loaded: %s", label, "; ".join(resolver.failures))
    return loaded, prepared.materials
