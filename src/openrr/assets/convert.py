"""Convert a source model into an ``.arrAsset`` and the files ARR's conversion service wrote beside it.

``convert_model(input_path, output_dir, output_name, settings, log)`` reads the model, applies the
conversion settings, builds levels of detail for big meshes and writes, in ``output_dir``:

* ``<name>.arrAsset``: the asset (``openrr.model.arrasset``, ``docs/arrasset.md``);
* ``<name>.info.json``: ARR's info file (``files``, ``conversionSettings``, ``inputInfo``,
  ``inputStatistics``, ``materialOverrides`` where an override file was used, ``outputInfo``,
  ``outputStatistics``), plus an ``openrr`` section (levels of detail, timings, sizes);
* ``<name>.result.json``: ARR's result file, a JSON array: ``{"conversionId"}``, the warnings, at most
  one error, and ``{"result": "succeeded" | "succeeded with warnings" | "failed"}``;
* ``<name>.log``: the log lines, also passed one by one to ``log``.

The steps have modules of their own: ``readers`` (one module per input format, which keep the nodes'
object metadata that ``metadataKeys`` selects), ``overrides`` and ``material_edits`` (the material
override file), ``transform`` (the settings and overrides applied), ``openrr.model.lod`` (levels of
detail), ``openrr.model.arrasset`` (the writer) and ``statistics`` (ARR's statistics); ``job`` records the
log, warnings and timings. This module runs them in order and writes the files.

Every problem with the input (a missing or corrupt file, an unsupported format, bad settings) raises
``ConversionFailed`` after ``<name>.result.json`` and ``<name>.log`` have been written; so does an
unexpected error, with the code ``InternalError`` and its traceback in the log only.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openrr import __version__
from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.assets.material_edits import UNMAPPED
from openrr.assets.overrides import OVERRIDES_SUFFIX, MaterialOverrides, overrides_file_for
from openrr.assets.readers import Source, check_format, read_input
from openrr.assets.settings import ConversionSettings, settings_file_for
from openrr.assets.statistics import bounds, input_statistics, parts, texture_count
from openrr.assets.transform import apply_settings
from openrr.model.arrasset.layout import Asset
from openrr.model.arrasset.manifest import conversion_hash
from openrr.model.arrasset.vertex import VertexFormat
from openrr.model.arrasset.writer import write_asset
from openrr.model.lod import build_lods
from openrr.model.mesh import Mesh
from openrr.model.metadata import KeyPatterns, MetadataKeeper
from openrr.model.point_order import with_levels
from openrr.model.points import PointCloud
from openrr.model.scene import Scene

MAX_INPUT_BYTES = 8 << 30  # the model file itself (a .gltf's buffers and textures: the glTF reader's limit)

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
    job = Job(log)
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
    job: Job,
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
    job: Job, input_path: Path, output_dir: Path, stem: str, given: ConversionSettings | None
) -> tuple[Path, Path, dict[str, Any], int]:
    extension = input_path.suffix.lower()
    job.say(f"openrr {__version__} converting {input_path.name} to {stem}{ASSET_SUFFIX}")
    size = _check_input(input_path, extension)
    settings = _settings(job, input_path, given).for_format(extension)
    job.settings = settings

    keeper = MetadataKeeper(KeyPatterns(settings.metadata_keys))
    with job.step("load"):
        source = read_input(job, input_path, extension, keeper)
    job.say(f"read {input_path.name} ({size} bytes) in {job.timings['load']:.2f} s: {source.format_name}")
    statistics = _input_statistics(job, input_path, source)
    _report_metadata(job, settings, keeper)
    _warn_unused(job, settings, bool(source.points))
    overrides = _overrides(job, input_path, settings, bool(source.points))

    with job.step("transform"):
        scene, points, offset = apply_settings(job, source, settings, overrides)
    if overrides is not None:
        _report_overrides(job, overrides)
    with job.step("levels_of_detail"):
        _add_lods(job, scene)
        points = _order_points(job, scene)
    low_high = bounds(scene)
    output_statistics: dict[str, Any] = {
        **parts(scene),
        "recenteringOffset": offset,
        "boundingBox": {"min": low_high[0].tolist(), "max": low_high[1].tolist()},
    }
    asset = Asset(scene, points=points, unlit=settings.unlit_materials and not points)
    asset.statistics = {"inputStatistics": statistics, "outputStatistics": output_statistics}
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

    info = _info(job, input_path, asset_path, settings, source, asset, data, overrides)
    info_path = output_dir / f"{stem}.info.json"
    _write_atomic(info_path, (json.dumps(info, indent=2) + "\n").encode())
    return asset_path, info_path, info, len(data)


def _check_input(input_path: Path, extension: str) -> int:
    """The input's size, once its format is one openrr converts and the file is there and not too big."""
    check_format(extension)
    if not input_path.is_file():
        raise ConversionFailed(f"input file not found: {input_path.name}", code="InputNotFound")
    size = input_path.stat().st_size
    if size > MAX_INPUT_BYTES:
        raise ConversionFailed(
            f"{input_path.name} is larger than {MAX_INPUT_BYTES} bytes", code="InputTooLarge"
        )
    return size


