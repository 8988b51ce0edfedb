"""OpenUSD (``.usd``, ``.usda``, ``.usdc``, ``.usdz``), read by Pixar's own library (``usd-core``, module
``pxr``): the stage is composed by the library (sublayers, references, payloads, variants, instancing),
then walked here into openrr's scene.

A package of its own, not one module, because a stage takes separate steps, each its own module: opening
it confined to the model's folder (``stage``), walking its prims into nodes (``walk``), turning a
``UsdGeomMesh`` into triangles (``geometry``; implicit shapes: ``shapes``) and a ``UsdPreviewSurface``
into a material with its textures (``materials``). Only this module is imported when the readers are
listed; ``pxr`` is imported when a USD file is read (``source.library``), so a machine without
``usd-core`` lists the format and fails only its conversions, with a message naming the package.

Conventions kept (documented in the README's formats list):

* the stage's ``upAxis`` and ``metersPerUnit`` are applied to each top node (Z-up turns to openrr's Y-up;
  units become metres), so the model arrives upright and in metres before ``ConversionSettings`` apply;
* colours are linear (USD's convention): ``gammaToLinear*`` default to false for USD;
* the default time code is read (no animation); subdivision surfaces are drawn as their control cage.
"""

from __future__ import annotations

from pathlib import Path

from openrr.assets.job import Job
from openrr.assets.readers.source import Reader, Source, library
from openrr.model.metadata import MetadataKeeper

FORMATS = {
    ".usd": "OpenUSD",
    ".usda": "OpenUSD (text)",
    ".usdc": "OpenUSD (binary crate)",
    ".usdz": "OpenUSD package (USDZ)",
}


def read(job: Job, path: Path, extension: str, metadata: MetadataKeeper) -> Source:
    """The stage's default prim (every root prim where it names none) as nodes, meshes and materials."""
    library("pxr.Usd", FORMATS[extension], "usd-core")
    from openrr.assets.readers.usd.stage import open_stage  # needs pxr: imported here
    from openrr.assets.readers.usd.walk import build_scene

    with open_stage(job, path) as opened:
        scene = build_scene(job, opened, path.name, metadata)
    return Source(scene, {}, FORMATS[extension], opened.version, opened.generator, sidedness_in_file=True)


READER = Reader(FORMATS, read)
