"""Convert a source model into an ``.arrAsset`` and the files ARR's conversion service wrote beside it.

``convert_model(input_path, output_dir, output_name, settings, log)`` reads the model, applies the
conversion settings, builds levels of detail for big meshes and writes, in ``output_dir``:

* ``<name>.arrAsset``: the asset (``openrr.model.arrasset``, ``docs/arrasset.md``);
* ``<name>.info.json``: ARR's info file (``files``, ``conversionSettings``, ``inputInfo``,
  ``inputStatistics``, ``outputInfo``, ``outputStatistics``), plus an ``openrr`` section (levels of
  detail, timings, sizes);
* ``<name>.result.json``: ARR's result file, a JSON array: ``{"conversionId"}``, the warnings, at most
  one error, and ``{"result": "succeeded" | "succeeded with warnings" | "failed"}``;
* ``<name>.log``: the log lines, also passed one by one to ``log``.

Inputs: glTF 2.0 (``.gltf`` with its files beside it, ``.glb``) through the render server's own loader,
so a converted model draws exactly like the raw one; OBJ (+ MTL and textures) and PLY meshes through
trimesh; PLY and XYZ point clouds (``x y z``, ``x y z i`` or ``x y z r g b [i]`` per line). FBX, E57,
LAS and LAZ fail with a message saying what is missing.

Every problem with the input (a missing or corrupt file, an unsupported format, bad settings) raises
``ConversionFailed`` after ``<name>.result.json`` and ``<name>.log`` have been written; so does an
unexpected error, with the code ``InternalError`` and its traceback in the log only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import struct
import time
import traceback
import uuid
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from numpy.typing import NDArray

from openrr import __version__
from openrr.assets import ConversionFailed
from openrr.assets.settings import ConversionSettings, VertexFormat, settings_file_for
from openrr.model.arrasset import Asset, PointCloud, build_lods, conversion_hash, write_asset
from openrr.model.loader import ModelLoadError, load_model, scene_from_trimesh
from openrr.model.scene import F64, Material, Mesh, Primitive, Scene

MESH_FORMATS = {".gltf": "glTF 2.0", ".glb": "glTF 2.0 binary (GLB)", ".obj": "Wavefront OBJ", ".ply": "PLY"}
POINT_FORMATS = {".xyz": "XYZ point cloud"}
NOT_SUPPORTED = {
    ".fbx": (
        "FBX is not supported: openrr has no FBX reader. The maintained route would be the Open Asset "
        "Import Library (Debian package libassimp5 with the pyassimp binding), which this installation "
        "does not have; export the model as glTF 2.0 (.glb) instead"
    ),
    ".e57": "E57 point clouds are not supported by openrr: export the points as PLY or XYZ",
    ".las": "LAS point clouds are not supported by openrr: export the points as PLY or XYZ",
    ".laz": "LAZ point clouds are not supported by openrr: export the points as PLY or XYZ",
}
MAX_INPUT_BYTES = 8 << 30  # a model plus its buffers and textures; the machine has 24 GiB
ASSET_SUFFIX = ".arrAsset"


@dataclass
class ConversionResult:
    """What a successful conversion wrote and measured. ``result`` is the content of ``result.json``."""

    asset_path: Path
    info_path: Path
    result_path: Path
    log_path: Path
    info: dict[str, Any]
    result: list[dict[str, Any]]
    warnings: list[str]
    log_lines: list[str]
    seconds: float
    asset_bytes: int


@dataclass
class _Job:
    log: Callable[[str], None]
    started: float = field(default_factory=time.perf_counter)
    lines: list[str] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def say(self, message: str, level: str = "INFO") -> None:
        line = f"[{time.perf_counter() - self.started:8.3f}s] {level}: {message}"
        self.lines.append(line)
        self.log(line)

    def warn(self, code: str, title: str, details: str) -> None:
        self.warnings.append({"warning": code, "title": title, "details": details})
        self.say(f"{title}: {details}", "WARNING")

    @contextlib.contextmanager
    def step(self, name: str) -> Any:
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 4)


def convert_model(
    input_path: Path,
    output_dir: Path,
    output_name: str,
    settings: ConversionSettings | None = None,
    log: Callable[[str], None] = lambda line: None,
    *,
    conversion_id: str | None = None,
) -> ConversionResult:
    """Convert ``input_path`` into ``output_dir/<name>.arrAsset`` and its companion files.

    ``output_name``: the asset's file name (``car.arrAsset``) or its stem (``car``). ``settings``: None
    reads ``<model>.ConversionSettings.json`` beside the input (or the deprecated
    ``conversionSettings.json``), defaults if there is none. ``log`` gets every log line as it happens.
    ``conversion_id`` goes into ``result.json`` (a new UUID if None; ARR wrote an internal id there, not
    the API's). Raises ``ConversionFailed`` (see the module's docstring).
    """
    job = _Job(log)
    stem = (
        output_name[: -len(ASSET_SUFFIX)]
        if output_name.lower().endswith(ASSET_SUFFIX.lower())
        else output_name
    )
    conversion_id = conversion_id or str(uuid.uuid4())
    result_path = output_dir / f"{stem}.result.json"
    log_path = output_dir / f"{stem}.log"
    try:
        if not stem or "/" in stem or "\\" in stem or stem in (".", ".."):
            raise ConversionFailed(f"invalid output name {output_name!r}", code="InvalidOutputName")
        output_dir.mkdir(parents=True, exist_ok=True)
        for stale in (f"{stem}{ASSET_SUFFIX}", f"{stem}.info.json"):  # a failed rerun leaves no old success
            (output_dir / stale).unlink(missing_ok=True)
        outcome = _convert(job, Path(input_path), output_dir, stem, settings)
    except ConversionFailed as exc:
        job.say(exc.message, "ERROR")
        _finish(
            job, result_path, log_path, conversion_id, {"error": exc.code, "title": "Conversion failed"}, exc
        )
        raise
    except MemoryError:
        failure = ConversionFailed("the model does not fit in memory", code="OutOfMemory")
        job.say(failure.message, "ERROR")
        _finish(
            job,
            result_path,
            log_path,
            conversion_id,
            {"error": failure.code, "title": "Conversion failed"},
            failure,
        )
        raise failure from None
    except Exception as exc:
        # A bug, or an input trimesh chokes on in an unforeseen way: the user gets a clean failure,
        # the log gets the traceback.
        failure = ConversionFailed(f"internal error: {type(exc).__name__}: {exc}", code="InternalError")
        job.say(failure.message, "ERROR")
        for line in traceback.format_exc().rstrip().splitlines():
            job.say(line, "DEBUG")
        _finish(
            job,
            result_path,
            log_path,
            conversion_id,
            {"internal error": failure.code, "title": "Conversion failed"},
            failure,
        )
        raise failure from exc
    status = "succeeded with warnings" if job.warnings else "succeeded"
    job.say(f"conversion {status} in {time.perf_counter() - job.started:.2f} s")
    result = _finish(job, result_path, log_path, conversion_id, None, None, status)
    asset_path, info_path, info, size = outcome
    return ConversionResult(
        asset_path=asset_path,
        info_path=info_path,
        result_path=result_path,
        log_path=log_path,
        info=info,
        result=result,
        warnings=[w["details"] for w in job.warnings],
        log_lines=list(job.lines),
        seconds=time.perf_counter() - job.started,
        asset_bytes=size,
    )


def _finish(
    job: _Job,
    result_path: Path,
    log_path: Path,
    conversion_id: str,
    error: dict[str, str] | None,
    failure: ConversionFailed | None,
    status: str = "failed",
) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = [{"conversionId": conversion_id}, *job.warnings]
    if error is not None and failure is not None:
        entries.append({**error, "details": failure.message})
    entries.append({"result": status})
    # Best effort on failure: an unwritable output folder must not hide the original problem.
    with contextlib.suppress(OSError) if failure is not None else contextlib.nullcontext():
        _write_atomic(result_path, (json.dumps(entries, indent=2) + "\n").encode())
        _write_atomic(log_path, ("\n".join(job.lines) + "\n").encode())
    return entries


def _write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary name, so a reader (or an upload) never sees a half-written file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# -- the conversion ----------------------------------------------------------------------------------------


def _convert(
    job: _Job, input_path: Path, output_dir: Path, stem: str, given: ConversionSettings | None
) -> tuple[Path, Path, dict[str, Any], int]:
    extension = input_path.suffix.lower()
    job.say(f"openrr {__version__} converting {input_path.name} to {stem}{ASSET_SUFFIX}")
    if extension in NOT_SUPPORTED:
        raise ConversionFailed(NOT_SUPPORTED[extension], code="UnsupportedFormat")
    if extension not in MESH_FORMATS and extension not in POINT_FORMATS:
        supported = ", ".join(sorted({*MESH_FORMATS, *POINT_FORMATS}))
        raise ConversionFailed(
            f"unsupported input format {extension or '(no extension)'!r}: openrr converts {supported}",
            code="UnsupportedFormat",
        )
    if not input_path.is_file():
        raise ConversionFailed(f"input file not found: {input_path.name}", code="InputNotFound")
    size = input_path.stat().st_size
    if size > MAX_INPUT_BYTES:
        raise ConversionFailed(
            f"{input_path.name} is larger than {MAX_INPUT_BYTES} bytes", code="InputTooLarge"
        )
    settings = _settings(job, input_path, given).for_format(extension)

    with job.step("load"):
        source = _load(job, input_path, extension)
    job.say(f"read {input_path.name} ({size} bytes) in {job.timings['load']:.2f} s: {source.format_name}")
    input_statistics = _statistics(source.scene, source.points)
    job.say(
        f"input: {input_statistics['numNodes']} nodes, {input_statistics['numMeshes']} mesh parts, "
        f"{input_statistics['numFaces']} triangles, {input_statistics['numVertices']} vertices, "
        f"{input_statistics['numMaterial']} materials"
    )
    if source.scene.polygon_count == 0 and not source.points:
        raise ConversionFailed(
            f"{input_path.name} holds no triangles or points to convert", code="EmptyModel"
        )
    _warn_unused(job, settings, bool(source.points))

    with job.step("transform"):
        scene, points, offset = _apply(job, source, settings)
    with job.step("levels_of_detail"):
        with_lods: dict[int, Mesh] = {}
        for node in scene.nodes():
            if node.mesh is not None:
                if id(node.mesh) not in with_lods:
                    levels = build_lods(node.mesh, progress=job.say)
                    with_lods[id(node.mesh)] = (
                        Mesh(node.mesh.name, node.mesh.primitives, lods=levels) if levels else node.mesh
                    )
                node.mesh = with_lods[id(node.mesh)]  # instances keep sharing one mesh
    bounds = _bounds(scene, points)
    output_statistics: dict[str, Any] = {
        **_parts(scene),
        "recenteringOffset": offset,
        "boundingBox": {"min": bounds[0].tolist(), "max": bounds[1].tolist()},
    }
    asset = Asset(scene, points=points, unlit=settings.unlit_materials and not points)
    asset.statistics = {"inputStatistics": input_statistics, "outputStatistics": output_statistics}
    with job.step("write"):
        data = write_asset(
            asset,
            vertex=settings.vertex if not points else VertexFormat(),  # ARR: no vertex options for points
            deduplicate_materials=settings.deduplicate_materials,
            source={"file": input_path.name, "format": source.format_name},
        )
        asset_path = output_dir / f"{stem}{ASSET_SUFFIX}"
        _write_atomic(asset_path, data)
    job.say(f"wrote {asset_path.name} ({len(data)} bytes) in {job.timings['write']:.2f} s")

    default_name = input_path.stem + ASSET_SUFFIX
    files = {"input": input_path.name} | (
        {} if asset_path.name == default_name else {"output": asset_path.name}
    )
    info = {
        "files": files,
        "conversionSettings": dict(settings.specified),
        "inputInfo": {
            "sourceAssetExtension": input_path.suffix,
            "sourceAssetFormat": source.format_name,
            "sourceAssetFormatVersion": source.format_version,
            "sourceAssetGenerator": source.generator,
        },
        "inputStatistics": input_statistics,
        "outputInfo": {
            "conversionToolVersion": f"openrr {__version__}",
            "conversionHash": conversion_hash(data),
        },
        "outputStatistics": output_statistics,
        "openrr": {
            "assetBytes": len(data),
            "levelsOfDetail": [
                {"mesh": m.name, "triangles": [m.triangle_count, *(lv.mesh.triangle_count for lv in m.lods)]}
                for m in scene.meshes()
                if m.lods
            ],
            "pointClouds": [{"points": len(c.positions), "pointSize": c.point_size} for c in points.values()],
            "seconds": job.timings,
        },
    }
    info_path = output_dir / f"{stem}.info.json"
    _write_atomic(info_path, (json.dumps(info, indent=2) + "\n").encode())
    return asset_path, info_path, info, len(data)


def _settings(job: _Job, input_path: Path, given: ConversionSettings | None) -> ConversionSettings:
    if given is not None:
        job.say("settings: as given by the caller")
        return given
    path = settings_file_for(input_path)
    if path is None:
        job.say(f"settings: defaults (no {input_path.stem}.ConversionSettings.json beside the input)")
        return ConversionSettings()
    if path.name != f"{input_path.stem}.ConversionSettings.json":
        job.warn(
            "DeprecatedSettingsFile",
            "Deprecated settings file name",
            f"read {path.name}; name it {input_path.stem}.ConversionSettings.json",
        )
    settings = ConversionSettings.load(path)
    job.say(f"settings: {path.name}: {json.dumps(dict(settings.specified), sort_keys=True)}")
    return settings


def _warn_unused(job: _Job, settings: ConversionSettings, point_cloud: bool) -> None:
    given = settings.specified
    if point_cloud:
        # ARR: point clouds honour scaling, recenterToOrigin, axis, gammaToLinearVertex and
        # generateCollisionMesh only; it ignored the rest silently, so this only logs.
        ignored = sorted(
            set(given)
            - {"scaling", "recenterToOrigin", "axis", "gammaToLinearVertex", "generateCollisionMesh"}
        )
        if ignored:
            job.say(f"ignored for a point cloud, as in ARR: {', '.join(ignored)}")
        return
    if settings.material_override:
        job.warn(
            "MaterialOverrideNotSupported",
            "Material overrides are not supported",
            f"material-override {settings.material_override!r} was not applied",
        )
    if settings.metadata_keys:
        job.warn("MetadataNotKept", "Node metadata is not kept", "metadataKeys has no effect in openrr")
    if settings.scene_graph_mode == "static":
        job.say("sceneGraphMode static: converted like dynamic (openrr has no reparenting to forbid)")
    if not settings.generate_collision_mesh:
        job.say(
            "generateCollisionMesh false: no effect (openrr picks on the GPU and needs no collision mesh)"
        )


# -- reading the input -------------------------------------------------------------------------------------


@dataclass
class _Source:
    scene: Scene
    points: dict[int, PointCloud]
    format_name: str
    format_version: str = ""
    generator: str = ""
    sidedness_in_file: bool = False  # glTF: each material says whether it is double-sided


def _load(job: _Job, path: Path, extension: str) -> _Source:
    if extension in (".gltf", ".glb"):
        try:
            scene = load_model(path, max_bytes=MAX_INPUT_BYTES)
        except ModelLoadError as exc:
            raise ConversionFailed(exc.message.replace(str(path), path.name)) from None
        version, generator = _gltf_header(path)
        return _Source(scene, {}, MESH_FORMATS[extension], version, generator, sidedness_in_file=True)
    if extension == ".xyz":
        return _xyz(path)
    try:
        # trimesh reads the MTL and textures of an OBJ through a resolver confined to the model's folder.
        loaded = trimesh.load_scene(str(path), file_type=extension[1:])
    except Exception as exc:  # trimesh raises anything from KeyError to struct.error on bad input
        raise ConversionFailed(
            f"{path.name}: invalid {MESH_FORMATS[extension]} data: {type(exc).__name__}: {exc}"
        ) from None
    version = _ply_format(path) if extension == ".ply" else ""
    clouds = [g for g in loaded.geometry.values() if isinstance(g, trimesh.PointCloud)]
    if clouds:
        if len(clouds) != len(loaded.geometry):
            job.warn(
                "PointsDropped",
                "Points dropped",
                f"{path.name} mixes points and faces: only the faces are converted",
            )
        else:
            return _points_source(path, clouds, MESH_FORMATS[extension], version)
    try:
        scene = scene_from_trimesh(loaded, path.name)
    except (ValueError, KeyError, IndexError, OSError) as exc:
        raise ConversionFailed(f"{path.name}: invalid model content: {exc}") from None
    return _Source(scene, {}, MESH_FORMATS[extension], version)


def _gltf_header(path: Path) -> tuple[str, str]:
    """glTF's ``asset.version`` and ``asset.generator`` for info.json (empty where unreadable)."""
    try:
        with path.open("rb") as f:
            head = f.read(20)
            if head[:4] == b"glTF":
                length, kind = struct.unpack_from("<II", head, 12)
                document = json.loads(f.read(length)) if kind == 0x4E4F534A else {}
            else:
                document = json.loads(head + f.read())
        asset = document.get("asset", {})
        return str(asset.get("version", "")), str(asset.get("generator", ""))
    except (OSError, ValueError, AttributeError, struct.error):
        return "", ""


