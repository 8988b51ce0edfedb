"""STEP CAD models (ISO 10303-21: AP203, AP214, AP242), read by Open CASCADE (package cadquery-ocp-novtk).

The work is ``openrr.assets.cad.step_document``'s (assembly tree, names, colours, units to metres,
tessellation within a triangle budget), loaded only here, when a STEP file is converted. This module
reads the header (schema and originating system, for ``info.json``) and turns every failure into
``ConversionFailed``. STEP carries no object metadata that ARR kept: ``metadata`` selects nothing here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from openrr.assets import ConversionFailed
from openrr.assets.cad import TriangleBudget
from openrr.assets.job import Job
from openrr.assets.readers.source import Reader, Source, library
from openrr.model.metadata import MetadataKeeper

FORMATS = {".step": "STEP", ".stp": "STEP"}
PACKAGE = "cadquery-ocp-novtk"
_HEADER_BYTES = 64 << 10  # a STEP header is a few hundred bytes; a comment may make it longer
_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_TOKEN = re.compile(r"'((?:[^']|'')*)'|(\()|(\))")


def read(job: Job, path: Path, extension: str, metadata: MetadataKeeper) -> Source:
    version, generator = _header(path)
    module: Any = library("openrr.assets.cad.step_document", FORMATS[extension], PACKAGE)
    try:
        model = module.read_step(path, TriangleBudget(path.name))
    except module.ERRORS as exc:
        raise ConversionFailed(
            f"{path.name}: invalid STEP data: {type(exc).__name__}: {exc}".rstrip(": ")
        ) from None
    units = ", ".join(model.file_units) or "none declared"
    job.say(f"STEP length unit(s): {units}; converted to metres; {model.triangles} triangles")
    return Source(model.scene, {}, FORMATS[extension], version, generator)


def _header(path: Path) -> tuple[str, str]:
    """The file's schema (``FILE_SCHEMA``) and originating system (``FILE_NAME``'s sixth field, else its
    preprocessor); ``ConversionFailed`` unless the file starts as ISO 10303-21 does."""
    try:
        with path.open("rb") as f:
            head = f.read(_HEADER_BYTES).decode("latin-1")
    except OSError as exc:
        raise ConversionFailed(f"{path.name}: cannot read the file ({exc.strerror})") from None
    if not head.lstrip("\ufeff \t\r\n").startswith("ISO-10303-21"):
        raise ConversionFailed(f"{path.name} is not a STEP file: it does not start with 'ISO-10303-21;'")
    head = _COMMENT.sub("", head)
    schema = _fields(head, "FILE_SCHEMA")
    name = _fields(head, "FILE_NAME")
    generator = ""
    if len(name) >= 6:
        generator = next((s for s in (name[5], name[4]) if isinstance(s, str) and s.strip()), "")
    version = schema[0][0] if schema and isinstance(schema[0], list) and schema[0] else ""
    return str(version).strip(), generator.strip()


def _fields(head: str, entity: str) -> list[Any]:
    """The top-level arguments of ``entity(...)`` in the header: strings, and lists of strings."""
    start = re.search(rf"\b{entity}\s*\(", head)
    if start is None:
        return []
    stack: list[list[Any]] = [[]]
    for match in _TOKEN.finditer(head, start.end()):
        text, opening, closing = match.groups()
        if opening:
            stack.append([])
        elif closing:
            if len(stack) == 1:
                return stack[0]
            inner = stack.pop()
            stack[-1].append(inner)
        elif text is not None:
            stack[-1].append(text.replace("''", "'"))
    return stack[0]


READER = Reader(FORMATS, read)
