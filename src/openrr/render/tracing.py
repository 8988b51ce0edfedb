"""The render server's trace recorder: a bounded ring of timing events and running frame totals.

The client connection feeds it with every frame sent (the ``Frame`` the pipeline rendered and the
``SentFrame`` the track encoded) and every command; the inspector serves it as a Chrome tracing capture
(``/trace``) and turns its totals into history samples and metrics. Apart from the inspector because the
connection writes to it and knows nothing of the inspector's HTTP side.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from openrr.model.sources import display_name
from openrr.protocol import datachannel as protocol
from openrr.render.frame import Frame
from openrr.render.track import SentFrame

TRACE_CAPACITY = 20_000  # events: about 5 minutes at 30 fps (a render and an encode span per frame)

# Trace "threads": the GL thread renders, the encoder thread encodes, the event loop takes commands.
RENDER_TID, ENCODE_TID, LOOP_TID = 1, 2, 3
_THREAD_NAMES = {
    RENDER_TID: "openrr-gl (render)",
    ENCODE_TID: "openrr-encode (encode)",
    LOOP_TID: "event loop (commands)",
}


@dataclasses.dataclass
class FrameTotals:
    """Running totals since the server started (all clients), read by the sampler and /metrics."""

    frames_sent: int = 0
    keyframes: int = 0
    bytes_sent: int = 0
    encode_ms: float = 0.0
    renders: int = 0
    render_ms: float = 0.0


@dataclasses.dataclass(frozen=True)
class _Event:
    ph: str  # "X" complete, "i" instant
    name: str
    cat: str
    tid: int
    ts: int  # µs since the epoch
    dur: int  # µs ("X" only)
    scope: str  # "t" thread, "p" process ("i" only)
    args: dict[str, Any]


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _loop_clock() -> float:
    """The event loop's clock (``SentFrame.captured_at`` is on it), or ``time.monotonic`` outside one."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


FrameObserver = Callable[[float | None, float], None]  # (render ms or None, encode ms)


class Tracer:
    """A bounded ring of trace events and running frame totals.

    :meth:`frame` is called on the event loop for every frame sent: a render span on the GL thread (once
    per rendered frame; an unchanged picture is sent again without a render) and an encode span on the
    encoder thread. :meth:`command` and :meth:`instant` add instant events.
    """

    def __init__(self, capacity: int = TRACE_CAPACITY, *, on_frame: FrameObserver | None = None) -> None:
        self.capacity = capacity
        self._events: deque[_Event] = deque(maxlen=capacity)
        self._last_rendered = 0
        self.totals = FrameTotals()
        self.on_frame = on_frame

    def __len__(self) -> int:
        return len(self._events)

    def frame(self, sent: SentFrame, rendered: Frame | None) -> None:
        render_ms: float | None = None
        if rendered is not None and rendered.frame_id > self._last_rendered:
            self._last_rendered = rendered.frame_id
            render_ms = rendered.render_ms
            self._events.append(
                _Event(
                    "X",
                    "render",
                    "render",
                    RENDER_TID,
                    _us(rendered.started),
                    max(1, _us(rendered.render_ms / 1000)),
                    "",
                    {
                        "frameId": rendered.frame_id,
                        "poseId": rendered.pose_id,
                        "triangles": rendered.triangles,
                    },
                )
            )
            self.totals.renders += 1
            self.totals.render_ms += rendered.render_ms
        # The encode began when the frame was taken from the pipeline (on the loop's clock).
        began = sent.captured_at + (time.time() - _loop_clock())
        self._events.append(
            _Event(
                "X",
                "encode keyframe" if sent.keyframe else "encode",
                "encode",
                ENCODE_TID,
                _us(began),
                max(1, _us(sent.encode_ms / 1000)),
                "",
                {"frameId": sent.frame_id, "pts": sent.pts, "keyframe": sent.keyframe, "bytes": sent.size},
            )
        )
        totals = self.totals
        totals.frames_sent += 1
        totals.keyframes += int(sent.keyframe)
        totals.bytes_sent += sent.size
        totals.encode_ms += sent.encode_ms
        if self.on_frame is not None:
            self.on_frame(render_ms, sent.encode_ms)

    def instant(self, name: str, *, cat: str = "session", process_wide: bool = True, **args: Any) -> None:
        self._events.append(
            _Event("i", name, cat, LOOP_TID, _us(time.time()), 0, "p" if process_wide else "t", args)
        )

    def command(self, request: protocol.Request) -> None:
        """An instant event for a data-channel request (pings and stats requests are left out)."""
        args: dict[str, Any]
        if request.type.startswith("camera."):
            args = request.model_dump(exclude={"v", "type"}, exclude_none=True)
        elif isinstance(request, protocol.ModelLoad):
            # Never the URL's query string or credentials (a SAS token must not reach a capture).
            args = {"modelId": request.modelId or display_name(request.url)}
        elif isinstance(request, protocol.ModelUnload):
            args = {"modelId": request.modelId}
        elif isinstance(request, protocol.NodeSet):
            args = {"node": request.node}
        elif isinstance(request, protocol.Pick):
            args = {"x": request.x, "y": request.y}
        else:
            return
        if request.id is not None:
            args["id"] = request.id
        self.instant(request.type, cat="command", process_wide=False, **args)

    def chrome_trace(self, process_name: str) -> dict[str, Any]:
        """The events as Chrome tracing JSON (``chrome://tracing``, Perfetto): timestamps in µs."""
        pid = os.getpid()
        events: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": process_name}}
        ]
        for tid, name in _THREAD_NAMES.items():
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}})
            events.append(
                {"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}}
            )
        for e in list(self._events):
            event: dict[str, Any] = {
                "name": e.name,
                "cat": e.cat,
                "ph": e.ph,
                "ts": e.ts,
                "pid": pid,
                "tid": e.tid,
                "args": e.args,
            }
            if e.ph == "X":
                event["dur"] = e.dur
            else:
                event["s"] = e.scope
            events.append(event)
        return {"traceEvents": events, "displayTimeUnit": "ms"}