def _ply_format(path: Path) -> str:
    with contextlib.suppress(OSError, IndexError, UnicodeDecodeError), path.open("rb") as f:
        for line in f.read(1024).split(b"\n")[1:3]:
            if line.startswith(b"format "):
                return line[len(b"format ") :].decode("ascii").strip()
    return ""


def _points_source(path: Path, clouds: list[Any], format_name: str, version: str) -> _Source:
    positions = np.concatenate([np.asarray(c.vertices, dtype=np.float32) for c in clouds])
    colors = None
    if all(c.colors is not None and len(c.colors) == len(c.vertices) for c in clouds):
        colors = np.concatenate([np.asarray(c.colors, dtype=np.float32) / 255.0 for c in clouds])
    return _cloud_source(path, positions, colors, format_name, version)


def _cloud_source(
    path: Path,
    positions: NDArray[np.float32],
    colors: NDArray[np.float32] | None,
    format_name: str,
    version: str,
) -> _Source:
    if not np.isfinite(positions).all():
        raise ConversionFailed(f"{path.name}: the points have non-finite coordinates")
    if len(positions) == 0:
        raise ConversionFailed(f"{path.name} holds no points", code="EmptyModel")
    scene = Scene(path.name)
    node = scene.add_node(path.stem or "points")
    cloud = PointCloud(positions, colors, 1.0)
    return _Source(scene, {node.id: cloud}, format_name, version)


