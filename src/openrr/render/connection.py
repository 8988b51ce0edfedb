"""One connected client: its WebRTC peer connection, video track and data channel.

The render server holds at most one ``ClientConnection`` at a time (ARR's rule). The connection ends when
the client closes the data channel or the peer connection, when ICE/DTLS fails, when it does not
connect within ``CONNECT_TIMEOUT_S`` of its offer, or when the server stops; ``closed`` is then set and
the server resets the scene for the next client.

Requests on the data channel are handled in order of arrival, except model loads, which run as tasks
of their own (a 30 s download must not hold up camera moves) with at most ``MAX_PENDING_LOADS`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import psutil
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.stats import RTCRemoteInboundRtpStreamStats

from openrr.compat.aioice import loopback_host_candidates
from openrr.compat.aiortc import offered_direction
from openrr.model.sources import display_name
from openrr.protocol import datachannel as protocol
from openrr.protocol.handshake import DATA_CHANNEL_LABEL, PROTOCOL
from openrr.protocol.xr import XrEnd, XrPose, XrStart
from openrr.render.camera_commands import move_camera
from openrr.render.encoder import Codec, EncoderConfig
from openrr.render.frame import PipelineClosed
from openrr.render.ice import IceSettings
from openrr.render.pipeline import RenderPipeline
from openrr.render.scene_commands import SceneCommands, is_scene_request
from openrr.render.session_models import ModelError
from openrr.render.tracing import Tracer
from openrr.render.track import EncodedVideoTrack, SentFrame, add_video_track, negotiated_codec
from openrr.render.xr_mode import XrMode

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20.0
STATS_INTERVAL_S = 1.0
MAX_PENDING_LOADS = 4
MAX_PENDING_REQUESTS = 64


class OfferRejected(Exception):
    """An offer this server cannot answer (400 BadRequest)."""


class ClientConnection:
    def __init__(
        self,
        *,
        session_id: str,
        pipeline: RenderPipeline,
        encoder: EncoderConfig,
        ice: IceSettings,
        loopback: bool,
        tracer: Tracer | None = None,
    ) -> None:
        self.session_id = session_id
        self.pipeline = pipeline
        self.encoder = encoder
        self.ice = ice
        self.loopback = loopback
        self.tracer = tracer  # the inspector's timing capture: frames, commands, connect/disconnect
        self.pc = RTCPeerConnection(configuration=ice.rtc_configuration())
        self.track = EncodedVideoTrack(pipeline, encoder, on_frame=self._on_frame)
        self.channel: RTCDataChannel | None = None
        self.codec: Codec = encoder.codec
        self.closed = asyncio.Event()  # set when the connection starts to end
        self.finished = asyncio.Event()  # set when its teardown is complete
        self.close_reason = ""
        self.connected_at: float | None = None
        self.opened_at = time.monotonic()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loads = 0
        self.version = protocol.VERSION  # the highest a request used: what pushed messages carry
        self.scene_api = SceneCommands(pipeline)  # protocol v2: its counters belong to this connection
        self._requests = 0
        self._sent_times: deque[float] = deque(maxlen=256)
        self._rtt_ms: float | None = None
        self._first_pts: int | None = None
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent()  # the first call only starts the measurement
        # Measured once a second by the stats push only: psutil reports the CPU used since the previous
        # call, so callers that sample at other times (stats.get, the inspector) would skew it.
        self._cpu_percent: float | None = None

    # -- negotiation ------------------------------------------------------------------------------------

    async def answer(self, sdp: str) -> str:
        """Answer the client's offer (its ICE candidates already in it); returns the answer's SDP."""
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:  # noqa: BLE001 -- hostile input: any failure refuses the offer
            # Unparsable or inconsistent SDP, or nothing in common (a client offering only VP9 or AV1):
            # aiortc raises anything from ValueError to AssertionError on hostile input.
            raise OfferRejected(f"the offer's SDP could not be used: {exc or type(exc).__name__}") from None
        videos = [t for t in self.pc.getTransceivers() if t.kind == "video"]
        # What the client's offer lets us do, from our side (a client that receives only is "sendonly"
        # here; the transceiver's own direction is our answer's).
        allowed = offered_direction(videos[0]) if len(videos) == 1 else None
        if allowed not in ("sendonly", "sendrecv"):
            raise OfferRejected("the offer must hold exactly one video transceiver the client receives on")
        prefer: list[Codec] = ["h264", "vp8"] if self.encoder.codec == "h264" else ["vp8", "h264"]
        # The answer uses the offer's transceiver for our track (aiortc matches an unused recvonly one).
        sender = add_video_track(self.pc, self.track, prefer=prefer)
        self.codec = negotiated_codec(self.pc, sender) or self.encoder.codec
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_state)
        try:
            answer = await self.pc.createAnswer()
            with self._candidates():
                await self.pc.setLocalDescription(answer)  # gathers all candidates (no trickle in aiortc)
        except Exception as exc:  # noqa: BLE001 -- hostile input, as above
            # An offer aiortc took but cannot answer (duplicated m-lines, ...).
            raise OfferRejected(f"the offer could not be answered: {exc or type(exc).__name__}") from None
        self._spawn(self._watchdog())
        return self.pc.localDescription.sdp

    @contextlib.contextmanager
    def _candidates(self) -> Iterator[None]:
        # A server advertised on a loopback address has clients on this machine: offer loopback host
        # candidates, which aioice leaves out by default (see openrr.compat.aioice).
        if self.loopback:
            with loopback_host_candidates():
                yield
        else:
            yield

    async def _watchdog(self) -> None:
        await asyncio.sleep(CONNECT_TIMEOUT_S)
        if self.connected_at is None:
            await self.close(f"the client did not connect within {CONNECT_TIMEOUT_S:.0f} s of its offer")

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        log.info("client connection %s", state)
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
            if self.tracer is not None:
                self.tracer.instant(
                    "client connected",
                    codec=self.codec,
                    width=self.encoder.width,
                    height=self.encoder.height,
                    fps=self.encoder.fps,
                )
        elif state in ("failed", "closed"):
            await self.close(f"connection {state}")

    # -- data channel -----------------------------------------------------------------------------------

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != DATA_CHANNEL_LABEL or self.channel is not None:
            log.warning("ignoring data channel %r", channel.label)
            return
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self._spawn(self.close("the client closed the data channel")))
        if channel.readyState == "open":
            self._spawn(self._hello())
        else:
            channel.on("open", lambda: self._spawn(self._hello()))

    async def _hello(self) -> None:
        self.send(
            protocol.message(
                "hello",
                protocol=PROTOCOL,
                protocols=list(protocol.VERSIONS),
                sessionId=self.session_id,
                video={
                    "width": self.encoder.width,
                    "height": self.encoder.height,
                    "fps": self.encoder.fps,
                    "bitrate": self.encoder.bitrate,
                    "codec": self.codec,
                },
                polygonLimit=self.pipeline.polygon_limit,
                models=[m.describe() for m in self.pipeline.models.values()],
                nodes=await self.pipeline.describe_nodes(),
                camera=self.pipeline.camera_json(),
            )
        )
        self._spawn(self._push_stats())

    def send(self, text: str) -> None:
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            channel.send(text)

    def _refuse(self, request: protocol.Request, code: str, text: str) -> None:
        self.send(protocol.error(request.id, code, text, v=request.v))  # errors answer in the request's v

    def _on_message(self, raw: str | bytes) -> None:
        try:
            request = protocol.parse(raw)
        except protocol.BadMessage as exc:
            self.send(protocol.error(exc.re, "BadMessage", exc.message, v=self.version))
            return
        self.version = max(self.version, request.v)
        if self.tracer is not None:
            self.tracer.command(request)
        if isinstance(request, protocol.ModelLoad):
            if self._loads >= MAX_PENDING_LOADS:
                self._refuse(request, "Busy", f"at most {MAX_PENDING_LOADS} loads at once")
                return
            self._loads += 1
            self._spawn(self._load(request))
        elif self._requests >= MAX_PENDING_REQUESTS:
            # A flood (of picks, say) would queue unbounded work on the GL thread and starve rendering.
            self._refuse(request, "Busy", f"at most {MAX_PENDING_REQUESTS} requests at once")
        else:
            # In arrival order: camera moves apply at once, scene edits queue on the GL thread.
            self._requests += 1
            self._spawn(self._handle(request))

    async def _handle(self, request: protocol.Request) -> None:
        try:
            if isinstance(request, XrStart | XrPose | XrEnd):
                reply = await self._xr(request)
            else:
                reply = await self._reply(request)
            if reply is not None:
                self.send(reply)
        except ModelError as exc:
            self._refuse(request, exc.code, exc.message)
        except PipelineClosed:
            pass
        except Exception as exc:  # a bug must cost the request, not the session (logged, answered)
            log.exception("request %s failed", request.type)
            self._refuse(request, "InternalError", f"{request.type} failed: {exc}")
        finally:
            self._requests -= 1

    async def _reply(self, request: protocol.Request) -> str | None:
        """Carry out a request (any but a model load) and return its answer, in the request's version."""
        if is_scene_request(request):
            return await self.scene_api.answer(request)
        p = self.pipeline

        def answer(type_: str, **fields: Any) -> str:
            return protocol.message(type_, request.id, v=request.v, **fields)

        match request:
            case protocol.CameraSet() | protocol.CameraOrbit() | protocol.CameraPan() | protocol.CameraZoom():
                move_camera(p, request)
                return answer("ack", camera=p.camera_json(), poseId=request.poseId)
            case protocol.CameraFrame():
                await p.frame_scene(request.poseId)
                return answer("ack", camera=p.camera_json(), poseId=request.poseId)
            case protocol.ModelUnload():
                await p.unload(request.modelId)
                return answer("model.unloaded", modelId=request.modelId)
            case protocol.NodeSet():
                node = await p.set_node(
                    request.node,
                    transform=request.transform,
                    visible=request.visible,
                    color=request.color,
                    clear_color=request.clearColor,
                )
                return answer("ack", node=node)
            case protocol.Pick():
                hit = await p.pick(request.x, request.y)
                return answer("pick.result", **(hit or {"node": None, "position": None}))
            case protocol.StatsGet():
                return answer("stats", **await self.stats())
            case protocol.Ping():
                return answer("pong", t=request.t, serverTime=time.time())
        return None  # model loads run as tasks of their own (see _on_message)

    async def _xr(self, request: XrStart | XrPose | XrEnd) -> str | None:
        """Stereo mode (protocol/xr.py): its start, its poses (unanswered) and its end."""
        p = self.pipeline

        def answer(type_: str, **fields: Any) -> str:
            return protocol.message(type_, request.id, v=request.v, **fields)

        match request:
            case XrPose():
                if p.xr is None:
                    raise ModelError("BadMessage", "xr.pose before xr.start: start the stereo mode first")
                p.xr.pose(request)
                p.camera_changed(request.poseId)
                return None
            case XrStart():
                mode = XrMode(request, p.frame_interval or 1 / self.encoder.fps)
                self.track.resize(*mode.layout.frame_size)
                await p.start_xr(mode)
                return answer("xr.started", **mode.describe())
        self.track.resize(self.encoder.width, self.encoder.height)
        await p.start_xr(None)
        return answer("ack")

    async def _load(self, request: protocol.ModelLoad) -> None:
        model_id = request.modelId or display_name(request.url)  # as the pipeline names it
        last = [-1.0]

        def progress(fraction: float, message: str) -> None:
            # At most one message per percent: a download reports every chunk.
            if fraction >= 1.0 or fraction - last[0] >= 0.01:
                last[0] = fraction
                self.send(
                    protocol.message(
                        "model.progress",
                        request.id,
                        v=request.v,
                        modelId=model_id,
                        fraction=round(fraction, 3),
                        message=message,
                    )
                )

        try:
            loaded = await self.pipeline.load(request.url, request.modelId, progress)
        except ModelError as exc:
            self._refuse(request, exc.code, exc.message)
        except PipelineClosed:
            pass
        else:
            self.send(
                protocol.message(
                    "model.loaded",
                    request.id,
                    v=request.v,
                    **loaded.describe(),
                    rootNodes=loaded.roots,
                    camera=self.pipeline.camera_json(),
                )
            )
        finally:
            self._loads -= 1

    # -- frames and stats -------------------------------------------------------------------------------

    def _on_frame(self, sent: SentFrame) -> None:
        self._sent_times.append(sent.captured_at)
        if self._first_pts is None:
            self._first_pts = sent.pts
        info = self.pipeline.frame_info(sent.frame_id)
        if self.tracer is not None:
            self.tracer.frame(sent, info)
        stereo: dict[str, Any] = {"xr": info.xr} if info is not None and info.xr is not None else {}
        self.send(
            protocol.message(
                "frame",
                v=self.version,
                frameId=sent.frame_id,
                # Receivers count RTP time from their first frame: so do we (the track's pts start a
                # few ms after its clock does).
                pts=sent.pts - self._first_pts,
                poseId=info.pose_id if info else None,
                t=round(info.started, 6) if info else None,
                renderMs=round(info.render_ms, 2) if info else None,
                triangles=info.triangles if info else None,
                encodeMs=round(sent.encode_ms, 2),
                keyframe=sent.keyframe,
                bytes=sent.size,
                **stereo,
            )
        )

    def fps(self) -> float:
        """Frames sent over the last second."""
        now = asyncio.get_running_loop().time()
        return float(sum(1 for t in self._sent_times if t > now - 1.0))

    async def stats(self) -> dict[str, Any]:
        track = self.track.stats()
        await self._update_rtt()
        pipeline = self.pipeline.stats()
        memory = self._process.memory_info().rss / 2**20
        return {
            **pipeline,
            "frames": track.frames,
            "fps": self.fps(),
            "encodeMs": round(track.encode_ms_last, 2),
            "encodeMsAvg": round(track.encode_ms_avg, 2),
            "frameMs": round(pipeline["renderMs"] + track.encode_ms_last, 2),
            "bitrate": round(track.sent_bps),
            "targetBitrate": track.target_bitrate,
            "keyframes": track.keyframes,
            "bytes": track.bytes,
            "codec": track.codec,
            "encoder": track.encoder,
            "rttMs": self._rtt_ms,
            "xrScale": self.pipeline.xr.scale.current if self.pipeline.xr is not None else None,
            "cpuPercent": self._cpu_percent,
            "rssMiB": round(memory, 1),
        }

    async def _update_rtt(self) -> None:
        for sender in self.pc.getSenders():
            with contextlib.suppress(Exception):  # stats of a transport being torn down
                for item in (await sender.getStats()).values():
                    if isinstance(item, RTCRemoteInboundRtpStreamStats) and math.isfinite(item.roundTripTime):
                        self._rtt_ms = round(item.roundTripTime * 1000, 2)

    async def _push_stats(self) -> None:
        while not self.closed.is_set():
            await asyncio.sleep(STATS_INTERVAL_S)
            self._cpu_percent = self._process.cpu_percent()
            try:
                self.send(protocol.message("stats", v=self.version, **await self.stats()))
            except Exception:  # one bad sample must not end the stats for the rest of the connection
                log.exception("stats push failed")

    # -- teardown ---------------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, reason: str, *, notify: str | None = None) -> None:
        """End the connection. ``notify``: a ``bye`` reason sent to the client first. Idempotent: a
        second call waits until the first has finished the teardown."""
        if self.closed.is_set():
            await self.finished.wait()
            return
        self.closed.set()
        self.close_reason = reason
        log.info("client connection closed: %s", reason)
        if self.tracer is not None:
            self.tracer.instant("client disconnected", reason=reason)
        if notify is not None:
            self.send(protocol.message("bye", v=self.version, reason=notify))
            await asyncio.sleep(0.05)  # let the SCTP stack put it on the wire before the teardown
        self.track.stop()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        try:
            await self.pc.close()
        finally:
            self.finished.set()
