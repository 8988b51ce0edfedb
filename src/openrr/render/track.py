"""An aiortc video track that sends packets we encode ourselves (see ``video_encoder.py``).

aiortc's ``RTCRtpSender`` encodes frames with its own encoders (libx264 preset *medium* for H.264),
but when ``track.recv()`` returns an ``av.Packet`` it only packetizes it (``encoder.pack``).  That is
what :class:`EncodedVideoTrack` does.  The price is that aiortc's encoder-side reactions no longer
reach an encoder, because aiortc 1.16 wires them to its *own* encoder object:

* PLI/FIR: ``RTCRtpSender._handle_rtcp_packet`` calls ``_send_keyframe()``, which only sets a flag
  read when encoding *frames* — for packets it is ignored;
* REMB: the same method sets ``target_bitrate`` on aiortc's encoder (clamped to aiortc's own
  constants: 0.5-3 Mbit/s for H.264), which the packetizer never uses;
* the negotiated codec reaches only ``RTCRtpSender.send(parameters)`` (``parameters.codecs[0]``).

:meth:`EncodedVideoTrack.attach` therefore adapts the one ``RTCRtpSender`` instance that carries the
track (``openrr.compat.aiortc.intercept_sender``): PLI/FIR -> :meth:`request_keyframe`, REMB ->
:meth:`set_bitrate`, then aiortc's own handling so RR statistics and NACK retransmissions keep
working; and its start tells the track the negotiated codec before the first ``recv()``.  How a REMB
moves the encoder's rate is :func:`remb_target`'s policy.  Nothing global is patched; other senders
and the class are untouched.  Use :func:`add_video_track` rather than ``pc.addTrack`` so the hook
cannot be forgotten.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import av
import numpy as np
import numpy.typing as npt
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpSendParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    unpack_remb_fci,
)

from openrr.compat.aiortc import chosen_codecs, intercept_sender, prefer_among_chosen
from openrr.render.encoder import CLOCK_RATE, Codec, EncoderConfig, with_codec
from openrr.render.video_encoder import VideoEncoder

logger = logging.getLogger(__name__)

_MIME_TO_CODEC: dict[str, Codec] = {"video/h264": "h264", "video/vp8": "vp8"}
_CODEC_TO_MIME = {codec: mime for mime, codec in _MIME_TO_CODEC.items()}
_RATE_WINDOW_S = 1.0  # how far back the measured send rate looks, for remb_target
_REMB_BINDING = 0.9  # an estimate below this share of the sent rate means congestion


def remb_target(remb: int, sent_bps: float, target: int) -> int:
    """The target bitrate after a receiver estimate (REMB) of ``remb`` bit/s (before clamping).

    ``sent_bps`` is what the track actually sent over the last second, ``target`` the current target.
    Receiver-side estimators (aiortc's, Chrome's GCC) start at the incoming rate and stay below about
    1.5x of it, so a cheap scene (little motion, tiny P-frames) drives the estimate down with no
    congestion at all; measured on loopback: 1 Mbit/s -> 255 kbit/s within 5 s.  Following that
    literally starves the next camera move while the estimate ramps up again (about 8 %/s).  So the
    estimate lowers the target only when it binds, i.e. is clearly below what is being sent (on
    overuse the estimators drop to 0.85x the incoming rate; an estimate at ~1.0x is their starting
    point or measurement noise), and otherwise it only raises the target.
    """
    if remb < _REMB_BINDING * sent_bps:
        return remb
    return max(remb, target)


class FrameSource(Protocol):
    """Where the track pulls frames from (the renderer, running ahead of the encoder).

    ``next_frame()`` returns the newest frame as an ``(H, W, 3|4)`` ``uint8`` RGB(A) array (top row
    first) and the renderer's id for it (echoed in :class:`SentFrame` so input -> frame latency can
    be measured).  Raising :class:`aiortc.mediastreams.MediaStreamError` ends the track.
    """

    async def next_frame(self) -> tuple[npt.NDArray[np.uint8], int]: ...


@dataclass(frozen=True)
class SentFrame:
    """One encoded frame handed to aiortc (passed to the track's ``on_frame`` callback)."""

    frame_id: int
    pts: int  # 90 kHz, the RTP timestamp minus the sender's random offset
    keyframe: bool
    size: int  # bytes, all packets of the frame
    encode_ms: float  # wall time of conversion + encoding on the encoder thread, hand-off included
    captured_at: float  # event-loop time (time.monotonic() by default) when taken from the source


@dataclass(frozen=True)
class TrackStats:
    """Counters of a track since it started (see :meth:`EncodedVideoTrack.stats`)."""

    codec: Codec | None  # negotiated codec, None before negotiation
    encoder: str | None  # libx264 / h264_nvenc / libvpx, None before the first frame
    frames: int
    keyframes: int
    bytes: int
    encode_ms_avg: float
    encode_ms_last: float
    target_bitrate: int
    pli_received: int
    fir_received: int
    remb_received: int
    remb_bitrate: int | None  # last receiver estimate in bit/s, as received
    sent_bps: float  # encoded bit/s over the last second
    last_frame_id: int | None


class EncodedVideoTrack(MediaStreamTrack):
    """A video ``MediaStreamTrack`` whose ``recv()`` returns encoded ``av.Packet``s.

    Frames come from ``source`` paced at ``config.fps``: a frame is pulled no earlier than its slot
    on a fixed schedule, never within half a period of the previous one, and when the track falls
    more than a frame behind, the schedule restarts rather than bursting to catch up.  ``pts`` is on
    aiortc's 90 kHz video clock, starts at 0 and increases with wall-clock time, so the receiver's
    playout matches when frames were taken.  The codec is the negotiated one (learned via
    :meth:`attach`), else ``config.codec``.  Encoding runs on a dedicated single thread so the event
    loop stays free for RTP/RTCP and the data channel.

    Keyframes: the first frame, every ``config.keyframe_interval_s``, and on :meth:`request_keyframe`
    (PLI/FIR), with requests closer than ``min_keyframe_gap_s`` to the previous keyframe deferred to
    that gap, so a burst of PLIs (one per lost packet) yields one keyframe, not a storm.
    """

    kind = "video"

    def __init__(
        self,
        source: FrameSource,
        config: EncoderConfig,
        *,
        on_frame: Callable[[SentFrame], None] | None = None,
        min_keyframe_gap_s: float = 0.25,
    ) -> None:
        super().__init__()
        self._source = source
        self._config = config
        self._on_frame = on_frame
        self._min_keyframe_gap_s = min_keyframe_gap_s
        self._codec: Codec | None = None
        self._negotiated = False
        self._encoder: VideoEncoder | None = None
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="openrr-encode"
        )
        self._pending: deque[av.Packet[Any]] = deque()
        self._recent: deque[tuple[float, int]] = deque()  # (captured, bytes) within _RATE_WINDOW_S
        self._sender: RTCRtpSender | None = None
        # pacing, on the event loop's monotonic clock
        self._start: float | None = None
        self._next_due = 0.0
        self._last_captured = float("-inf")
        self._last_pts = -1
        # keyframe requests
        self._keyframe_wanted = False
        self._last_keyframe_at = float("-inf")
        self._target_bitrate = config.bitrate
        # stats
        self._frames = 0
        self._keyframes = 0
        self._bytes = 0
        self._encode_s = 0.0
        self._encode_last_s = 0.0
        self._pli = 0
        self._fir = 0
        self._remb = 0
        self._remb_bitrate: int | None = None
        self._last_frame_id: int | None = None

    # public API

    @property
    def codec(self) -> Codec | None:
        """The codec packets are encoded with: negotiated once :meth:`attach`'s sender started."""
        return self._codec

    @property
    def encoder(self) -> VideoEncoder | None:
        """The encoder, created at the first ``recv()``."""
        return self._encoder

    def attach(self, sender: RTCRtpSender) -> None:
        """Route ``sender``'s PLI/FIR, REMB and negotiated codec to this track (see module doc).

        Call once, right after ``pc.addTrack(track)`` and before negotiation completes.
        """
        if sender.track is not self:
            raise ValueError("the sender does not carry this track")
        if self._sender is not None:
            raise RuntimeError("the track is already attached to a sender")
        self._sender = sender
        intercept_sender(sender, on_rtcp=self._on_rtcp, on_send=self._on_negotiated)

    def request_keyframe(self) -> None:
        """Ask for a keyframe as soon as the minimum keyframe gap allows (usually the next frame)."""
        self._keyframe_wanted = True

    def set_bitrate(self, bps: int) -> None:
        """Set the encoder's target bitrate (clamped to the config's bounds at the encoder)."""
        low, high = self._config.bitrate_bounds
        self._target_bitrate = max(low, min(high, int(bps)))
        if self._encoder is not None:
            self._encoder.set_bitrate(self._target_bitrate)

    def resize(self, width: int, height: int) -> None:
        """Encode at ``width`` x ``height`` from the first frame of that size on, with a new encoder (which
        starts with a keyframe, SPS and PPS: receivers follow the change there); frames of another size
        meanwhile are scaled as before. Raises ValueError for a size no H.264 level can take."""
        config = dataclasses.replace(self._config, width=width, height=height)
        if config.codec == "h264":
            config.h264_level  # noqa: B018 -- raises ValueError before the encoder thread would
        self._config = config

    def sent_bps(self) -> float:
        """Bits per second encoded over the second before the latest frame (shorter when younger)."""
        if self._start is None or not self._recent:
            return 0.0
        latest = self._recent[-1][0]
        window = min(_RATE_WINDOW_S, latest - self._start + 1 / self._config.fps)
        return sum(size for _, size in self._recent) * 8 / window

    def stats(self) -> TrackStats:
        """Counters so far; cheap enough to call once a second for the stats message."""
        frames = max(1, self._frames)
        return TrackStats(
            codec=self._codec,
            encoder=self._encoder.encoder_name if self._encoder is not None else None,
            frames=self._frames,
            keyframes=self._keyframes,
            bytes=self._bytes,
            encode_ms_avg=self._encode_s * 1000 / frames,
            encode_ms_last=self._encode_last_s * 1000,
            target_bitrate=self._target_bitrate,
            pli_received=self._pli,
            fir_received=self._fir,
            remb_received=self._remb,
            remb_bitrate=self._remb_bitrate,
            sent_bps=self.sent_bps(),
            last_frame_id=self._last_frame_id,
        )

    async def recv(self) -> av.Packet[Any]:
        """The next encoded packet (aiortc's sender calls this in a loop and packetizes the result).

        Raises ``MediaStreamError`` once the track is stopped or the source ends.
        """
        while not self._pending:
            if self.readyState != "live" or self._executor is None:
                raise MediaStreamError
            await self._pace()
            frame, frame_id = await self._source.next_frame()
            if self.readyState != "live" or self._executor is None:
                raise MediaStreamError
            loop = asyncio.get_running_loop()
            captured = self._last_captured = loop.time()
            assert self._start is not None  # set by the first _pace()
            if self._codec is None:
                self._codec = self._config.codec  # not attached, or started before negotiation
            # pts from when the frame was actually taken, so it stays true to wall-clock time
            # when the source is late; strictly increasing as the encoder requires.
            pts = max(self._last_pts + 1, round((captured - self._start) * CLOCK_RATE))
            self._last_pts = pts
            if self._keyframe_wanted and captured - self._last_keyframe_at >= self._min_keyframe_gap_s:
                self._keyframe_wanted = False
                force_keyframe = True
            else:
                force_keyframe = False
            started = time.perf_counter()
            packets = await loop.run_in_executor(self._executor, self._encode, frame, pts, force_keyframe)
            elapsed = time.perf_counter() - started
            self._account(packets, frame_id, pts, elapsed, captured)
            self._pending.extend(packets)
        return self._pending.popleft()

    def stop(self) -> None:
        """End the track: ``recv()`` raises, the encoder thread and codec are released."""
        super().stop()
        executor, self._executor = self._executor, None
        if executor is not None:
            # Close on the encoder thread, after any encode still running there, and read the encoder
            # there too: the first encode may be creating it right now (an NVENC session, on GPUs).
            executor.submit(self._close_encoder)
            executor.shutdown(wait=False, cancel_futures=False)

    # internals

    def _close_encoder(self) -> None:
        if self._encoder is not None:
            self._encoder.close()

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        period = 1.0 / self._config.fps
        if self._start is None:
            self._start = self._next_due = now
            return
        due = self._next_due + period
        if due < now - period:
            # More than a frame behind (slow source or encoder): restart the schedule from now
            # instead of bursting frames to catch up.
            due = now
        # Catching up on a smaller delay is fine, but never two frames closer than half a period.
        self._next_due = max(due, self._last_captured + period / 2)
        delay = self._next_due - now
        if delay > 0:
            await asyncio.sleep(delay)

    def _encode(self, frame: npt.NDArray[np.uint8], pts: int, force_keyframe: bool) -> list[av.Packet[Any]]:
        # Runs on the encoder thread: creating the encoder here keeps the NVENC probe and codec
        # set-up off the event loop.
        config = self._config
        if self._encoder is not None and frame.shape[:2] == (config.height, config.width):
            opened = self._encoder.config
            if (opened.width, opened.height) != (config.width, config.height):  # resized: start anew
                self._encoder.close()
                self._encoder = None
        if self._encoder is None:
            assert self._codec is not None  # resolved by recv()
            self._encoder = VideoEncoder(with_codec(config, self._codec))
            self._encoder.set_bitrate(self._target_bitrate)
        if force_keyframe:
            self._encoder.request_keyframe()
        return self._encoder.encode(frame, pts)

    def _account(
        self,
        packets: list[av.Packet[Any]],
        frame_id: int,
        pts: int,
        elapsed: float,
        captured: float,
    ) -> None:
        keyframe = any(p.is_keyframe for p in packets)
        size = sum(p.size for p in packets)
        self._frames += 1
        self._bytes += size
        self._encode_s += elapsed
        self._encode_last_s = elapsed
        self._last_frame_id = frame_id
        if keyframe:
            self._keyframes += 1
            self._last_keyframe_at = captured
        self._recent.append((captured, size))
        while self._recent and self._recent[0][0] < captured - _RATE_WINDOW_S:
            self._recent.popleft()
        if self._on_frame is not None:
            self._on_frame(SentFrame(frame_id, pts, keyframe, size, elapsed * 1000, captured))

    def _on_negotiated(self, parameters: RTCRtpSendParameters) -> None:
        # aiortc's sender acts on its first send() only (it packetizes with that codec for good), and
        # so do we; the peer connection calls send() again after every renegotiation.
        if self._negotiated:
            return
        self._negotiated = True
        mime = parameters.codecs[0].mimeType.lower()
        codec = _MIME_TO_CODEC.get(mime)
        if codec is None:
            raise ValueError(f"negotiated video codec {mime} is not one this track can encode")
        self._codec = codec

    def _on_rtcp(self, packet: AnyRtcpPacket, ssrc: int) -> None:
        if not isinstance(packet, RtcpPsfbPacket):
            return
        # aiortc's router delivers PLI/FIR by media SSRC, so they are ours.
        if packet.fmt == RTCP_PSFB_PLI:
            self._pli += 1
            self.request_keyframe()
        elif packet.fmt == RTCP_PSFB_FIR:
            self._fir += 1
            self.request_keyframe()
        elif packet.fmt == RTCP_PSFB_APP:
            # REMB is routed to every sender its FCI lists; check ours is among them, as aiortc does.
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if ssrc in ssrcs:
                self._remb += 1
                self._remb_bitrate = bitrate
                sent = self.sent_bps()
                self.set_bitrate(remb_target(bitrate, sent, self._target_bitrate))
                logger.debug(
                    "REMB %d bit/s, sent %.0f bit/s: target %d bit/s", bitrate, sent, self._target_bitrate
                )