def _xyz(path: Path) -> _Source:
    """XYZ text: one point a line, ``x y z``, ``x y z i``, ``x y z r g b`` or ``x y z r g b i``, separated
    by spaces, tabs, commas or semicolons; ``#`` and ``//`` start comments. Colours in 0..255, or 0..1
    if no value exceeds 1; an intensity alone becomes grey."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConversionFailed(f"{path.name}: not a readable XYZ text file ({exc})") from None
    text = text.translate({ord(","): " ", ord(";"): " "})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": checked below
            values = np.loadtxt(io.StringIO(text), dtype=np.float64, comments=("#", "//"), ndmin=2)
    except ValueError as exc:
        raise ConversionFailed(f"{path.name}: invalid XYZ data: {exc}") from None
    if values.size == 0:
        raise ConversionFailed(f"{path.name} holds no points", code="EmptyModel")
    columns = values.shape[1]
    if columns not in (3, 4, 6, 7):
        raise ConversionFailed(
            f"{path.name}: {columns} values per line; XYZ needs x y z, x y z i, x y z r g b or x y z r g b i"
        )
    colors = None
    if columns >= 6:
        rgb = values[:, 3:6]
    elif columns == 4:
        rgb = np.repeat(values[:, 3:4], 3, axis=1)
    if columns != 3:
        top = float(rgb.max(initial=0.0))
        rgb = rgb / (255.0 if top > 1.0 else 1.0) if columns >= 6 else rgb / (top if top > 0 else 1.0)
        colors = np.concatenate([np.clip(rgb, 0.0, 1.0), np.ones((len(rgb), 1))], axis=1).astype(np.float32)
    return _cloud_source(path, values[:, :3].astype(np.float32), colors, POINT_FORMATS[".xyz"], "")


def _point_size(positions: NDArray[np.float32]) -> float:
    """The size of the octahedra a triangle renderer draws for points: from the distance between them.

    Scans sample surfaces, so the points are spread over an area rather than a volume: the area of the
    two largest sides of the bounding box, shared among the points. No neighbour search (scipy is not a
    dependency); good within a factor of two or so on scans, which is what the look needs.
    """
    extent = np.sort(positions.max(axis=0) - positions.min(axis=0))[::-1].astype(np.float64)
    area = float(extent[0] * extent[1]) or float(extent[0] ** 2)
    spacing = math.sqrt(area / len(positions)) if area > 0 else 0.0
    # 1.5 spacings: octahedra seen face-on are diamonds, which leave gaps at exactly one spacing.
    return 1.5 * spacing if spacing > 0 else 1e-3 * (float(extent[0]) or 1.0)


# -- applying the settings ---------------------------------------------------------------------------------


def _srgb_to_linear(values: NDArray[Any]) -> NDArray[np.float32]:
    v = np.asarray(values, dtype=np.float64)
    out = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return out.astype(np.float32)


def _apply(
    job: _Job, source: _Source, settings: ConversionSettings
) -> tuple[Scene, dict[int, PointCloud], list[float]]:
    """The source scene with the settings applied: a new scene (meshes, materials and transforms are
    rebuilt only where something changes), its point clouds, and ARR's recentering offset."""
    mapping = settings.axis_mapping()
    axes = np.zeros((3, 3))
    for out_axis, (src_axis, sign) in enumerate(mapping):
        axes[out_axis, src_axis] = sign
    scale = settings.scaling
    linear = axes * scale  # the whole change of coordinates, applied to vertices
    mirrored = bool(np.linalg.det(axes) < 0)
    identity = scale == 1.0 and np.array_equal(axes, np.eye(3))
    if not identity:
        job.say(
            f"coordinates: scaling {scale:g}, axis {list(settings.axis)}"
            + (" (a mirror: winding flipped)" if mirrored else "")
        )
    change = np.eye(4)
    change[:3, :3] = linear
    undo = np.linalg.inv(change)

    materials: dict[int, Material] = {}
    canonical: dict[tuple[Any, ...], Material] = {}

    def material(m: Material) -> Material:
        if id(m) not in materials:
            changes: dict[str, Any] = {}
            if settings.gamma_to_linear_material:
                rgba = m.base_color_factor
                r, g, b = (float(c) for c in _srgb_to_linear(np.array(rgba[:3])))
                changes["base_color_factor"] = (r, g, b, rgba[3])
                er, eg, eb = (float(c) for c in _srgb_to_linear(np.array(m.emissive_factor)))
                changes["emissive_factor"] = (er, eg, eb)
            sidedness = settings.opaque_material_default_sidedness
            if sidedness is None and not source.sidedness_in_file:
                sidedness = "DoubleSided"  # ARR's default where the file says nothing
            if sidedness is not None and m.alpha_mode == "OPAQUE":
                changes["double_sided"] = sidedness == "DoubleSided"
            changed = dataclasses.replace(m, **changes) if changes else m
            if settings.deduplicate_materials:  # done here, so sceneGraphMode none merges their parts too
                changed = canonical.setdefault(_material_key(changed), changed)
            materials[id(m)] = changed
        return materials[id(m)]

    def primitive(p: Primitive) -> Primitive:
        new_material = material(p.material)
        colors = p.colors
        if colors is not None and settings.gamma_to_linear_vertex:
            colors = np.concatenate([_srgb_to_linear(colors[:, :3]), colors[:, 3:]], axis=1)
        if identity and new_material is p.material and colors is p.colors:
            return p
        positions, normals, indices = p.positions, p.normals, p.indices
        if not identity:
            positions = (positions @ linear.T.astype(np.float32)).astype(np.float32)
            if normals is not None:
                normals = (normals @ axes.T.astype(np.float32)).astype(np.float32)
            if mirrored:
                indices = indices[:, ::-1]  # a mirror turns counter-clockwise faces clockwise
        return Primitive(positions, indices, new_material, normals=normals, uvs=p.uvs, colors=colors)

    meshes: dict[int, Mesh] = {}

    def mesh(m: Mesh | None) -> Mesh | None:
        if m is None:
            return None
        if id(m) not in meshes:
            parts = tuple(primitive(p) for p in m.primitives)
            same = all(a is b for a, b in zip(parts, m.primitives, strict=True))
            meshes[id(m)] = m if same else Mesh(m.name, parts)
        return meshes[id(m)]

    scene = Scene(source.scene.name)
    new_id: dict[int, int] = {}
    points: dict[int, PointCloud] = {}
    for node in source.scene.nodes():
        transform = node.transform if identity else change @ node.transform @ undo
        added = scene.add_node(
            node.name,
            parent=new_id[node.parent] if node.parent is not None else None,
            transform=transform,
            mesh=mesh(node.mesh),
            visible=node.visible,
            color=node.color,
        )
        new_id[node.id] = added.id
        if node.id in source.points:
            cloud = source.points[node.id]
            positions = cloud.positions if identity else (cloud.positions @ linear.T).astype(np.float32)
            colors = cloud.colors
            if colors is not None and settings.gamma_to_linear_vertex:
                colors = np.concatenate([_srgb_to_linear(colors[:, :3]), colors[:, 3:]], axis=1)
            points[added.id] = PointCloud(positions, colors, _point_size(positions))

    if settings.scene_graph_mode == "none" and not points:
        scene = _flatten(scene)
        job.say(f"sceneGraphMode none: one node, {len(scene.meshes()[0].primitives)} merged mesh parts")

    offset = [0.0, 0.0, 0.0]
    if settings.recenter_to_origin:
        low, high = _bounds(scene, points)
        centre = (low + high) / 2.0
        shift = np.eye(4)
        shift[:3, 3] = -centre
        for root in scene.roots:
            root.transform = shift @ root.transform
        offset = centre.tolist()
        job.say(f"recentred: the model's centre {[round(c, 6) for c in offset]} moved to the origin")
    return scene, points, offset


