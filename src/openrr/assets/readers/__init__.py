"""The converter's input formats, one reader module per format family.

Each module here declares ``READER``: the extensions it reads (lower case, with the dot) with the format's
name for ``info.json``, and ``read(job, path, extension, metadata)``, which returns the model as read
(``Source``: a scene, and point clouds by node id) before any conversion setting is applied. The registry
finds the modules by listing this package, so adding a format is adding one file. A reader imports its
format's library inside ``read`` (``source.library``): listing the formats stays cheap, and a missing
library fails that one format with a message naming what to install.

Every problem with a file raises ``ConversionFailed`` with a message for the user; no library's exception
escapes a reader.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path

from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.assets.readers.source import Reader, Source
from openrr.model.metadata import MetadataKeeper


@functools.cache
def readers() -> dict[str, Reader]:
    """Every extension this package reads, with its reader (each module of the package once)."""
    found: dict[str, Reader] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "source":
            continue
        reader = importlib.import_module(f"{__name__}.{info.name}").READER
        for extension in reader.formats:
            if extension in found:
                raise RuntimeError(f"two readers for {extension}: {info.name} and another")
            found[extension] = reader
    return found


def formats() -> dict[str, str]:
    """Extension → format name, for every format openrr converts."""
    return {extension: reader.formats[extension] for extension, reader in readers().items()}


def check_format(extension: str) -> None:
    """``ConversionFailed`` (``UnsupportedFormat``) unless a reader takes ``extension``."""
    if extension not in readers():
        supported = ", ".join(sorted(readers()))
        raise ConversionFailed(
            f"unsupported input format {extension or '(no extension)'!r}: openrr converts {supported}",
            code="UnsupportedFormat",
        )


def read_input(job: Job, path: Path, extension: str, metadata: MetadataKeeper) -> Source:
    """The model at ``path``, read by the reader of ``extension`` (``check_format`` first). Nodes keep
    the object metadata ``metadata`` selects, where the format has any."""
    check_format(extension)
    return readers()[extension].read(job, path, extension, metadata)


__all__ = ["Reader", "Source", "check_format", "formats", "read_input", "readers"]