def _input_statistics(job: Job, input_path: Path, source: Source) -> dict[str, Any]:
    """ARR's ``inputStatistics``, logged; ``ConversionFailed`` for a model with nothing to convert."""
    statistics = input_statistics(source.scene, source.points)
    job.say(
        f"input: {statistics['numNodes']} nodes, {statistics['numMeshes']} mesh parts, "
        f"{statistics['numFaces']} triangles, {statistics['numVertices']} vertices, "
        f"{statistics['numMaterial']} materials"
    )
    if source.scene.polygon_count == 0 and not source.points:
        raise ConversionFailed(
            f"{input_path.name} holds no triangles or points to convert", code="EmptyModel"
        )
    return statistics


def _order_points(job: Job, scene: Scene) -> dict[int, PointCloud]:
    """Order each point cloud's points for its levels of detail (every prefix an even subsample);
    the clouds by node id."""
    clouds: dict[int, PointCloud] = {}
    for node in scene.point_clouds():
        assert node.points is not None
        node.points = clouds[node.id] = with_levels(node.points)
        job.say(f"{node.name}: {node.points.count} points in {len(node.points.levels)} levels of detail")
    return clouds


def _add_lods(job: Job, scene: Scene) -> None:
    """Give each big mesh its levels of detail; instances keep sharing one mesh."""
    with_lods: dict[int, Mesh] = {}
    for node in scene.nodes():
        if node.mesh is not None:
            if id(node.mesh) not in with_lods:
                levels = build_lods(node.mesh, progress=job.say)
                with_lods[id(node.mesh)] = (
                    Mesh(node.mesh.name, node.mesh.primitives, lods=levels) if levels else node.mesh
                )
            node.mesh = with_lods[id(node.mesh)]


def _info(
    job: Job,
    input_path: Path,
    asset_path: Path,
    settings: ConversionSettings,
    source: Source,
    asset: Asset,
    data: bytes,
    overrides: MaterialOverrides | None,
) -> dict[str, Any]:
    """ARR's ``info.json`` (its statistics are the asset's), plus an ``openrr`` section."""
    default_name = input_path.stem + ASSET_SUFFIX
    files = {"input": input_path.name} | (
        {} if asset_path.name == default_name else {"output": asset_path.name}
    )
    applied = (
        {}
        if overrides is None
        else {
            "materialOverrides": {
                "numOverrides": len(overrides.entries),
                "numOverriddenMaterials": overrides.overridden_materials(),
            }
        }
    )
    return {
        "files": files,
        "conversionSettings": dict(settings.specified),
        "inputInfo": {
            "sourceAssetExtension": input_path.suffix,
            "sourceAssetFormat": source.format_name,
            "sourceAssetFormatVersion": source.format_version,
            "sourceAssetGenerator": source.generator,
        },
        "inputStatistics": asset.statistics["inputStatistics"],
        **applied,
        "outputInfo": {
            "conversionToolVersion": f"openrr {__version__}",
            "conversionHash": conversion_hash(data),
        },
        "outputStatistics": asset.statistics["outputStatistics"],
        "openrr": {
            "assetBytes": len(data),
            "textures": texture_count(asset.scene),  # not among ARR's statistics: the model library shows it
            "levelsOfDetail": [
                {"mesh": m.name, "triangles": [m.triangle_count, *(lv.mesh.triangle_count for lv in m.lods)]}
                for m in asset.scene.meshes()
                if m.lods
            ],
            "pointClouds": [
                {
                    "points": c.count,
                    "pointSize": c.point_size,
                    "levels": [{"points": v.count, "spacing": v.spacing} for v in c.levels],
                }
                for c in asset.points.values()
            ],
            "seconds": job.timings,
        },
    }


