"""IFC building models (ISO 16739: IFC2X3, IFC4, IFC4X3), read by IfcOpenShell (package ifcopenshell).

The work is ``openrr.assets.cad.ifc_model``'s (spatial structure, element types and property sets as
metadata, geometry in metres within a triangle budget), loaded only here, when an IFC file is converted.
This module turns every failure of the library into ``ConversionFailed`` and logs what it converted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openrr.assets import ConversionFailed
from openrr.assets.cad import TriangleBudget
from openrr.assets.job import Job
from openrr.assets.readers.source import Reader, Source, library
from openrr.model.metadata import MetadataKeeper

FORMATS = {".ifc": "IFC"}
PACKAGE = "ifcopenshell"


def read(job: Job, path: Path, extension: str, metadata: MetadataKeeper) -> Source:
    try:
        with path.open("rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise ConversionFailed(f"{path.name}: cannot read the file ({exc.strerror})") from None
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"ISO-10303-21"):
        raise ConversionFailed(
            f"{path.name} is not an IFC file in STEP physical format: it does not start with "
            "'ISO-10303-21;' (ifcXML and ifcZIP are not read: export .ifc)"
        )
    module: Any = library("openrr.assets.cad.ifc_model", FORMATS[extension], PACKAGE)
    try:
        model = module.read_ifc(path, TriangleBudget(path.name), metadata)
    except module.ERRORS as exc:
        raise ConversionFailed(f"{path.name}: invalid IFC data: {type(exc).__name__}: {exc}") from None
    job.say(
        f"IFC {model.schema}, length unit {model.unit_scale:g} m, converted to metres; "
        f"{model.triangles} triangles"
    )
    if model.without_geometry:
        job.warn(
            "GeometryDropped",
            "Geometry dropped",
            f"{path.name}: {model.without_geometry} IFC product(s) have a representation IfcOpenShell "
            "could not turn into a body mesh",
        )
    return Source(model.scene, {}, FORMATS[extension], model.schema, model.application)


READER = Reader(FORMATS, read)