def _material_key(m: Material) -> tuple[Any, ...]:
    """What ARR's deduplicateMaterials compares: every property and texture (by content), not the name."""

    def texture(image: NDArray[np.uint8] | None) -> tuple[Any, ...] | None:
        return None if image is None else (image.shape, zlib.crc32(np.ascontiguousarray(image).data))

    return (
        m.base_color_factor,
        texture(m.base_color_texture),
        m.metallic_factor,
        m.roughness_factor,
        texture(m.metallic_roughness_texture),
        texture(m.normal_texture),
        texture(m.occlusion_texture),
        m.emissive_factor,
        texture(m.emissive_texture),
        m.double_sided,
        m.alpha_mode,
        m.alpha_cutoff,
    )


def _flatten(scene: Scene) -> Scene:
    """ARR's ``sceneGraphMode: none``: every mesh instance baked into world space and merged, per
    material and vertex layout, into the parts of one mesh on one node."""
    state = scene.world()
    groups: dict[tuple[int, bool, bool, bool], list[tuple[Primitive, F64]]] = {}
    for row, node_id in enumerate(state.ids.tolist()):
        node = scene.node(int(node_id))
        if node.mesh is None or not state.visible[row]:
            continue
        for p in node.mesh.primitives:
            key = (id(p.material), p.normals is not None, p.uvs is not None, p.colors is not None)
            groups.setdefault(key, []).append((p, state.world[row]))
    parts: list[Primitive] = []
    for items in groups.values():
        positions, normals, uvs, colors, indices = [], [], [], [], []
        base = 0
        for p, world in items:
            linear = world[:3, :3]
            positions.append((p.positions @ linear.T + world[:3, 3]).astype(np.float32))
            tri = p.indices[:, ::-1] if np.linalg.det(linear) < 0 else p.indices
            indices.append(tri.astype(np.int64) + base)
            base += len(p.positions)
            if p.normals is not None:
                n = p.normals @ np.linalg.inv(linear)  # the inverse transpose, applied to row vectors
                length = np.linalg.norm(n, axis=1, keepdims=True)
                normals.append((n / np.maximum(length, 1e-30)).astype(np.float32))
            if p.uvs is not None:
                uvs.append(p.uvs)
            if p.colors is not None:
                colors.append(p.colors)
        parts.append(
            Primitive(
                np.concatenate(positions),
                np.concatenate(indices),
                items[0][0].material,
                normals=np.concatenate(normals) if normals else None,
                uvs=np.concatenate(uvs) if uvs else None,
                colors=np.concatenate(colors) if colors else None,
            )
        )
    flat = Scene(scene.name)
    flat.add_node(scene.name or "model", mesh=Mesh(scene.name or "model", tuple(parts)) if parts else None)
    return flat


