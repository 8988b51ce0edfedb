"""What a streaming connection measures, and how: clock samples, frames joined with their ``frame``
messages, and the statistics made of them. Pure (no I/O): the benchmarks and tests feed it recorded data.

Measurements (all on the client's ``time.monotonic()`` clock):

* first-frame time: from the start of :meth:`RenderConnection.open` to the first decoded frame;
* glass-to-glass latency of a picture: its first decode here minus the server time ``t`` at which
  rendering of it began, moved onto the client clock with an offset estimated NTP-style from pings (the
  ping with the smallest round trip wins: its midpoint is the best bound on when the server read its
  clock); repeats of an unchanged picture (same ``frameId``) and pictures rendered before the connection
  was opened do not count;
* input → frame latency: from sending a camera request carrying a ``poseId`` to the first decoded frame
  whose ``frame`` message has a ``poseId`` at least that large.

Video frames and their ``frame`` messages travel on different transports and arrive in either order;
both are kept by ``pts`` (bounded) and joined when a report is made (:class:`FrameLog`).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard


def is_number(value: object) -> TypeGuard[int | float]:
    """A finite int or float, not a bool: a number as the data-channel messages carry it."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ClockSample:
    """One ping: client send and receive times (client monotonic) and the server's clock in between."""

    sent: float
    received: float
    server_time: float

    @property
    def rtt(self) -> float:
        return self.received - self.sent

    @property
    def offset(self) -> float:
        """server clock − client clock, assuming the server read its clock half way through the trip."""
        return self.server_time - (self.sent + self.received) / 2


@dataclass(frozen=True)
class Matched:
    """A decoded frame joined with its ``frame`` message."""

    pts: int
    received_at: float
    meta: Mapping[str, Any]

    @property
    def server_time(self) -> float | None:
        t = self.meta.get("t")
        return float(t) if is_number(t) else None

    @property
    def pose_id(self) -> int | None:
        pose = self.meta.get("poseId")
        return pose if isinstance(pose, int) and not isinstance(pose, bool) else None


# ---- statistics ------------------------------------------------------------------------------------------
def percentiles(values: Iterable[float], points: Sequence[float] = (50, 90, 99)) -> dict[str, float] | None:
    """``{"p50": ..., "p90": ..., "p99": ...}`` by linear interpolation between ranks (numpy's default
    method), or None for no values. Keys use the point's integer form when it has one (``p99``, ``p99.9``).
    """
    data = sorted(values)
    if not data:
        return None
    out: dict[str, float] = {}
    for p in points:
        if not 0 <= p <= 100:
            raise ValueError(f"percentile {p} is outside 0..100")
        rank = (len(data) - 1) * p / 100
        low = math.floor(rank)
        high = min(low + 1, len(data) - 1)
        value = data[low] + (data[high] - data[low]) * (rank - low)
        out[f"p{int(p) if float(p).is_integer() else p}"] = value
    return out


def best_clock_sample(samples: Iterable[ClockSample]) -> ClockSample | None:
    """The sample with the smallest round trip: its offset has the tightest error bound (± rtt / 2)."""
    return min(samples, key=lambda s: s.rtt, default=None)


def glass_to_glass_ms(
    frames: Iterable[Matched], offset: float, rendered_after: float | None = None
) -> list[float]:
    """Per picture: decode time here − start of its rendering on the server, in ms (``offset`` = server −
    client clock), in arrival order. When nothing changes the server sends its newest picture again (same
    ``frameId``, same ``t``); only a picture's first arrival counts, since later ones measure how old the
    picture is, not how long it took to show. For the same reason pictures rendered before
    ``rendered_after`` (client clock; e.g. the server's picture from before the client connected) are
    left out, as are frames without a server time."""
    out = []
    seen: set[Any] = set()
    for f in sorted(frames, key=lambda m: m.received_at):
        t = f.server_time
        frame_id = f.meta.get("frameId")
        if frame_id is not None:
            if frame_id in seen:
                continue
            seen.add(frame_id)
        if t is None or (rendered_after is not None and t - offset < rendered_after):
            continue
        out.append((f.received_at - (t - offset)) * 1000)
    return out


