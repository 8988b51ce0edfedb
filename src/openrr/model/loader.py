"""Load glTF 2.0 models (.gltf with external or embedded resources, .glb) and openrr's converted
``.arrAsset`` files (``openrr.model.arrasset``, recognised by content or name) into a ``Scene``.

Sources are local paths (``file://`` URLs too) and http(s) URLs. Every failure, whatever its cause (a
missing file, a bad download, broken JSON or binary data, a size limit), raises ``ModelLoadError`` with a
message fit for a client; no trimesh, JSON or httpx exception escapes.

Textures and geometry are counted against an ``Allowance`` (``openrr.render.budget``) before they are
decoded or copied: a texture by its image header, so a small PNG that decodes to gigabytes is refused.

Parsing is trimesh's (fast for files with thousands of nodes, unlike pygltflib). trimesh splits a glTF
mesh with several primitives into child frames; they are folded back here into one ``Mesh``, so the node
hierarchy seen by clients is the file's.
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
import numpy as np
import PIL.Image
import trimesh
from numpy.typing import NDArray
from trimesh.resolvers import FilePathResolver, Resolver

from openrr.model.scene import AlphaMode, Material, Mesh, Primitive, Scene
from openrr.render.budget import Allowance, BudgetExceeded, geometry_bytes, pixels_text, usage
from openrr.render.fetch import pinned_client, unchecked
from openrr.render.sources import quote_url

log = logging.getLogger("openrr.model.loader")

# Pillow's own bomb check (a warning past 89 Mpx, an error past twice that) is replaced by the allowance,
# which is checked from the header before any pixel is decoded: trimesh swallows Pillow's error and drops
# the texture without a word, and Pillow's limit is process-wide and not per session. Image.open stays lazy.
PIL.Image.MAX_IMAGE_PIXELS = None

ProgressCallback = Callable[[float, str], None]
DEFAULT_MAX_BYTES = 1 << 30  # the model file plus everything it references
DEFAULT_TIMEOUT = 30.0
# Decoded texture pixels of one model when the caller gives no allowance (1 GiB as RGBA): callers with
# limits of their own (a session's, by size) pass an ``Allowance``.
DEFAULT_TEXTURE_PIXELS = 256 << 20


class ModelLoadError(Exception):
    """A model could not be loaded; ``message`` says why, in words a client can show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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
        if self.guard is not None:  # "../../etc/passwd" or a symlink out of the allowed folders
            _guarded(self.guard, str(self.folder / unquote(name)))
        try:
            try:
                data: bytes = super().get(name)
            except FileNotFoundError:
                data = super().get(unquote(name))
        except (OSError, ValueError) as exc:
            self.failures.append(f"{name}: {exc}")
            raise ModelLoadError(f"missing or unreadable resource {name!r}") from exc
        self.budget.take(len(data), name)
        return data


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
    except Exception as exc:
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
) -> Scene:
    """Load a glTF 2.0 model or an ``.arrAsset`` from a path or an http(s)/file URL into a new ``Scene``.

    ``progress(fraction, message)`` is called with fractions rising from 0 to 1; an exception it raises
    aborts the load and propagates (use that to cancel). ``max_bytes`` bounds the file plus its
    external buffers and images; ``timeout`` bounds each network operation. Blocking: run it off the
    event loop. ``guard(location)`` is called before every HTTP request (the model, its buffers and
    images, every redirect) and before every local file a .gltf references, and refuses it by raising;
    the refusal becomes a ``ModelLoadError``. For a request, the ``CheckedURL`` it returns names the only
    addresses the connection may go to (``openrr.render.fetch``); without a guard, or with one that returns
    something else, the host is resolved once and that answer is used. Proxy variables are ignored.
    URLs in messages never show credentials or query strings.
    ``allowance`` bounds the model's decoded texture pixels and geometry bytes (default:
    ``DEFAULT_TEXTURE_PIXELS``, geometry unlimited); what the model took is in ``allowance.used`` afterwards.
    """
    if allowance is None:
        allowance = _default_allowance()
    report = progress or (lambda fraction, message: None)
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
            loaded = _parse(data, _shown(text), resolver, report)
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
        loaded = _parse(data, str(path), _LocalResolver(path, budget, guard), report)
        name = path.name
    else:
        raise ModelLoadError(f"unsupported model location {text!r}: use a file path or an http(s) URL")
    try:
        scene = _convert(loaded, name, report, allowance)
    except BudgetExceeded as exc:
        raise ModelLoadError(f"{_shown(text)}: {exc.message}") from None
    except (ValueError, OSError, KeyError, IndexError, PIL.Image.DecompressionBombError) as exc:
        # Bad indices, undecodable or absurd images... (a progress callback's own exception propagates)
        raise ModelLoadError(f"{_shown(text)}: invalid model content: {exc}") from exc
    report(1.0, "loaded")
    return scene


# -- converted assets (.arrAsset, written by openrr.assets) ------------------------------------------------


