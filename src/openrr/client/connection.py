"""A WebRTC connection to a session's render server: receives video, speaks the data-channel protocol
(``openrr.protocol.datachannel``) and keeps what :mod:`openrr.client.measurements` needs.

Finding a session's server is in :mod:`openrr.client.session`, the offer and its answer in
:mod:`openrr.client.signalling`, requests waiting for answers in :mod:`openrr.client.requests` and the
requests themselves in :mod:`openrr.client.commands` (camera, models, nodes; ``scene``: the scene API).

Typical use::

    async with await connect_session(arr_client, session_id) as conn:
        await conn.sync_clock()
        await conn.wait_frames(60)
        await conn.orbit(15)
        report = await conn.measure()
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel
from pydantic import BaseModel

from openrr.client import jitter
from openrr.client.commands import RenderCommands
from openrr.client.errors import RenderConnectError, RenderRequestError
from openrr.client.measurements import (
    ClockSample,
    FrameLog,
    Measurements,
    best_clock_sample,
    is_number,
    summarize,
)
from openrr.client.requests import Progress, RequestTable
from openrr.client.signalling import (
    VideoSettings,
    gathering_for,
    loopback_addresses,
    offer_url,
    post_offer,
    prefer_codec,
)
from openrr.client.stereo import StereoFrame
from openrr.protocol.handshake import DATA_CHANNEL_LABEL
from openrr.protocol.xr import XrPose

Image = npt.NDArray[np.uint8]

_CAMERA_TYPES = frozenset({"camera.set", "camera.orbit", "camera.pan", "camera.zoom", "camera.frame"})


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


class RenderConnection(RenderCommands):
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
        self._requests = RequestTable()
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
        # The server's messages that answer no request, by type.
        self._unsolicited: dict[str, Callable[[dict[str, Any]], None]] = {
            "frame": self._on_frame,
            "hello": self._on_hello,
            "bye": self._on_bye,
        }

    # ---- lifecycle --------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return offer_url(self.scheme, self.host, self.port)

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
                    prefer_codec(transceiver, self.video.codec)
                channel = self._channel = pc.createDataChannel(DATA_CHANNEL_LABEL, ordered=True)
                channel.on("message", self._on_message)
                channel.on("close", lambda: self._on_lost("the data channel closed"))
                pc.on("track", self._on_track)
                pc.on("connectionstatechange", self._on_connection_state)
                with gathering_for(await loopback_addresses(self.host)):
                    # aiortc's setLocalDescription returns once gathering is complete (no trickle ICE).
                    await pc.setLocalDescription(await pc.createOffer())
                stage = f"waiting for the answer from {self.url}"
                answer = await post_offer(
                    self.url,
                    self._token,
                    pc.localDescription.sdp,
                    self.video,
                    timeout=self.timeout,
                    verify=self._verify,
                )
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

    async def close(self) -> None:
        """Close the peer connection and end the receiving task; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._requests.fail_all("the connection was closed")
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
        self._requests.fail_all(why)
        self._notify()

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
        handle = self._unsolicited.get(kind) if isinstance(kind, str) else None  # a list is unhashable
        if handle is not None:
            handle(msg)
            return
        if kind == "stats":
            self.stats_messages.append(msg)  # pushed, or the answer to a stats.get
        if not self._requests.deliver(msg, now) and kind != "stats":
            self.ignored_messages += 1

    def _on_frame(self, msg: dict[str, Any]) -> None:
        self.log.add_meta(msg)

    def _on_hello(self, msg: dict[str, Any]) -> None:
        self._hello = msg
        self._notify()

    def _on_bye(self, msg: dict[str, Any]) -> None:
        # The server ends the connection (session stopping): say why instead of "connection closed".
        self.bye_reason = str(msg.get("reason") or "no reason given")
        self._on_lost(f"the render server ended the connection: {self.bye_reason}")

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

    async def xr_frame(self, pose_id: int | None = None, timeout: float | None = None) -> StereoFrame:
        """The next stereo frame rendered from pose ``pose_id`` or a later one (any stereo frame for None),
        with its ``frame`` message; needs :meth:`start_xr` first. Raises TimeoutError."""
        layout = self.xr_layout
        if layout is None:
            raise RuntimeError("start the stereo mode (start_xr) first")
        timeout = self.timeout if timeout is None else timeout

        def meta() -> Mapping[str, Any] | None:
            found = self.log.meta_for(self.latest.pts) if self.latest is not None else None
            pose = found.get("poseId", -1) if found is not None and "xr" in found else -1
            return found if isinstance(pose, int) and pose >= (pose_id or 0) else None

        try:
            async with asyncio.timeout(timeout):
                await self._until(lambda: meta() is not None)
        except TimeoutError:
            raise TimeoutError(f"no stereo frame of pose {pose_id} arrived within {timeout:g} s") from None
        found, latest = meta(), self.latest
        assert found is not None
        assert latest is not None
        return StereoFrame(latest.image(), found, layout)

    def send_xr_pose(self, pose: Mapping[str, Any]) -> int:
        """Send an ``xr.pose`` (``time``, ``head``, ``views``, ``predictMs``?; ``poseId`` added when missing).
        No answer comes: the frames rendered from it carry its ``poseId``, which is returned."""
        body = {"v": 1, "type": "xr.pose", **pose}
        body.setdefault("poseId", self.next_pose_id())
        XrPose.model_validate(body)  # a mistake fails here, not as a BadMessage later
        self._open_channel().send(json.dumps(body, separators=(",", ":")))
        self.poses.append((int(body["poseId"]), time.monotonic()))
        self._pose = max(self._pose, int(body["poseId"]))
        return int(body["poseId"])

    # ---- requests ---------------------------------------------------------------------------------------
    async def request(
        self,
        msg: Mapping[str, Any] | BaseModel,
        *,
        timeout: float | None = None,
        on_progress: Progress | None = None,
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
        on_progress: Progress | None,
        validate: bool,
    ) -> tuple[dict[str, Any], float, float]:
        request = self._requests.build(msg, validate)
        channel = self._open_channel()
        sent_at = time.monotonic()
        pose_id = request.body.get("poseId")
        if request.kind in _CAMERA_TYPES and isinstance(pose_id, int):
            self.poses.append((pose_id, sent_at))
            self._pose = max(self._pose, pose_id)  # a caller's own ids count too
        timeout = self.timeout if timeout is None else timeout
        answer, received_at = await self._requests.exchange(request, channel.send, timeout, on_progress)
        return answer, sent_at, received_at

    def _open_channel(self) -> RTCDataChannel:
        channel = self._channel
        if self._closed or self._lost is not None or channel is None or channel.readyState != "open":
            raise RenderConnectError(0, "ConnectionClosed", self._lost or "the data channel is not open")
        return channel

    def next_pose_id(self) -> int:
        """A pose id above every one sent or seen, so a pose left over from an earlier client (still
        stamped on the first frames) cannot count as an answer to ours."""
        self._pose = max(self._pose, self.log.max_pose_id or 0) + 1
        return self._pose

    async def ping(self) -> ClockSample:
        """One round trip over the data channel; the sample is kept for the clock offset."""
        answer, sent, received = await self._exchange(
            {"type": "ping", "t": time.monotonic()}, None, None, True
        )
        server_time = answer.get("serverTime")
        if not is_number(server_time):
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
        bytes_received: int | None = None
        packets_lost: int | None = None
        if self._pc is not None and not self._closed:
            report = await self._pc.getStats()
            for stat in report.values():
                if stat.type == "transport":
                    bytes_received = (bytes_received or 0) + int(getattr(stat, "bytesReceived", 0))
                elif stat.type == "inbound-rtp":
                    packets_lost = (packets_lost or 0) + int(getattr(stat, "packetsLost", 0))
        return summarize(
            self.log,
            self.clock_samples,
            self.poses,
            since=since,
            opened_at=self.started_at,
            first_frame_at=self.first_frame_at,
            size=(self.latest.width, self.latest.height) if self.latest is not None else None,
            codec=self.codec,
            bytes_received=bytes_received,
            packets_lost=packets_lost,
            wall_minus_monotonic=time.time() - time.monotonic(),
        )


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
