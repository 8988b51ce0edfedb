"""The running video encoder: RGB(A) frames in, H.264 or VP8 packets out (PyAV), with keyframes on request
and rate changes applied the way each codec can take them.

What it encodes with (:class:`~openrr.render.encoder.EncoderConfig`, the codec options) is in
``encoder.py``; this module is the stateful part: the open codec context, NVENC's probe and fallback, the
RGB->YUV conversion, keyframe timing and rate control.

Threading contract: :meth:`VideoEncoder.encode` must be called from one thread at a time (the track
runs it on a dedicated single-thread executor); :meth:`VideoEncoder.request_keyframe` and
:meth:`VideoEncoder.set_bitrate` may be called from any thread and take effect at the next
:meth:`~VideoEncoder.encode`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

from openrr.render.encoder import CLOCK_RATE, TIME_BASE, EncoderConfig, codec_options

logger = logging.getLogger(__name__)

# AVColorSpace value of the BT.601 matrix (FFmpeg pixfmt.h); PyAV has no enum for codec contexts.
_AVCOL_SPC_SMPTE170M = 6

# Rate changes.  x264 can change a CBR rate in place, but only up to the VBV max rate it was opened
# with (a higher rate is capped: "max bitrate less than average bitrate"), and its VBV buffer size is
# fixed since PyAV cannot change rc_max_rate/rc_buffer_size on an open context.  So H.264 is opened
# with headroom (ceiling = 2x the target, at most max_bitrate), moves in place within
# [ceiling / _INPLACE_RANGE, ceiling], and is rebuilt for a target outside that band only when a
# keyframe is due anyway (interval or request): a new encoder starts with an IDR, so the rebuild then
# costs nothing extra.  Until then the rate is held at the nearest edge of the band.
_CEILING_HEADROOM = 2.0
_INPLACE_RANGE = 4.0
# Changes smaller than this are ignored; REMB jitters by a few per cent from report to report.
_MIN_RELATIVE_CHANGE = 0.05
# FFmpeg's libvpx wrapper ignores bit_rate changes on an open encoder, so VP8 is rebuilt for changes
# over 20 % (aiortc's own VP8 encoder rebuilds above 10 %, at once): at the next keyframe, or at once
# when the target fell below half the current rate (congestion should not wait for a keyframe).
_VP8_REBUILD_CHANGE = 0.20
_VP8_URGENT_DROP = 0.5


@dataclass(frozen=True)
class EncoderStats:
    """A snapshot of an encoder's counters since it was created (rebuilds included).

    Times are wall-clock milliseconds per frame on the encoding thread: ``convert`` is RGB(A)->YUV,
    ``encode`` the codec itself.
    """

    encoder: str
    frames: int
    keyframes: int
    bytes: int
    target_bitrate: int  # what set_bitrate asked for (clamped)
    applied_bitrate: int  # what the codec runs at now (see set_bitrate for when they differ)
    rebuilds: int
    keyframe_requests: int
    convert_ms_avg: float
    encode_ms_avg: float
    encode_ms_last: float
    encode_ms_max: float


@functools.cache
def nvenc_available() -> bool:
    """Whether ``h264_nvenc`` opens and encodes a frame here (probed once per process).

    PyAV's wheel always lists h264_nvenc; whether it works depends on an NVIDIA driver with
    libnvidia-encode and a GPU that has NVENC (H100/H200 do not), which only opening it tells.
    Tests may call ``nvenc_available.cache_clear()``.
    """
    try:
        ctx = av.CodecContext.create("h264_nvenc", "w")
        ctx.width, ctx.height = 256, 256
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = Fraction(30)
        ctx.open()
        frame = av.VideoFrame(256, 256, "yuv420p")
        frame.pts = 0
        ctx.encode(frame)
        ctx.encode(None)
    except (av.FFmpegError, OSError, ValueError) as exc:
        logger.info("h264_nvenc is not usable here (%s); H.264 will use libx264", exc)
        return False
    return True


class VideoEncoder:
    """Encodes RGB(A) numpy frames to H.264 or VP8 ``av.Packet``s with low-latency settings.

    Each :meth:`encode` call returns the packets for that frame (one with these settings), with
    ``pts`` as given and ``time_base`` :data:`TIME_BASE`.  The first packet, the packet after a
    :meth:`request_keyframe`, and at least one packet per ``keyframe_interval_s`` of pts are
    keyframes (IDR for H.264, each preceded by SPS/PPS).
    """

    def __init__(self, config: EncoderConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._target = config.bitrate  # guarded by _lock: written by set_bitrate from any thread
        self._keyframe_requested = False  # guarded by _lock
        self._applied = config.bitrate  # the rate the open codec context is running at
        self._ceiling = config.bitrate  # the rate (and VBV max rate) the context was opened with
        self._interval_ticks = round(config.keyframe_interval_s * CLOCK_RATE)
        self._last_pts: int | None = None
        self._last_keyframe_pts: int | None = None
        # One reformatter for the encoder's life: it caches the swscale context between frames.
        self._reformatter = VideoReformatter()
        # counters
        self._frames = 0
        self._keyframes = 0
        self._bytes = 0
        self._rebuilds = 0
        self._keyframe_requests = 0
        self._convert_s = 0.0
        self._encode_s = 0.0
        self._encode_last_s = 0.0
        self._encode_max_s = 0.0
        self._use_nvenc = config.codec == "h264" and config.hardware == "auto" and nvenc_available()
        self._closed = False
        self._ctx = self._open(config.bitrate)

    @property
    def config(self) -> EncoderConfig:
        return self._config

    @property
    def encoder_name(self) -> str:
        """The FFmpeg encoder in use: ``libx264``, ``h264_nvenc`` or ``libvpx``."""
        return self._ctx.name

    @property
    def hardware(self) -> bool:
        """Whether frames are encoded on a GPU (NVENC)."""
        return self._use_nvenc

    @property
    def target_bitrate(self) -> int:
        """The bitrate the next frame will be encoded at, in bit/s (after clamping)."""
        with self._lock:
            return self._target

    def request_keyframe(self) -> None:
        """Make the next encoded frame a keyframe (an IDR with SPS/PPS for H.264). Thread-safe."""
        with self._lock:
            self._keyframe_requested = True
            self._keyframe_requests += 1

    def set_bitrate(self, bps: int) -> int:
        """Set the target bitrate (clamped to the config's bounds); returns the clamped value.

        Thread-safe; applied at the next :meth:`encode`.  H.264 changes the rate in place within a
        band around the rate it was opened with, and for targets outside it holds the band's edge
        until the next keyframe, where it rebuilds the encoder (no extra IDR).  VP8 cannot change in
        place: it rebuilds at the next keyframe when the rate moved by over 20 %, at once when it
        halved.
        """
        low, high = self._config.bitrate_bounds
        clamped = max(low, min(high, int(bps)))
        with self._lock:
            self._target = clamped
        return clamped

    def encode(self, frame: npt.NDArray[np.uint8], pts: int) -> list[av.Packet[Any]]:
        """Encode one frame shown at ``pts`` (in :data:`TIME_BASE` units, strictly increasing).

        ``frame`` is ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA ``uint8``, top row first; other sizes than
        the config's are scaled.  Returns the packets the codec produced for it (normally exactly one).
        """
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] not in (3, 4):
            raise ValueError(f"expected an (H, W, 3|4) uint8 array, got {frame.shape} {frame.dtype}")
        if self._closed:
            raise RuntimeError("encoder is closed")
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"pts must increase: {pts} after {self._last_pts}")
        with self._lock:
            target = self._target
            keyframe = self._keyframe_requested
            self._keyframe_requested = False
        keyframe = keyframe or self._keyframe_due(pts)
        self._apply_bitrate(target, keyframe)

        started = time.perf_counter()
        src = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(frame), format="rgb24" if frame.shape[2] == 3 else "rgba"
        )
        # RGB(A)->YUV 4:2:0 on the CPU with swscale (BT.601 matrix, limited range, signalled in the
        # stream).  Later optimisation: convert in the render shader and hand over YUV planes, which
        # removes this step (~4.6 ms at 720p on the dev box).
        yuv = self._reformatter.reformat(
            src,
            width=self._config.width,
            height=self._config.height,
            format="yuv420p",
            dst_colorspace=Colorspace.ITU601,
            dst_color_range=ColorRange.MPEG,
        )
        yuv.pts = pts
        yuv.time_base = TIME_BASE
        # NONE lets the codec choose (P-frames); I forces a keyframe (IDR with forced-idr / libvpx).
        yuv.pict_type = PictureType.I if keyframe else PictureType.NONE
        converted = time.perf_counter()
        packets = self._ctx.encode(yuv)
        done = time.perf_counter()

        self._last_pts = pts
        self._frames += 1
        self._convert_s += converted - started
        self._encode_last_s = done - converted
        self._encode_s += self._encode_last_s
        self._encode_max_s = max(self._encode_max_s, self._encode_last_s)
        for packet in packets:
            packet.time_base = TIME_BASE
            self._bytes += packet.size
            if packet.is_keyframe:
                self._keyframes += 1
                self._last_keyframe_pts = packet.pts if packet.pts is not None else pts
        return packets

    def stats(self) -> EncoderStats:
        """Counters and timings so far (see :class:`EncoderStats`)."""
        frames = max(1, self._frames)
        with self._lock:
            target, requests = self._target, self._keyframe_requests
        return EncoderStats(
            encoder=self.encoder_name,
            frames=self._frames,
            keyframes=self._keyframes,
            bytes=self._bytes,
            target_bitrate=target,
            applied_bitrate=self._applied,
            rebuilds=self._rebuilds,
            keyframe_requests=requests,
            convert_ms_avg=self._convert_s * 1000 / frames,
            encode_ms_avg=self._encode_s * 1000 / frames,
            encode_ms_last=self._encode_last_s * 1000,
            encode_ms_max=self._encode_max_s * 1000,
        )

    def close(self) -> None:
        """Flush and finish the codec; :meth:`encode` raises afterwards.  Idempotent.

        With zero-latency settings the codec holds no frames back, so flushing drops nothing.
        """
        if not self._closed:
            self._closed = True
            self._ctx.encode(None)

    # internals

    def _keyframe_due(self, pts: int) -> bool:
        # Time-based (pts) rather than frame-count based, so the bound holds when rendering runs below
        # the nominal fps; the codec's own GOP (same length in frames) is only a backstop.
        return self._last_keyframe_pts is None or pts - self._last_keyframe_pts >= self._interval_ticks

    def _apply_bitrate(self, target: int, at_keyframe: bool) -> None:
        if target == self._applied:
            return
        if self._config.codec == "vp8":
            change = abs(target - self._applied) / self._applied
            if change > _VP8_REBUILD_CHANGE and (at_keyframe or target < self._applied * _VP8_URGENT_DROP):
                self._rebuild(target)
            return
        if not self._ceiling / _INPLACE_RANGE <= target <= self._ceiling and at_keyframe:
            self._rebuild(target)  # opened at the new ceiling; lower to the target just below
        low, high = self._ceiling / _INPLACE_RANGE, self._ceiling
        rate = round(min(high, max(low, target)))
        if abs(rate - self._applied) / self._applied >= _MIN_RELATIVE_CHANGE:
            # libx264 (CBR + VBV) and NVENC pick a changed bit_rate up at the next frame.
            self._ctx.bit_rate = rate
            self._applied = rate

    def _rebuild(self, target: int) -> None:
        logger.debug("rebuilding %s for %d bit/s (was %d)", self.encoder_name, target, self._applied)
        self._ctx = self._open(target)
        self._rebuilds += 1

    def _open(self, target: int) -> VideoCodecContext:
        if self._config.codec == "vp8":
            return self._open_vp8(target)
        if self._use_nvenc:
            try:
                return self._open_h264("h264_nvenc", target)
            except (av.FFmpegError, OSError, ValueError) as exc:
                logger.warning("h264_nvenc failed to open (%s); falling back to libx264", exc)
                self._use_nvenc = False
        return self._open_h264("libx264", target)

    def _base_context(self, name: str, bit_rate: int) -> VideoCodecContext:
        cfg = self._config
        ctx = av.CodecContext.create(name, "w")
        if not isinstance(ctx, VideoCodecContext):
            raise TypeError(f"{name} is not a video encoder")
        ctx.width, ctx.height = cfg.width, cfg.height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = TIME_BASE
        ctx.framerate = Fraction(cfg.fps)
        ctx.gop_size = cfg.keyframe_interval_frames
        ctx.max_b_frames = 0
        ctx.bit_rate = bit_rate
        ctx.thread_count = cfg.threads
        # Signal what encode() converts with, so a decoder does not have to guess the matrix.
        ctx.colorspace = _AVCOL_SPC_SMPTE170M
        ctx.color_range = ColorRange.MPEG
        return ctx

    def _open_h264(self, name: str, target: int) -> VideoCodecContext:
        ceiling = min(self._config.bitrate_bounds[1], round(target * _CEILING_HEADROOM))
        # Opened as CBR at the ceiling (bit_rate == maxrate): only then does x264 let the rate move
        # later.  _apply_bitrate lowers bit_rate to the target before the first frame.
        ctx = self._base_context(name, ceiling)
        ctx.options = codec_options(name, self._config, target, ceiling)
        ctx.open()
        self._ceiling = ceiling
        self._applied = ceiling
        return ctx

    def _open_vp8(self, target: int) -> VideoCodecContext:
        ctx = self._base_context("libvpx", target)
        ctx.qmin, ctx.qmax = 2, 56
        ctx.options = codec_options("libvpx", self._config, target, target)
        ctx.open()
        self._ceiling = target
        self._applied = target
        return ctx
