"""A WebRTC client of a session's render server: receives video, speaks the data-channel protocol, measures.

Signalling follows ``protocol.handshake``: the client gathers its ICE candidates completely (aiortc has no
trickle ICE), then POSTs ``{"type": "offer", "sdp", "video"?}`` to ``http://hostname:handshakePort/offer``
with a connect token of the session (``ArrClient.connect_token``) and applies the answer.  The render
server's offer port is plain HTTP.
The data-channel messages are described in ``openrr.protocol.datachannel``.

Typical use::

    async with await connect_session(arr_client, session_id) as conn:
        await conn.sync_clock()
        await conn.wait_frames(60)
        await conn.orbit(15)
        report = await conn.measure()

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
both are kept by ``pts`` (bounded) and joined when a report is made.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import ipaddress
import itertools
import json
import math
import socket
import ssl
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeGuard
from urllib.parse import urlsplit

import aioice.ice
import av
import httpx
import numpy as np
import numpy.typing as npt
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel
from pydantic import BaseModel, TypeAdapter, ValidationError

from openrr.client import jitter
from openrr.client.rest import ArrClient
from openrr.compat.aioice import loopback_host_candidates
from openrr.protocol import datachannel as protocol
from openrr.protocol.handshake import DATA_CHANNEL_LABEL, OFFER_PATH

Codec = Literal["h264", "vp8"]
Image = npt.NDArray[np.uint8]

_REQUEST: TypeAdapter[protocol.Request] = TypeAdapter(protocol.Request)
_CAMERA_TYPES = frozenset({"camera.set", "camera.orbit", "camera.pan", "camera.zoom", "camera.frame"})
_CODEC_MIME = {"h264": "video/h264", "vp8": "video/vp8"}
_OFFER_STATUS_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    409: "ClientAlreadyConnected",
    503: "NotReady",
}


# ---- errors ---------------------------------------------------------------------------------------------
class RenderConnectError(Exception):
    """Connecting failed or the connection was lost.

    ``status`` is the HTTP status of the offer's answer, 0 when there was none (network error, timeout,
    connection lost). ``code`` is the server's error code (``ClientAlreadyConnected``...) or one of ours:
    ``ConnectionFailed``, ``Timeout``, ``BadAnswer``, ``ConnectionClosed``, ``SessionNotReady``.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}" if self.status else f"{self.code}: {self.message}"


class SessionNotReadyError(RenderConnectError):
    """The session exists but is not Ready (``status`` holds the session's status, e.g. ``Starting``)."""

    def __init__(self, session_id: str, session_status: str, message: str) -> None:
        super().__init__(0, "SessionNotReady", message)
        self.session_id = session_id
        self.session_status = session_status


class RenderRequestError(Exception):
    """The render server answered a data-channel request with an ``error`` message."""

    def __init__(self, code: str, message: str, request_type: str | None = None) -> None:
        super().__init__(code, message, request_type)
        self.code = code
        self.message = message
        self.request_type = request_type

    def __str__(self) -> str:
        where = f"{self.request_type}: " if self.request_type else ""
        return f"{where}{self.code}: {self.message}"


# ---- settings and records -------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoSettings:
    """What the offer asks for (``video`` in the offer body); None fields are left to the server."""

    width: int | None = None
    height: int | None = None
    fps: int | None = None
    bitrate: int | None = None  # bit/s
    codec: Codec | None = None

    def to_json(self) -> dict[str, Any]:
        fields = {
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "bitrate": self.bitrate,
            "codec": self.codec,
        }
        return {k: v for k, v in fields.items() if v is not None}


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
class ReceivedFrame:
    """A decoded video frame: ``pts`` (90 kHz, as the server's ``frame`` message) and when it arrived."""

    pts: int
    received_at: float
    frame: av.VideoFrame

    @property
    def width(self) -> int:
        return int(self.frame.width)

    @property
    def height(self) -> int:
        return int(self.frame.height)

    def image(self) -> Image:
        """The picture as an ``(H, W, 3)`` uint8 RGB array."""
        return np.asarray(self.frame.to_ndarray(format="rgb24"), dtype=np.uint8)