def _is_arrasset(data: bytes, location: str) -> bool:
    """By content (the magic), or by name so that a wrong file named .arrAsset gets the asset reader's
    message rather than a glTF parser's."""
    from openrr.model.arrasset import MAGIC  # here: openrr.assets imports this module

    return data[: len(MAGIC)] == MAGIC or urlparse(location).path.lower().endswith(".arrasset")


def _load_arrasset(
    data: bytes, label: str, name: str, report: ProgressCallback, allowance: Allowance
) -> Scene:
    """The asset's scene, its meshes with their levels of detail. The arrays share ``data``'s memory.
    Its images are already pixels (inflated within the reader's own bound), so the allowance is checked
    on the whole scene."""
    from openrr.model.arrasset import read_asset

    report(0.5, "parsing")
    scene = read_asset(data, name=name, label=label).scene
    try:
        allowance.check(usage(scene), label)
    except BudgetExceeded as exc:
        raise ModelLoadError(exc.message) from None
    report(1.0, "loaded")
    return scene


def scene_from_trimesh(loaded: trimesh.Scene, name: str) -> Scene:
    """A trimesh scene (from any format trimesh reads) as a ``Scene``, the way glTF models are converted:
    only triangle meshes, normals only where the file had them, textures within the default allowance.
    Raises ValueError on invalid content (a texture past the allowance too)."""
    try:
        return _convert(loaded, name, lambda fraction, message: None, _default_allowance())
    except BudgetExceeded as exc:
        raise ValueError(exc.message) from None


def _default_allowance() -> Allowance:
    return Allowance(DEFAULT_TEXTURE_PIXELS, f"the {pixels_text(DEFAULT_TEXTURE_PIXELS)} any model may have")


def _parse(
    data: bytes, label: str, resolver: _LocalResolver | _HttpResolver, report: ProgressCallback
) -> trimesh.Scene:
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
    try:
        loaded = trimesh.load_scene(io.BytesIO(data), file_type=file_type, resolver=resolver)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{label}: {exc.message}") from exc
    except MemoryError:  # the process's memory ceiling, not the file's fault: the caller ends the session
        raise
    except Exception as exc:  # trimesh raises anything from KeyError to struct errors on bad input
        raise ModelLoadError(f"{label}: invalid glTF data: {type(exc).__name__}: {exc}") from exc
    if resolver.failures:  # trimesh skips images it cannot fetch; say so rather than render untextured
        log.warning("%s: resources not loaded: %s", label, "; ".join(resolver.failures))
    return loaded


