"""A rendered frame as the pipeline hands it to the video track, and the end of the track.

Apart from ``pipeline.py`` so that what reads frames (the track, the tracer, the inspector) need not import
the pipeline itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
from aiortc.mediastreams import MediaStreamError
from numpy.typing import NDArray


@dataclasses.dataclass(frozen=True)
class Frame:
    """One rendered picture and what produced it."""

    image: NDArray[np.uint8]
    frame_id: int
    pose_id: int | None
    started: float  # time.time() when the render began (the "glass" a latency is measured from)
    render_ms: float
    triangles: int
    xr: Mapping[str, Any] | None = None  # a stereo frame's eyes (the ``frame`` message's ``xr``)


class PipelineClosed(MediaStreamError):
    """The pipeline was closed (the server is stopping); as a ``MediaStreamError`` it ends the track."""