@dataclass(frozen=True)
class Matched:
    """A decoded frame joined with its ``frame`` message."""

    pts: int
    received_at: float
    meta: Mapping[str, Any]

    @property
    def server_time(self) -> float | None:
        t = self.meta.get("t")
        return float(t) if _is_number(t) else None

    @property
    def pose_id(self) -> int | None:
        pose = self.meta.get("poseId")
        return pose if isinstance(pose, int) and not isinstance(pose, bool) else None


# ---- pure measurement helpers ---------------------------------------------------------------------------
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


# ---- offer ----------------------------------------------------------------------------------------------
def offer_error(status: int, body: bytes) -> RenderConnectError:
    """The error for a non-2xx offer answer: the server's ``{"error": {"code", "message"}}`` when the body
    has one, else a code from the status and the start of the body as the message."""
    code = _OFFER_STATUS_CODES.get(status, f"HTTP{status}")
    message = f"the render server answered HTTP {status}"
    try:
        data = json.loads(body)
    except ValueError:
        # Not JSON (a proxy's page, a plain-text error): its start says more than the status alone.
        message = body[:300].decode("utf-8", "replace").strip() or message
    else:
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            code = str(data["error"].get("code") or code)
            message = str(data["error"].get("message") or message)
    return RenderConnectError(status, code, message)


def parse_answer(status: int, body: bytes) -> dict[str, Any]:
    """The answer of a 2xx offer response, checked: ``{"type": "answer", "sdp": str, "video"?: dict}``."""
    try:
        data = json.loads(body)
    except ValueError:
        raise RenderConnectError(status, "BadAnswer", "the answer is not JSON") from None
    if not isinstance(data, dict) or data.get("type") != "answer" or not isinstance(data.get("sdp"), str):
        raise RenderConnectError(status, "BadAnswer", "the answer is not {type: answer, sdp: ...}")
    if not isinstance(data.get("video", {}), dict):
        raise RenderConnectError(status, "BadAnswer", "the answer's video is not an object")
    return data


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


async def _loopback_addresses(host: str) -> list[str]:
    """The loopback addresses ``host`` names (none for a remote host)."""
    bare = host.strip("[]")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return [str(ip)] if ip.is_loopback else []
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(bare, None, type=socket.SOCK_STREAM)
    except OSError:
        return []  # the offer's POST reports the failure with the URL
    found: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%")[0]
        if ipaddress.ip_address(address).is_loopback and address not in found:
            found.append(address)
    return found


@contextlib.contextmanager
def _gathering_for(loopback: Sequence[str]) -> Iterator[None]:
    """ICE gathering that also offers ``loopback`` addresses (aioice leaves 127.0.0.1 out; see
    ``openrr.render.ice``), next to the usual host addresses so a server offering only those still pairs."""
    if not loopback:
        yield
        return
    usual = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
    with loopback_host_candidates([*loopback, *(a for a in usual if a not in loopback)]):
        yield


# ---- the connection -------------------------------------------------------------------------------------
@dataclass
class _Pending:
    future: asyncio.Future[tuple[dict[str, Any], float]]
    on_progress: Callable[[dict[str, Any]], None] | None