def _convert(loaded: trimesh.Scene, name: str, report: ProgressCallback, allowance: Allowance) -> Scene:
    scene = Scene(name)
    graph = loaded.graph.transforms
    children: dict[str, list[str]] = graph.children
    primitives: dict[str, Primitive | None] = {}
    meshes: dict[tuple[str, ...], Mesh | None] = {}
    materials: dict[int, Material] = {}
    images: dict[int, NDArray[np.uint8]] = {}
    total = max(len(graph.nodes), 1)
    step = max(total // 50, 1)  # about 50 progress reports, however many nodes

    def geometry_of(parent: str, frame: str) -> str | None:
        geometry: str | None = graph.edge_data.get((parent, frame), {}).get("geometry")
        return geometry

    def folded(parent: str, frame: str) -> bool:
        """A frame trimesh made for one primitive of a multi-primitive glTF mesh."""
        geometry = loaded.geometry.get(geometry_of(parent, frame) or "")
        return (
            geometry is not None
            and bool(geometry.metadata.get("from_gltf_primitive"))
            and not children.get(frame)
            and geometry_of(graph.parents.get(parent, ""), parent) is None
            and np.allclose(graph.edge_data[(parent, frame)].get("matrix", np.eye(4)), np.eye(4))
        )

    def mesh_of(parent: str, frame: str) -> Mesh | None:
        names = [geometry_of(parent, frame)] + [
            geometry_of(frame, k) for k in children.get(frame, []) if folded(frame, k)
        ]
        key = tuple(n for n in names if n is not None)
        if key and key not in meshes:
            for geometry_name in key:
                if geometry_name not in primitives:
                    primitives[geometry_name] = _primitive(
                        loaded.geometry[geometry_name], materials, images, allowance
                    )
            parts = tuple(p for p in (primitives[n] for n in key) if p is not None)
            meshes[key] = Mesh(key[0], parts) if parts else None
        return meshes.get(key)

    queue: list[tuple[str, int | None]] = [(str(loaded.graph.base_frame), None)]
    for index, (frame, parent_id) in enumerate(queue):  # breadth first: parents before children
        for child in children.get(frame, []):
            if folded(frame, child):
                continue
            matrix = graph.edge_data.get((frame, child), {}).get("matrix")
            node = scene.add_node(str(child), parent=parent_id, transform=matrix, mesh=mesh_of(frame, child))
            queue.append((child, node.id))
        if index % step == 0:
            report(0.6 + 0.39 * min(index / total, 1.0), "converting")
    return scene


def _primitive(
    geometry: Any,
    materials: dict[int, Material],
    images: dict[int, NDArray[np.uint8]],
    allowance: Allowance,
) -> Primitive | None:
    """A trimesh geometry as a Primitive; None for what is not a triangle mesh (lines, points)."""
    if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
        return None
    visual = geometry.visual
    if isinstance(visual, trimesh.visual.TextureVisuals):
        has_uvs, has_colors = visual.uv is not None, visual.vertex_attributes.get("color") is not None
    else:
        has_uvs = False
        has_colors = isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind == "vertex"
    allowance.take_geometry(
        geometry_bytes(
            len(geometry.vertices),
            len(geometry.faces),
            normals="vertex_normals" in geometry._cache,
            uvs=has_uvs,
            colors=has_colors,
        ),
        f"mesh {geometry.metadata.get('name') or ''!s}".rstrip(),
    )
    # Only normals that came from the file: trimesh would otherwise compute smooth ones, while glTF asks
    # for flat shading when NORMAL is absent (the shader does that from screen derivatives).
    normals = geometry.vertex_normals if "vertex_normals" in geometry._cache else None
    uvs = colors = None
    material = Material()
    if isinstance(visual, trimesh.visual.TextureVisuals):
        if visual.uv is not None and len(visual.uv) == len(geometry.vertices):
            uvs = np.array(visual.uv, dtype=np.float32)
            uvs[:, 1] = 1.0 - uvs[:, 1]  # trimesh flips v to a bottom-left origin; glTF's is top-left
        raw = visual.vertex_attributes.get("color")
        if raw is not None:
            colors = _normalised(np.asarray(raw))
        if visual.material is not None:
            key = id(visual.material)
            if key not in materials:
                materials[key] = _material(visual.material, images, allowance)
            material = materials[key]
    elif isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind == "vertex":
        colors = _normalised(np.asarray(visual.vertex_colors))
    return Primitive(
        positions=np.asarray(geometry.vertices),
        indices=np.asarray(geometry.faces),
        material=material,
        normals=None if normals is None else np.asarray(normals),
        uvs=uvs,
        colors=colors,
    )


def _normalised(values: NDArray[Any]) -> NDArray[np.float32]:
    if np.issubdtype(values.dtype, np.integer):
        return (values / np.iinfo(values.dtype).max).astype(np.float32)
    return values.astype(np.float32)


def _material(source: Any, images: dict[int, NDArray[np.uint8]], allowance: Allowance) -> Material:
    pbr = source if isinstance(source, trimesh.visual.material.PBRMaterial) else source.to_pbr()

    def image(value: Any) -> NDArray[np.uint8] | None:
        if value is None:
            return None
        if id(value) not in images:
            if isinstance(value, PIL.Image.Image):  # the size is the header's: nothing is decoded yet
                allowance.take_texture(value.width, value.height, f"a texture of material {pbr.name or ''!r}")
            images[id(value)] = np.ascontiguousarray(np.asarray(value.convert("RGBA"), dtype=np.uint8))
        return images[id(value)]

    def number(value: Any, default: float) -> float:
        return default if value is None else float(value)

    base = pbr.baseColorFactor  # trimesh keeps it as uint8 RGBA
    emissive = pbr.emissiveFactor
    mode = str(pbr.alphaMode or "OPAQUE").upper()
    alpha_mode: AlphaMode = "MASK" if mode == "MASK" else "BLEND" if mode == "BLEND" else "OPAQUE"
    return Material(
        name=str(pbr.name or ""),
        base_color_factor=(1.0, 1.0, 1.0, 1.0) if base is None else _rgba(np.asarray(base) / 255.0),
        base_color_texture=image(pbr.baseColorTexture),
        metallic_factor=number(pbr.metallicFactor, 1.0),
        roughness_factor=number(pbr.roughnessFactor, 1.0),
        metallic_roughness_texture=image(pbr.metallicRoughnessTexture),
        normal_texture=image(pbr.normalTexture),
        occlusion_texture=image(pbr.occlusionTexture),
        emissive_factor=(0.0, 0.0, 0.0) if emissive is None else _rgb(emissive),
        emissive_texture=image(pbr.emissiveTexture),
        double_sided=bool(pbr.doubleSided),
        alpha_mode=alpha_mode,
        alpha_cutoff=number(pbr.alphaCutoff, 0.5),
    )


def _clamped(values: Any) -> list[float]:
    return [min(max(float(c), 0.0), 1.0) for c in np.asarray(values, dtype=np.float64).reshape(-1)]


def _rgba(values: Any) -> tuple[float, float, float, float]:
    r, g, b, a = (_clamped(values) + [1.0] * 4)[:4]
    return (r, g, b, a)


def _rgb(values: Any) -> tuple[float, float, float]:
    r, g, b = (_clamped(values) + [0.0] * 3)[:3]
    return (r, g, b)