# -- statistics --------------------------------------------------------------------------------------------


def _bounds(scene: Scene, points: dict[int, PointCloud]) -> NDArray[np.float64]:
    boxes = []
    whole = scene.bounds(visible_only=False)
    if whole is not None:
        boxes.append(whole)
    for node_id, cloud in points.items():
        world = scene.world_transform(node_id)
        moved = cloud.positions @ world[:3, :3].T + world[:3, 3]
        boxes.append(np.stack([moved.min(axis=0), moved.max(axis=0)]))
    if not boxes:
        return np.zeros((2, 3))
    stacked = np.stack(boxes)
    out: NDArray[np.float64] = np.stack([stacked[:, 0].min(axis=0), stacked[:, 1].max(axis=0)])
    return out


def _statistics(scene: Scene, points: dict[int, PointCloud]) -> dict[str, Any]:
    """ARR's ``inputStatistics``: mesh parts are primitives; depth counts a root as 1."""
    parts = {id(p): p for m in scene.meshes() for p in m.primitives}
    faces = [p.triangle_count for p in parts.values()]
    depth: dict[int, int] = {}
    for node in scene.nodes():
        depth[node.id] = 1 + (depth[node.parent] if node.parent is not None else 0)
    point_count = sum(len(c.positions) for c in points.values())
    stats = {
        "numMeshes": len(parts) + len(points),
        "numFaces": sum(faces),
        "numVertices": sum(len(p.positions) for p in parts.values()) + point_count,
        "numMaterial": len({id(p.material) for p in parts.values()}),
        "numFacesSmallestMesh": min(faces, default=0),
        "numFacesBiggestMesh": max(faces, default=0),
        "numNodes": len(scene),
        "numMeshUsagesInScene": sum(len(n.mesh.primitives) for n in scene.nodes() if n.mesh is not None)
        + len(points),
        "maxNodeDepth": max(depth.values(), default=0),
    }
    if points:
        stats["numPoints"] = point_count
    return stats


def _parts(scene: Scene) -> dict[str, int]:
    """ARR's ``numMeshPartsCreated`` (distinct parts in the asset, levels of detail not counted) and
    ``numMeshPartsInstanced`` (parts used by more than one node)."""
    uses: dict[int, int] = {}
    for node in scene.nodes():
        if node.mesh is not None:
            for p in node.mesh.primitives:
                uses[id(p)] = uses.get(id(p), 0) + 1
    return {"numMeshPartsCreated": len(uses), "numMeshPartsInstanced": sum(1 for n in uses.values() if n > 1)}
