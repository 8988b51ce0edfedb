"""The model library's folders on disk: which entries of ``library/`` are models or uploads being staged,
what a model's outputs take, moving a finished upload into place, and the statistics and logs the API shows
from a conversion's outputs. No store, no quota: ``models.py`` decides, this reads and moves files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from openrr.domain.library import LIBRARY_FOLDER
from openrr.errors import TryAgain

STAGING_SUFFIX = ".upload"  # library/<modelId>.upload/: an upload being written, not yet a model
_LOG_TAIL = 64 * 1024  # the end of each log the API shows: the error is at the end


def asset_bytes(library: Path) -> int:
    """The bytes of the conversions' outputs in ``library`` (each model's ``asset/``), as they are now."""
    total = 0
    for _, model_id in library_entries(library):
        try:
            with os.scandir(library / model_id / "asset") as found:
                total += sum(
                    e.stat(follow_symlinks=False).st_size for e in found if e.is_file(follow_symlinks=False)
                )
        except OSError:  # no asset yet, or a staging folder
            continue
    return total


def place_upload(staging: Path, folder: Path, files: dict[str, int]) -> None:
    """Move an upload's staging folder into its model's folder, as ``source/``, if it holds the files the
    upload wrote: another control-plane replica's sweep, which cannot know this process's uploads, may have
    removed it meanwhile, and a model must not be recorded with files missing."""
    found = {p.relative_to(staging).as_posix(): p.stat().st_size for p in staging.rglob("*") if p.is_file()}
    if found != files:
        raise TryAgain("The upload's files were removed while it was written; send it again.")
    folder.mkdir()
    staging.rename(folder / "source")


def account_folders(root: Path) -> list[str]:
    try:
        return [p.name for p in root.iterdir() if (p / LIBRARY_FOLDER).is_dir()]
    except OSError:
        return []


def library_entries(library: Path) -> list[tuple[str, str]]:
    """(folder name, model id) of each model folder and staging folder in ``library``; nothing else there
    is the library's."""
    try:
        names = [p.name for p in library.iterdir()]
    except OSError:
        return []
    found = []
    for name in names:
        model_id = name.removesuffix(STAGING_SUFFIX)
        if is_model_id(model_id):
            found.append((name, model_id))
    return found


def is_model_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def read_details(asset: Path) -> dict[str, Any]:
    info = _json(asset / "model.info.json")
    inputs = _dict(info.get("inputStatistics"))
    outputs = _dict(info.get("outputStatistics"))
    box = _dict(outputs.get("boundingBox"))
    source = _dict(info.get("inputInfo"))
    statistics = {
        "format": source.get("sourceAssetFormat"),
        "triangles": inputs.get("numFaces"),
        "vertices": inputs.get("numVertices"),
        "points": inputs.get("numPoints", 0 if inputs else None),
        "materials": inputs.get("numMaterial"),
        "textures": _dict(info.get("openrr")).get("textures"),  # null if converted before it was counted
        "meshes": inputs.get("numMeshes"),
        "nodes": inputs.get("numNodes"),
        "bounds": {"min": box["min"], "max": box["max"]} if "min" in box and "max" in box else None,
        "assetBytes": _dict(info.get("openrr")).get("assetBytes"),
    }
    log = "".join(_tail(asset / name) for name in ("model.service.log", "model.log"))
    return {"statistics": statistics if info else None, "log": log}


def _json(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > 4 << 20:
            return {}
        return _dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - _LOG_TAIL))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