class RenderConnection:
    """One WebRTC connection to a render server: :meth:`open` it (or ``async with``), then :meth:`close`.

    ``timeout`` bounds connecting (gathering, offer, ICE/DTLS, ``hello``) and is the default for
    requests. ``ice`` defaults to no STUN/TURN server at all: aiortc's own default would contact Google's
    public STUN server, which a self-hosted deployment must not do unasked.
    """

    def __init__(
        self,
        host: str,
        port: int,
        token: str,
        *,
        video: VideoSettings | None = None,
        timeout: float = 10.0,
        ice: RTCConfiguration | None = None,
        log_limit: int = 20_000,
        scheme: str = "http",
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.scheme = scheme
        self._verify = verify
        self.video = video or VideoSettings()
        self.timeout = timeout
        self._token = token
        self._ice = ice if ice is not None else RTCConfiguration(iceServers=[])
        self._pc: RTCPeerConnection | None = None
        self._channel: RTCDataChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[str | int, _Pending] = {}
        self._ids = itertools.count(1)
        self._pose = 0
        self._changed = asyncio.Event()
        self._hello: dict[str, Any] | None = None
        self._closed = False
        self._lost: str | None = None
        self.log = FrameLog(log_limit)
        #: the answer's ``video``: the settings in effect
        self.answer_video: dict[str, Any] = {}
        #: every ``stats`` message received (pushed or answered), newest last
        self.stats_messages: deque[dict[str, Any]] = deque(maxlen=600)
        #: ``(poseId, sent_at)`` of every camera request sent
        self.poses: deque[tuple[int, float]] = deque(maxlen=log_limit)
        self.clock_samples: deque[ClockSample] = deque(maxlen=1000)
        self.started_at: float | None = None
        self.first_frame_at: float | None = None
        self.frames_received = 0
        self.latest: ReceivedFrame | None = None
        self.ignored_messages = 0
        #: the reason of the server's ``bye``, once it said goodbye
        self.bye_reason: str | None = None

    # ---- lifecycle --------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{self.scheme}://{_url_host(self.host)}:{self.port}{OFFER_PATH}"

    async def __aenter__(self) -> RenderConnection:
        if self._pc is None:
            await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> RenderConnection:
        """Offer, apply the answer and wait for the server's ``hello``; on failure everything is closed."""
        if self._pc is not None:
            raise RuntimeError("the connection was already opened")
        self.started_at = time.monotonic()
        pc = self._pc = RTCPeerConnection(configuration=self._ice)
        stage = "gathering ICE candidates"
        try:
            async with asyncio.timeout(self.timeout):
                transceiver = pc.addTransceiver("video", direction="recvonly")
                jitter.install(transceiver.receiver)  # frames decoded a frame interval sooner
                if self.video.codec is not None:
                    mime = _CODEC_MIME[self.video.codec]
                    codecs = RTCRtpSender.getCapabilities("video").codecs
                    # RTX stays so the server can retransmit on NACK.
                    transceiver.setCodecPreferences(
                        [c for c in codecs if c.mimeType.lower() in (mime, "video/rtx")]
                    )
                channel = self._channel = pc.createDataChannel(DATA_CHANNEL_LABEL, ordered=True)
                channel.on("message", self._on_message)
                channel.on("close", lambda: self._on_lost("the data channel closed"))
                pc.on("track", self._on_track)
                pc.on("connectionstatechange", self._on_connection_state)
                with _gathering_for(await _loopback_addresses(self.host)):
                    # aiortc's setLocalDescription returns once gathering is complete (no trickle ICE).
                    await pc.setLocalDescription(await pc.createOffer())
                stage = f"waiting for the answer from {self.url}"
                answer = await self._post_offer(pc.localDescription.sdp)
                self.answer_video = dict(answer.get("video") or {})
                stage = "applying the answer"
                await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
                stage = "connecting (ICE/DTLS) and waiting for the server's hello"
                await self._until(lambda: self._hello is not None)
        except TimeoutError:
            await self.close()
            raise RenderConnectError(
                0, "Timeout", f"no connection to {self.url} within {self.timeout:g} s ({stage})"
            ) from None
        except BaseException:
            await self.close()
            raise
        return self

    async def _post_offer(self, sdp: str) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "offer", "sdp": sdp}
        if video := self.video.to_json():
            body["video"] = video
        # trust_env=False: the media itself goes peer to peer, so an HTTP proxy from the environment could
        # only misroute the signalling (e.g. loopback traffic sent to a corporate proxy).
        async with httpx.AsyncClient(timeout=self.timeout, trust_env=False, verify=self._verify) as http:
            try:
                resp = await http.post(
                    self.url, json=body, headers={"Authorization": f"Bearer {self._token}"}
                )
            except httpx.TimeoutException:
                raise TimeoutError from None
            except httpx.HTTPError as exc:
                raise RenderConnectError(0, "ConnectionFailed", f"{self.url}: {exc}") from None
        if resp.status_code >= 300:
            raise offer_error(resp.status_code, resp.content)
        return parse_answer(resp.status_code, resp.content)

    async def close(self) -> None:
        """Close the peer connection and end the receiving task; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._fail_pending("the connection was closed")
        if self._channel is not None:
            self._channel.close()
        if self._pc is not None:
            await self._pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._notify()

    @property
    def connected(self) -> bool:
        return self._pc is not None and not self._closed and self._lost is None

    @property
    def hello(self) -> dict[str, Any] | None:
        """The server's ``hello`` (protocol, sessionId, video, polygonLimit, models, nodes, camera)."""
        return self._hello

    @property
    def latest_stats(self) -> dict[str, Any] | None:
        """The newest ``stats`` message (pushed once a second, or answered to ``stats.get``)."""
        return self.stats_messages[-1] if self.stats_messages else None

    @property
    def codec(self) -> str | None:
        """The video codec in effect, as the server reported it."""
        codec = self.answer_video.get("codec")
        if codec is None and self._hello is not None:
            codec = (self._hello.get("video") or {}).get("codec")
        return str(codec) if codec is not None else None

    # ---- events -----------------------------------------------------------------------------------------
    def _notify(self) -> None:
        # Waiters hold the event that was current when they started waiting; set it and start a new one.
        self._changed.set()
        self._changed = asyncio.Event()

    async def _until(self, done: Callable[[], bool]) -> None:
        """Wait until ``done()``; raise RenderConnectError if the connection ends first."""
        while not done():
            if self._closed:
                raise RenderConnectError(0, "ConnectionClosed", "the connection was closed")
            if self._lost is not None:
                raise RenderConnectError(0, "ConnectionClosed", self._lost)
            await self._changed.wait()

    def _on_lost(self, why: str) -> None:
        if self._lost is None and not self._closed:
            self._lost = why
        self._fail_pending(why)
        self._notify()

    def _fail_pending(self, why: str) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(RenderConnectError(0, "ConnectionClosed", why))
        self._pending.clear()

    def _on_connection_state(self) -> None:
        assert self._pc is not None
        if self._pc.connectionState in ("failed", "closed"):
            self._on_lost(f"the peer connection is {self._pc.connectionState}")

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            task = asyncio.ensure_future(self._receive(track))
            self._tasks.add(task)

    async def _receive(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if not isinstance(frame, av.VideoFrame) or frame.pts is None:
                    continue
                self.latest = ReceivedFrame(int(frame.pts), now, frame)
                self.log.add_received(int(frame.pts), now)
                self.frames_received += 1
                if self.first_frame_at is None:
                    self.first_frame_at = now
                self._notify()
        except MediaStreamError:
            self._on_lost("the video track ended")

    def _on_message(self, raw: str | bytes) -> None:
        now = time.monotonic()
        try:
            msg = json.loads(raw)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            self.ignored_messages += 1
            return
        kind = msg.get("type")
        if kind == "frame":
            self.log.add_meta(msg)
            return
        if kind == "hello":
            self._hello = msg
            self._notify()
            return
        if kind == "bye":
            # The server ends the connection (session stopping): say why instead of "connection closed".
            self.bye_reason = str(msg.get("reason") or "no reason given")
            self._on_lost(f"the render server ended the connection: {self.bye_reason}")
            return
        if kind == "stats":
            self.stats_messages.append(msg)
        re = msg.get("re")
        if not isinstance(re, str | int) or (pending := self._pending.get(re)) is None:
            if kind != "stats":
                self.ignored_messages += 1
            return
        if kind == "model.progress":
            if pending.on_progress is not None:
                pending.on_progress(msg)
            return
        del self._pending[re]
        if not pending.future.done():
            pending.future.set_result((msg, now))

    # ---- video ------------------------------------------------------------------------------------------
    def latest_image(self) -> Image | None:
        """The newest decoded frame as an ``(H, W, 3)`` RGB array (converted on demand), or None."""
        return None if self.latest is None else self.latest.image()

    async def wait_frames(self, count: int, timeout: float | None = None) -> int:
        """Wait until ``count`` frames in all have been decoded; returns the number decoded.

        Raises TimeoutError (after ``timeout``, default the connection's) or RenderConnectError.
        """
        timeout = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):
                await self._until(lambda: self.frames_received >= count)
        except TimeoutError:
            raise TimeoutError(
                f"{self.frames_received} of {count} video frames arrived within {timeout:g} s"
            ) from None
        return self.frames_received

    async def frames(
        self, count: int | None = None, timeout: float | None = None
    ) -> AsyncIterator[ReceivedFrame]:
        """Yield the newest frame each time one arrives, ``count`` times (forever for None); a consumer
        slower than the video skips frames. ``timeout`` bounds each wait (default: the connection's)."""
        timeout = self.timeout if timeout is None else timeout
        seen = self.frames_received
        produced = 0
        while count is None or produced < count:
            await self.wait_frames(seen + 1, timeout)
            seen = self.frames_received
            assert self.latest is not None
            produced += 1
            yield self.latest

    # ---- requests ---------------------------------------------------------------------------------------
    async def request(
        self,
        msg: Mapping[str, Any] | BaseModel,
        *,
        timeout: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        validate: bool = True,
    ) -> dict[str, Any]:
        """Send a request and return its answer (matched on ``re``). ``v`` and an ``id`` are added when
        missing. An ``error`` answer raises RenderRequestError; messages for the request before its answer
        (``model.progress``) go to ``on_progress``. ``validate=False`` sends what the protocol module would
        reject (to test a server's handling of bad messages)."""
        answer, _sent, _received = await self._exchange(msg, timeout, on_progress, validate)
        return answer

    async def _exchange(
        self,
        msg: Mapping[str, Any] | BaseModel,
        timeout: float | None,
        on_progress: Callable[[dict[str, Any]], None] | None,
        validate: bool,
    ) -> tuple[dict[str, Any], float, float]:
        body = msg.model_dump(mode="json", exclude_none=True) if isinstance(msg, BaseModel) else dict(msg)
        body["v"] = body.get("v", protocol.VERSION)
        if body.get("id") is None:
            body["id"] = next(self._ids)
        request_id = body["id"]
        kind = body.get("type")
        if validate:
            try:
                _REQUEST.validate_python(body)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
                )
                raise ValueError(f"not a valid {kind or 'request'}: {problems}") from None
        if not isinstance(request_id, str | int) or request_id in self._pending:
            raise ValueError(f"request id {request_id!r} is not a fresh string or integer")
        channel = self._channel
        if self._closed or self._lost is not None or channel is None or channel.readyState != "open":
            raise RenderConnectError(0, "ConnectionClosed", self._lost or "the data channel is not open")
        text = json.dumps(body, separators=(",", ":"), allow_nan=False)
        future: asyncio.Future[tuple[dict[str, Any], float]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = _Pending(future, on_progress)
        sent_at = time.monotonic()
        if kind in _CAMERA_TYPES and isinstance(body.get("poseId"), int):
            self.poses.append((body["poseId"], sent_at))
            self._pose = max(self._pose, body["poseId"])  # a caller's own ids count too
        timeout = self.timeout if timeout is None else timeout
        try:
            channel.send(text)
            answer, received_at = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(f"no answer to {kind} within {timeout:g} s") from None
        finally:
            self._pending.pop(request_id, None)
        if answer.get("type") == "error":
            raise RenderRequestError(
                str(answer.get("code", "Error")), str(answer.get("message", "")), str(kind) if kind else None
            )
        return answer, sent_at, received_at

    def next_pose_id(self) -> int:
        """A pose id above every one sent or seen, so a pose left over from an earlier client (still
        stamped on the first frames) cannot count as an answer to ours."""
        self._pose = max(self._pose, self.log.max_pose_id or 0) + 1
        return self._pose

    async def _camera(self, body: dict[str, Any]) -> dict[str, Any]:
        body["poseId"] = self.next_pose_id()
        return await self.request(body)

    async def orbit(self, yaw: float, pitch: float = 0.0) -> dict[str, Any]:
        """Orbit the camera around its target by ``yaw``/``pitch`` degrees; returns the ``ack``."""
        return await self._camera({"type": "camera.orbit", "yaw": yaw, "pitch": pitch})

    async def pan(self, dx: float, dy: float) -> dict[str, Any]:
        """Pan by fractions of the view."""
        return await self._camera({"type": "camera.pan", "dx": dx, "dy": dy})

    async def zoom(self, factor: float) -> dict[str, Any]:
        """Zoom; ``factor`` > 1 moves closer."""
        return await self._camera({"type": "camera.zoom", "factor": factor})

    async def set_camera(
        self,
        position: tuple[float, float, float],
        orientation: tuple[float, float, float, float],
        fov: float = 60.0,
    ) -> dict[str, Any]:
        """Place the camera: ``orientation`` is a quaternion x, y, z, w; ``fov`` in degrees."""
        return await self._camera(
            {"type": "camera.set", "position": list(position), "orientation": list(orientation), "fov": fov}
        )

    async def frame_scene(self) -> dict[str, Any]:
        """Fit the scene into the view."""
        return await self._camera({"type": "camera.frame"})

    async def load_model(
        self,
        url: str,
        model_id: str | None = None,
        *,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        timeout: float = 300.0,
    ) -> dict[str, Any]:
        """Load a model and return ``model.loaded`` (modelId, nodes, polygons); ``model.progress`` messages
        go to ``on_progress``. A refusal or failure raises RenderRequestError."""
        body: dict[str, Any] = {"type": "model.load", "url": url}
        if model_id is not None:
            body["modelId"] = model_id
        return await self.request(body, timeout=timeout, on_progress=on_progress)

    async def unload_model(self, model_id: str) -> dict[str, Any]:
        return await self.request({"type": "model.unload", "modelId": model_id})

    async def set_node(
        self,
        node: int | str,
        *,
        transform: Sequence[float] | None = None,
        visible: bool | None = None,
        color: tuple[float, float, float, float] | None = None,
        clear_color: bool = False,
    ) -> dict[str, Any]:
        """Change a node: local 4x4 ``transform`` (column-major), ``visible``, RGBA ``color`` override or
        ``clear_color`` to remove it."""
        body: dict[str, Any] = {"type": "node.set", "node": node}
        if transform is not None:
            body["transform"] = list(transform)
        if visible is not None:
            body["visible"] = visible
        if color is not None:
            body["color"] = list(color)
        if clear_color:
            body["clearColor"] = True
        return await self.request(body)

    async def pick(self, x: float, y: float) -> dict[str, Any]:
        """What is under view position ``x``, ``y`` (0..1, origin top left): the ``pick.result``."""
        return await self.request({"type": "pick", "x": x, "y": y})

    async def stats(self) -> dict[str, Any]:
        """The server's current ``stats``."""
        return await self.request({"type": "stats.get"})

    async def ping(self) -> ClockSample:
        """One round trip over the data channel; the sample is kept for the clock offset."""
        answer, sent, received = await self._exchange(
            {"type": "ping", "t": time.monotonic()}, None, None, True
        )
        server_time = answer.get("serverTime")
        if not _is_number(server_time):
            raise RenderRequestError("BadAnswer", "the pong has no serverTime", "ping")
        sample = ClockSample(sent, received, float(server_time))
        self.clock_samples.append(sample)
        return sample

    async def sync_clock(self, samples: int = 5) -> ClockSample:
        """Ping ``samples`` times and return the best sample so far (its ``offset``: server − client)."""
        for _ in range(samples):
            await self.ping()
        best = best_clock_sample(self.clock_samples)
        assert best is not None
        return best

    # ---- measurements -----------------------------------------------------------------------------------
    async def measure(self, since: float | None = None) -> Measurements:
        """Measurements over the frames decoded at or after ``since`` (client monotonic; default all)."""
        arrivals = self.log.arrivals(since)
        matched = self.log.matched(since)
        best = best_clock_sample(self.clock_samples)
        latency = glass_to_glass_ms(matched, best.offset, self.started_at) if best is not None else []
        poses = [(p, t) for p, t in self.poses if since is None or t >= since]
        video_bytes = sum(
            int(m.meta["bytes"]) for m in matched if isinstance(m.meta.get("bytes"), int | float)
        )
        bytes_received: int | None = None
        packets_lost: int | None = None
        if self._pc is not None and not self._closed:
            report = await self._pc.getStats()
            for stat in report.values():
                if stat.type == "transport":
                    bytes_received = (bytes_received or 0) + int(getattr(stat, "bytesReceived", 0))
                elif stat.type == "inbound-rtp":
                    packets_lost = (packets_lost or 0) + int(getattr(stat, "packetsLost", 0))
        first = (
            self.first_frame_at - self.started_at
            if self.first_frame_at is not None and self.started_at is not None
            else None
        )
        return Measurements(
            frames=len(arrivals),
            fps=fps(arrivals),
            width=self.latest.width if self.latest is not None else None,
            height=self.latest.height if self.latest is not None else None,
            codec=self.codec,
            first_frame_seconds=first,
            latency_ms=percentiles(latency),
            input_latency_ms=percentiles(input_latencies_ms(poses, matched)),
            rtt_ms=percentiles(s.rtt * 1000 for s in self.clock_samples),
            clock_offset_ms=(best.offset - (time.time() - time.monotonic())) * 1000 if best else None,
            matched_frames=len(matched),
            poses=len(poses),
            video_bytes=video_bytes,
            bytes_received=bytes_received,
            packets_lost=packets_lost,
        )


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---- entry points ---------------------------------------------------------------------------------------
async def connect(
    host: str,
    port: int,
    token: str,
    *,
    video: VideoSettings | None = None,
    timeout: float = 10.0,
    ice: RTCConfiguration | None = None,
    scheme: str = "http",
    verify: ssl.SSLContext | bool = True,
) -> RenderConnection:
    """Open a connection to the render server at ``host:port`` (see :class:`RenderConnection`)."""
    conn = RenderConnection(
        host, port, token, video=video, timeout=timeout, ice=ice, scheme=scheme, verify=verify
    )
    return await conn.open()


class RenderEndpoint(NamedTuple):
    host: str
    port: int
    token: str  # a connect token of the session
    scheme: str = "http"  # https where the service serves render ports with TLS (--render-tls-cert)


async def session_endpoint(client: ArrClient, session_id: str) -> RenderEndpoint:
    """Where a Ready session's render server is, with a connect token; SessionNotReadyError otherwise.

    ``ArrClient`` is synchronous, so its calls run in a worker thread to keep the event loop free.
    """
    session = await asyncio.to_thread(client.get_session, session_id)
    status = str(session.get("status"))
    if status != "Ready":
        message = f"session {session_id} is {status}, not Ready"
        error = session.get("error")
        if isinstance(error, dict) and error.get("code"):
            message += f" ({error.get('code')}: {error.get('message')})"
        raise SessionNotReadyError(session_id, status, message)
    host, port = session.get("hostname"), session.get("handshakePort")
    if not isinstance(host, str) or not host or not isinstance(port, int):
        raise RenderConnectError(0, "BadSession", f"session {session_id} has no hostname/handshakePort")
    grant = await asyncio.to_thread(client.connect_token, session_id)
    scheme = urlsplit(str(grant.get("handshakeUrl") or "http:")).scheme
    return RenderEndpoint(host, port, str(grant["token"]), "https" if scheme == "https" else "http")


async def connect_session(
    client: ArrClient,
    session_id: str,
    *,
    video: VideoSettings | None = None,
    timeout: float = 10.0,
    ice: RTCConfiguration | None = None,
) -> RenderConnection:
    """Look the session up through the REST API, require Ready, and connect to its render server."""
    found = await session_endpoint(client, session_id)
    return await connect(
        found.host,
        found.port,
        found.token,
        video=video,
        timeout=timeout,
        ice=ice,
        scheme=found.scheme,
        verify=client.verify,
    )