def input_latencies_ms(poses: Iterable[tuple[int, float]], frames: Iterable[Matched]) -> list[float]:
    """For each ``(poseId, sent_at)``: ms until the first frame, in arrival order, decoded after the send
    whose ``poseId`` is at least that id. Poses no frame has shown yet are skipped."""
    shown = sorted((f.received_at, f.pose_id) for f in frames if f.pose_id is not None)
    times = [t for t, _ in shown]
    out = []
    for pose_id, sent_at in poses:
        for received_at, frame_pose in itertools.islice(shown, bisect.bisect_left(times, sent_at), None):
            assert frame_pose is not None
            if frame_pose >= pose_id:
                out.append((received_at - sent_at) * 1000)
                break
    return out


def fps(arrivals: Sequence[float]) -> float | None:
    """Frames per second over the span of ``arrivals`` (sorted times), None for fewer than two."""
    if len(arrivals) < 2 or arrivals[-1] <= arrivals[0]:
        return None
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])


class FrameLog:
    """Decoded frames and ``frame`` messages by ``pts``, joined in whichever order they arrive.

    The protocol makes a ``frame`` message's pts equal the pts the receiver decodes, but aiortc's
    receiver counts from the first RTP timestamp it *decodes*: when the server's first pts is not exactly
    0 (it is when its first frame was taken, a fraction of a millisecond after its clock started) or the
    first frame was lost, both sides differ by a constant. :meth:`pts_shift` finds that constant from the
    newest entries, so the join holds either way. Each side keeps its newest ``limit`` entries, so a long
    connection holds bounded memory.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._received: OrderedDict[int, float] = OrderedDict()
        self._meta: OrderedDict[int, Mapping[str, Any]] = OrderedDict()
        self.max_pose_id: int | None = None

    def add_received(self, pts: int, received_at: float) -> None:
        self._received[pts] = received_at
        while len(self._received) > self.limit:
            self._received.popitem(last=False)

    def add_meta(self, meta: Mapping[str, Any]) -> None:
        pts = meta.get("pts")
        if not isinstance(pts, int) or isinstance(pts, bool):
            return
        self._meta[pts] = meta
        while len(self._meta) > self.limit:
            self._meta.popitem(last=False)
        pose = meta.get("poseId")
        if isinstance(pose, int) and not isinstance(pose, bool):
            self.max_pose_id = pose if self.max_pose_id is None else max(self.max_pose_id, pose)

    def arrivals(self, since: float | None = None) -> list[float]:
        return sorted(t for t in self._received.values() if since is None or t >= since)

    def pts_shift(self, sample: int = 32) -> int:
        """The constant ``c`` with message pts = decoded pts + ``c`` (0 when the server keeps the contract).

        Every pairing of the newest ``sample`` decoded frames with the newest messages votes for its
        difference; the most votes win and ties go to the smallest shift, which also settles perfectly
        regular frame intervals (where ``c`` ± one interval would match nearly as often). The contract's
        0 stands unless another shift has at least three votes and more than twice as many as 0.
        """
        received = list(itertools.islice(reversed(self._received), sample))
        messages = list(itertools.islice(reversed(self._meta), 3 * sample))
        if not received or not messages:
            return 0
        votes = Counter(m - r for r in received for m in messages)
        shift, count = max(votes.items(), key=lambda kv: (kv[1], -abs(kv[0])))
        return shift if count >= 3 and count > 2 * votes.get(0, 0) else 0

    def meta_for(self, pts: int) -> Mapping[str, Any] | None:
        """The ``frame`` message of the decoded frame ``pts``, once it has arrived."""
        return self._meta.get(pts + self.pts_shift())

    def matched(self, since: float | None = None) -> list[Matched]:
        """Decoded frames (received at or after ``since``) that have their ``frame`` message, by arrival.

        ``Matched.pts`` is the decoded frame's pts."""
        shift = self.pts_shift()
        out = [
            Matched(pts, at, self._meta[pts + shift])
            for pts, at in self._received.items()
            if pts + shift in self._meta and (since is None or at >= since)
        ]
        out.sort(key=lambda m: m.received_at)
        return out

    def meta(self, pts: int) -> Mapping[str, Any] | None:
        """The ``frame`` message of the decoded frame with ``pts``, if it came."""
        return self._meta.get(pts + self.pts_shift())


