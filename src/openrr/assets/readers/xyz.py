"""XYZ point clouds: text, one point a line (``x y z``, ``x y z i``, ``x y z r g b`` or ``x y z r g b i``),
read by numpy."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from openrr.assets import ConversionFailed
from openrr.assets.job import Job
from openrr.assets.readers.source import Reader, Source, point_source
from openrr.model.metadata import MetadataKeeper

FORMATS = {".xyz": "XYZ point cloud"}


def read(job: Job, path: Path, extension: str, metadata: MetadataKeeper) -> Source:
    """Values separated by spaces, tabs, commas or semicolons; ``#`` and ``//`` start comments. Colours
    in 0..255, or 0..1 if no value exceeds 1; an intensity alone becomes grey."""
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
    return point_source(path, values[:, :3].astype(np.float32), colors, FORMATS[extension])


READER = Reader(FORMATS, read)