def _settings(job: Job, input_path: Path, given: ConversionSettings | None) -> ConversionSettings:
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


def _warn_unused(job: Job, settings: ConversionSettings, point_cloud: bool) -> None:
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
    if settings.scene_graph_mode == "none" and settings.metadata_keys:
        job.say("sceneGraphMode none: one node is left, so no object metadata is kept")
    if settings.scene_graph_mode == "static":
        job.say("sceneGraphMode static: converted like dynamic (openrr has no reparenting to forbid)")
    if not settings.generate_collision_mesh:
        job.say(
            "generateCollisionMesh false: no effect (openrr picks on the GPU and needs no collision mesh)"
        )


def _report_metadata(job: Job, settings: ConversionSettings, keeper: MetadataKeeper) -> None:
    """Log what ``metadataKeys`` kept; ``ConversionFailed`` past the per-asset limit."""
    if keeper.overflow:
        raise ConversionFailed(
            f"{keeper.summary()}: name fewer keys in metadataKeys", code="MetadataTooLarge"
        )
    if not settings.metadata_keys:
        job.say("no metadataKeys: no object metadata kept (ARR's default)")
        return
    job.say(
        f"object metadata: {keeper.kept} node(s) keep {keeper.used} bytes of the keys matching "
        f"metadataKeys {json.dumps(list(settings.metadata_keys))}"
    )


def _overrides(
    job: Job, input_path: Path, settings: ConversionSettings, point_cloud: bool
) -> MaterialOverrides | None:
    """The material override file of this conversion, read and validated, or None."""
    path, named = overrides_file_for(input_path, settings.material_override)
    if path is None:
        return None
    if point_cloud:
        job.say(f"{path.name}: ignored for a point cloud, as in ARR (points have no materials)")
        return None
    beside = input_path.with_name(input_path.stem + OVERRIDES_SUFFIX)
    if named and beside.is_file() and beside != path:
        job.say(f"{beside.name}: ignored, material-override names {path.name}")
    if named:
        job.warn(
            "DeprecatedMaterialOverride",
            "Deprecated material-override setting",
            f"read {path.name}; name it {input_path.stem}{OVERRIDES_SUFFIX} and drop material-override",
        )
    overrides = MaterialOverrides.load(path)
    job.say(f"material overrides: {path.name}, {len(overrides.entries)} entries")
    return overrides


def _report_overrides(job: Job, overrides: MaterialOverrides) -> None:
    """Warn about the properties openrr does not know and the entries that matched no material."""
    for entry in overrides.entries:
        for key in entry.unknown:
            job.warn(
                "UnknownMaterialOverrideProperty",
                "Unknown material override property",
                f"{overrides.source}: {entry.shown()}: {key!r} is not a property openrr applies; ignored",
            )
        unmapped = sorted(UNMAPPED & entry.changes.get("ignore", frozenset()))
        if unmapped:
            job.say(f"{entry.shown()}: {', '.join(unmapped)}: no such map in a metallic-roughness material")
    for entry in overrides.unmatched():
        job.warn(
            "MaterialOverrideUnused",
            "Material override matched no material",
            f"{overrides.source}: {entry.shown()} matched no material of the model",
        )
    job.say(
        f"material overrides: {len(overrides.applied)} of {len(overrides.entries)} entries applied to "
        f"{overrides.overridden_materials()} material(s)"
    )
