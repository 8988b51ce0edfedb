"""What the render server encodes: the video settings (:class:`EncoderConfig`), the H.264 level they need,
and the FFmpeg options each encoder (libx264, h264_nvenc, libvpx) is opened with.

The render server hands aiortc ready-made packets instead of frames (see ``track.py``), so openrr owns
everything aiortc's own encoders would otherwise decide. The settings are apart from the encoder that
applies them (``video_encoder.py``): the server and the client's tests build and check settings without
opening a codec.

* H.264 uses ``h264_nvenc`` when ``hardware="auto"`` and NVENC opens on this machine, otherwise libx264
  ``preset=ultrafast tune=zerolatency``: constrained baseline profile, no B-frames, SPS/PPS repeated in
  front of every IDR so that a decoder joining mid-stream can start at the next keyframe.
* VP8 (libvpx, realtime deadline, no lag) is the fallback codec for peers that do not take H.264.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

Codec = Literal["h264", "vp8"]
Hardware = Literal["auto", "off"]

#: Time base of every pts this module takes and every packet it returns: RTP's 90 kHz video clock,
#: so aiortc's packetizer (``convert_timebase(pts, time_base, 1/90000)``) passes timestamps through.
TIME_BASE = Fraction(1, 90_000)
CLOCK_RATE = 90_000

# H.264 levels (Table A-1): (level, MaxMBPS, MaxFS, MaxBR in kbit/s for Baseline/Main).
_H264_LEVELS: tuple[tuple[str, int, int, int], ...] = (
    ("1", 1_485, 99, 64),
    ("1.1", 3_000, 396, 192),
    ("1.2", 6_000, 396, 384),
    ("1.3", 11_880, 396, 768),
    ("2", 11_880, 396, 2_000),
    ("2.1", 19_800, 792, 4_000),
    ("2.2", 20_250, 1_620, 4_000),
    ("3", 40_500, 1_620, 10_000),
    ("3.1", 108_000, 3_600, 14_000),
    ("3.2", 216_000, 5_120, 20_000),
    ("4", 245_760, 8_192, 20_000),
    ("4.1", 245_760, 8_192, 50_000),
    ("4.2", 522_240, 8_704, 50_000),
    ("5", 589_824, 22_080, 135_000),
    ("5.1", 983_040, 36_864, 240_000),
    ("5.2", 2_073_600, 36_864, 240_000),
    ("6.0", 4_177_920, 139_264, 240_000),
    ("6.1", 8_355_840, 139_264, 480_000),
    ("6.2", 16_711_680, 139_264, 800_000),
)


@dataclass(frozen=True)
class EncoderConfig:
    """What to encode and how.

    ``bitrate`` is the starting target in bit/s; :meth:`VideoEncoder.set_bitrate` moves it within
    ``[min_bitrate, max_bitrate]`` (defaults: a tenth of ``bitrate`` but at least 100 kbit/s, and
    ``bitrate`` itself, i.e. a receiver estimate can lower the rate but never raise it above what
    the session asked for).  ``keyframe_interval_s`` bounds the time between keyframes (measured on
    the pts clock).  ``threads`` is the encoder's thread count (1-2: leave a core to the renderer).
    ``vbv_buffer_s`` is the rate-control buffer in seconds at the target rate; smaller means smaller
    frame-size spikes (latency) at the cost of keyframe quality.
    """

    codec: Codec = "h264"
    width: int = 1280
    height: int = 720
    fps: int = 30
    bitrate: int = 3_000_000
    keyframe_interval_s: float = 2.0
    hardware: Hardware = "auto"
    min_bitrate: int | None = None
    max_bitrate: int | None = None
    threads: int = 2
    vbv_buffer_s: float = 0.5

    def __post_init__(self) -> None:
        if self.codec not in ("h264", "vp8"):
            raise ValueError(f"codec must be 'h264' or 'vp8', not {self.codec!r}")
        if self.hardware not in ("auto", "off"):
            raise ValueError(f"hardware must be 'auto' or 'off', not {self.hardware!r}")
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            # 4:2:0 chroma subsampling needs even dimensions.
            raise ValueError(f"width and height must be even and at least 16, not {self.width}x{self.height}")
        if not 1 <= self.fps <= 240:
            raise ValueError(f"fps must be within 1..240, not {self.fps}")
        if self.bitrate <= 0:
            raise ValueError("bitrate must be positive")
        if not self.keyframe_interval_s > 0:
            raise ValueError("keyframe_interval_s must be positive")
        if not 1 <= self.threads <= 16:
            raise ValueError("threads must be within 1..16")
        if not self.vbv_buffer_s > 0:
            raise ValueError("vbv_buffer_s must be positive")
        low, high = self.bitrate_bounds
        if not 0 < low <= self.bitrate <= high:
            raise ValueError(
                f"need 0 < min_bitrate <= bitrate <= max_bitrate, got {low}, {self.bitrate}, {high}"
            )

    @property
    def bitrate_bounds(self) -> tuple[int, int]:
        """``(min_bitrate, max_bitrate)`` with the defaults filled in."""
        low = (
            self.min_bitrate
            if self.min_bitrate is not None
            else min(self.bitrate, max(100_000, self.bitrate // 10))
        )
        high = self.max_bitrate if self.max_bitrate is not None else self.bitrate
        return low, high

    @property
    def keyframe_interval_frames(self) -> int:
        """The keyframe interval in frames at the nominal frame rate (the codec's GOP size)."""
        return max(1, round(self.keyframe_interval_s * self.fps))

    @property
    def h264_level(self) -> str:
        """The lowest H.264 level whose frame size, macroblock rate and bitrate fit this config."""
        return h264_level_for(self.width, self.height, self.fps, self.bitrate_bounds[1])


def h264_level_for(width: int, height: int, fps: float, bitrate: int) -> str:
    """The lowest H.264 level (as x264/NVENC spell it, e.g. ``"3.1"``) for this picture rate and rate.

    Raises ``ValueError`` when even level 6.2 is too small.
    """
    mb_w, mb_h = math.ceil(width / 16), math.ceil(height / 16)
    frame_mbs = mb_w * mb_h
    for level, max_mbps, max_fs, max_br in _H264_LEVELS:
        if (
            frame_mbs <= max_fs
            and max(mb_w, mb_h) ** 2 <= 8 * max_fs
            and frame_mbs * fps <= max_mbps
            and bitrate <= max_br * 1000
        ):
            return level
    raise ValueError(f"no H.264 level fits {width}x{height}@{fps} at {bitrate} bit/s")


def codec_options(name: str, config: EncoderConfig, target: int, ceiling: int) -> dict[str, str]:
    """The FFmpeg options ``name`` (libx264, h264_nvenc or libvpx) is opened with.

    PyAV silently ignores options a codec does not know, so the tests check these names against
    each codec's option table; that is the only check the NVENC set gets on machines without one.
    """
    if name == "libvpx":
        return {
            "deadline": "realtime",
            "cpu-used": "8",  # fastest realtime speed (measured ≈13-17 ms/frame at 720p on 2 cores)
            "lag-in-frames": "0",
            # minrate == maxrate == bit_rate selects CBR; FFmpeg sets rc_buf_sz = bufsize/bit_rate s.
            "minrate": str(target),
            "maxrate": str(target),
            "bufsize": str(max(1, round(target * config.vbv_buffer_s))),
            "undershoot-pct": "100",
            "overshoot-pct": "15",
            "static-thresh": "1",
        }
    # x264 wants a VBV buffer of at least one frame at the max rate.
    buffer = max(round(target * config.vbv_buffer_s), math.ceil(ceiling / config.fps * 1.1))
    common = {
        "maxrate": str(ceiling),
        "bufsize": str(buffer),
        "forced-idr": "1",  # a forced keyframe (pict_type I) is an IDR, not just an I-frame
        "profile": "baseline",  # no B-frames, no CABAC: what WebRTC's 42e01f/42001f promise
        "level": config.h264_level,
    }
    if name == "h264_nvenc":
        return {
            **common,
            "preset": "p1",  # fastest
            "tune": "ull",  # ultra-low latency
            "zerolatency": "1",
            "delay": "0",  # output each frame's packet from its own encode() call
            "rc": "cbr",
        }
    if name == "libx264":
        return {
            **common,
            "preset": "ultrafast",
            "tune": "zerolatency",  # no lookahead, no frame threading: one frame in, one out
            # Without AV_CODEC_FLAG_GLOBAL_HEADER libx264 already repeats SPS/PPS before every IDR;
            # say so explicitly so the contract does not hang on a default.  Scene cuts would add
            # unrequested IDRs (ultrafast already turns them off).
            "x264-params": "repeat-headers=1:scenecut=0",
        }
    raise ValueError(f"unknown encoder {name!r}")


def with_codec(config: EncoderConfig, codec: Codec) -> EncoderConfig:
    """``config`` with another codec (used when negotiation picks a different one)."""
    return dataclasses.replace(config, codec=codec)