@dataclass(frozen=True)
class Measurements:
    """What a connection measured over a window (see the module doc for the definitions)."""

    frames: int
    fps: float | None
    width: int | None
    height: int | None
    codec: str | None
    first_frame_seconds: float | None
    latency_ms: dict[str, float] | None
    input_latency_ms: dict[str, float] | None
    rtt_ms: dict[str, float] | None
    # server clock − this machine's wall clock (time.time()): about 0 on one machine when the server
    # stamps wall-clock times, as openrr's does; the latencies use the monotonic offset underneath.
    clock_offset_ms: float | None
    matched_frames: int
    poses: int
    video_bytes: int  # encoded bytes of the frames received in the window, from their frame messages
    bytes_received: int | None  # everything the transport received (video, RTCP, data channel)
    packets_lost: int | None

    def to_json(self) -> dict[str, Any]:
        def r(value: float | None, digits: int = 2) -> float | None:
            return None if value is None else round(value, digits)

        def rp(value: dict[str, float] | None) -> dict[str, float] | None:
            return None if value is None else {k: round(v, 2) for k, v in value.items()}

        return {
            "frames": self.frames,
            "fps": r(self.fps),
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "firstFrameSeconds": r(self.first_frame_seconds, 3),
            "latencyMs": rp(self.latency_ms),
            "inputLatencyMs": rp(self.input_latency_ms),
            "rttMs": rp(self.rtt_ms),
            "clockOffsetMs": r(self.clock_offset_ms, 3),
            "matchedFrames": self.matched_frames,
            "poses": self.poses,
            "videoBytes": self.video_bytes,
            "bytesReceived": self.bytes_received,
            "packetsLost": self.packets_lost,
        }


def summarize(
    log: FrameLog,
    clock_samples: Sequence[ClockSample],
    poses: Iterable[tuple[int, float]],
    *,
    since: float | None,
    opened_at: float | None,
    first_frame_at: float | None,
    size: tuple[int, int] | None,
    codec: str | None,
    bytes_received: int | None,
    packets_lost: int | None,
    wall_minus_monotonic: float,
) -> Measurements:
    """What a connection measured over the frames decoded at or after ``since`` (client monotonic; None:
    all): ``log``, ``clock_samples`` and ``poses`` are what it recorded, ``opened_at`` and
    ``first_frame_at`` when it started opening and decoded its first frame, ``size`` its newest frame's;
    ``bytes_received`` and ``packets_lost`` come from its transport. ``wall_minus_monotonic`` (``time.time()
    - time.monotonic()``) turns the clock offset into one against this machine's wall clock."""
    arrivals = log.arrivals(since)
    matched = log.matched(since)
    best = best_clock_sample(clock_samples)
    latency = glass_to_glass_ms(matched, best.offset, opened_at) if best is not None else []
    window_poses = [(p, t) for p, t in poses if since is None or t >= since]
    video_bytes = sum(int(m.meta["bytes"]) for m in matched if isinstance(m.meta.get("bytes"), int | float))
    first = first_frame_at - opened_at if first_frame_at is not None and opened_at is not None else None
    return Measurements(
        frames=len(arrivals),
        fps=fps(arrivals),
        width=size[0] if size is not None else None,
        height=size[1] if size is not None else None,
        codec=codec,
        first_frame_seconds=first,
        latency_ms=percentiles(latency),
        input_latency_ms=percentiles(input_latencies_ms(window_poses, matched)),
        rtt_ms=percentiles(s.rtt * 1000 for s in clock_samples),
        clock_offset_ms=(best.offset - wall_minus_monotonic) * 1000 if best else None,
        matched_frames=len(matched),
        poses=len(window_poses),
        video_bytes=video_bytes,
        bytes_received=bytes_received,
        packets_lost=packets_lost,
    )