def add_video_track(
    pc: RTCPeerConnection, track: EncodedVideoTrack, *, prefer: Sequence[Codec] | None = None
) -> RTCRtpSender:
    """``pc.addTrack(track)`` plus :meth:`EncodedVideoTrack.attach`; returns the sender.

    ``prefer`` (e.g. ``["h264", "vp8"]``) sets the transceiver's codec preferences; aiortc's answerer
    then orders the common codecs by it instead of by the offer.  Leave it ``None`` to follow the
    remote peer's order.
    """
    sender = pc.addTrack(track)
    track.attach(sender)
    if prefer is not None:
        transceiver = next(t for t in pc.getTransceivers() if t.sender is sender)
        capabilities = RTCRtpSender.getCapabilities("video").codecs
        wanted: list[RTCRtpCodecCapability] = []
        for codec in prefer:
            wanted += [c for c in capabilities if c.mimeType.lower() == _CODEC_TO_MIME[codec]]
        # RTX must stay offered for NACK retransmissions of the preferred codecs.
        wanted += [c for c in capabilities if c.mimeType.lower() == "video/rtx"]
        transceiver.setCodecPreferences(wanted)
        # Answering: aiortc already chose the codecs in setRemoteDescription, in the offer's order and
        # before these preferences existed, so apply them to that choice too.
        prefer_among_chosen(transceiver, wanted)
    return sender


def negotiated_codec(pc: RTCPeerConnection, sender: RTCRtpSender) -> Codec | None:
    """The codec ``sender`` will send with, once the remote description is applied (else None)."""
    transceiver = next(t for t in pc.getTransceivers() if t.sender is sender)
    for codec in chosen_codecs(transceiver):
        if (name := _MIME_TO_CODEC.get(codec.mimeType.lower())) is not None:
            return name
    return None
