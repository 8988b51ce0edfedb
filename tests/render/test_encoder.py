"""VideoEncoder: round trip through PyAV's decoders, keyframes, rate changes, NVENC fallback."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest
from av.video.codeccontext import VideoCodecContext

from openrr.render import video_encoder as encoder_module
from openrr.render.encoder import EncoderConfig, codec_options, h264_level_for
from openrr.render.video_encoder import VideoEncoder, nvenc_available

W, H = 320, 240
STEP = 3000  # 90 kHz ticks per frame at 30 fps
CODECS = ["h264", "vp8"]
SQUARE = (255, 40, 0)

Frame = npt.NDArray[np.uint8]
_NOISE = np.random.default_rng(7).integers(0, 256, (H, W * 4, 3), dtype=np.uint8)


def make_frame(i: int, *, texture_rows: int = 0, alpha: bool = False) -> Frame:
    """A moving gradient with a coloured square, over a moving noise band of ``texture_rows`` rows.

    The noise makes the content expensive enough for rate control to matter at these bitrates.
    """
    x = np.arange(W, dtype=np.int32)[None, :]
    y = np.arange(H, dtype=np.int32)[:, None]
    img = np.empty((H, W, 4 if alpha else 3), np.uint8)
    img[..., 0] = (x + 3 * i) % 256
    img[..., 1] = (y + 2 * i) % 256
    img[..., 2] = 128
    if alpha:
        img[..., 3] = 255
    left = 40 + 4 * i % 160
    img[80:140, left : left + 60, :3] = SQUARE
    if texture_rows:
        img[H - texture_rows :, :, :3] = _NOISE[H - texture_rows :, 5 * i : 5 * i + W]
    return img


def decoder(codec: str) -> VideoCodecContext:
    ctx = av.CodecContext.create(codec, "r")
    assert isinstance(ctx, VideoCodecContext)
    return ctx


def psnr(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    mse = float(np.mean((a[..., :3].astype(np.float64) - b[..., :3].astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def config(codec: str, **kw: Any) -> EncoderConfig:
    base: dict[str, Any] = {"codec": codec, "width": W, "height": H, "fps": 30, "bitrate": 1_000_000}
    base.update(kw)
    return EncoderConfig(**base)


def nal_types(data: bytes) -> list[int]:
    """NAL unit types of an Annex B H.264 access unit, in order."""
    types = []
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        types.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


@pytest.mark.parametrize("codec", CODECS)
def test_decoded_frames_resemble_the_input(codec: str) -> None:
    enc = VideoEncoder(config(codec, hardware="off"))
    dec = decoder(codec)
    scores = []
    for i in range(30):
        src = make_frame(i)
        packets = enc.encode(src, i * STEP)
        assert len(packets) == 1, "zero-latency settings: one packet per frame"
        (packet,) = packets
        assert packet.pts == i * STEP
        assert packet.time_base.denominator == 90_000
        assert packet.is_keyframe == (i == 0)
        frames = dec.decode(packet)
        assert len(frames) == 1, "the decoder shows each frame as soon as its packet arrives"
        out = frames[0].to_ndarray(format="rgb24")
        assert out.shape == (H, W, 3)
        scores.append(psnr(out, src))
        # the square keeps its colour where it was drawn
        left = 40 + 4 * i % 160
        patch = out[95:125, left + 15 : left + 45].reshape(-1, 3).mean(axis=0)
        assert np.abs(patch - SQUARE).max() < 12, patch
    assert min(scores) > 30, scores
    stats = enc.stats()
    assert stats.frames == 30
    assert stats.keyframes == 1
    assert stats.bytes > 0
    assert stats.encode_ms_avg > 0
    assert stats.convert_ms_avg > 0
    assert stats.encoder == ("libx264" if codec == "h264" else "libvpx")


@pytest.mark.parametrize("codec", CODECS)
def test_rgba_input_and_scaling(codec: str) -> None:
    enc = VideoEncoder(config(codec, hardware="off"))
    dec = decoder(codec)
    src = make_frame(0, alpha=True)
    out = dec.decode(enc.encode(src, 0)[0])[0].to_ndarray(format="rgb24")
    assert psnr(out, src) > 30
    # a frame of another size is scaled to the configured one
    big = np.repeat(np.repeat(make_frame(1), 2, axis=0), 2, axis=1)
    out = dec.decode(enc.encode(big, STEP)[0])[0].to_ndarray(format="rgb24")
    assert out.shape == (H, W, 3)
    assert psnr(out, make_frame(1)) > 28


@pytest.mark.parametrize("codec", CODECS)
def test_request_keyframe_makes_the_next_frame_a_keyframe(codec: str) -> None:
    enc = VideoEncoder(config(codec, hardware="off", keyframe_interval_s=60))
    keys = []
    for i in range(20):
        if i in (7, 13):
            enc.request_keyframe()
        keys += [p.is_keyframe for p in enc.encode(make_frame(i), i * STEP)]
    assert [i for i, k in enumerate(keys) if k] == [0, 7, 13]
    assert enc.stats().keyframe_requests == 2


@pytest.mark.parametrize("codec", CODECS)
def test_keyframe_interval_holds(codec: str) -> None:
    enc = VideoEncoder(config(codec, hardware="off", keyframe_interval_s=0.5))
    keys = [i for i in range(45) if enc.encode(make_frame(i), i * STEP)[0].is_keyframe]
    assert keys == [0, 15, 30]
    # The bound is on time, not frame count: at half the nominal rate a keyframe still comes
    # every 0.5 s of pts (every 7.5 frames -> the first frame at or past 0.5 s).
    slow = VideoEncoder(config(codec, hardware="off", keyframe_interval_s=0.5))
    pts = [i * 2 * STEP for i in range(30)]
    key_pts = [p for i, p in enumerate(pts) if slow.encode(make_frame(i), p)[0].is_keyframe]
    assert key_pts[0] == 0
    assert len(key_pts) >= 4
    assert all(b - a <= 45_000 + 2 * STEP for a, b in itertools.pairwise(key_pts))


def test_h264_stream_is_baseline_with_headers_on_every_idr() -> None:
    cfg = config("h264", hardware="off", keyframe_interval_s=0.5)
    enc = VideoEncoder(cfg)
    packets = [enc.encode(make_frame(i), i * STEP)[0] for i in range(40)]
    for p in packets:
        types = nal_types(bytes(p))
        if p.is_keyframe:
            # SPS and PPS before the IDR slice, so a decoder can start here
            assert 7 in types
            assert 8 in types
            assert 5 in types
            assert types.index(7) < types.index(5)
            assert types.index(8) < types.index(5)
        else:
            assert 5 not in types
            assert 7 not in types
    sps = bytes(packets[0])
    sps = sps[sps.find(b"\x00\x00\x01\x67") + 4 :]
    assert sps[0] == 66, "profile_idc: baseline"
    assert sps[1] & 0x40, "constraint_set1: constrained baseline (no B-frames, no CABAC)"
    assert sps[2] == round(float(cfg.h264_level) * 10) == 20
    # a decoder joining at the second keyframe decodes everything from there on
    second = [i for i, p in enumerate(packets) if p.is_keyframe][1]
    late = decoder("h264")
    decoded = [f for p in packets[second:] for f in late.decode(p)]
    assert len(decoded) == len(packets) - second
    assert psnr(decoded[-1].to_ndarray(format="rgb24"), make_frame(39)) > 30


def kbps(sizes: list[int]) -> float:
    return sum(sizes) * 8 * 30 / len(sizes) / 1000


@pytest.mark.parametrize("codec", CODECS)
def test_set_bitrate_moves_the_output_rate(codec: str) -> None:
    enc = VideoEncoder(config(codec, hardware="off", bitrate=1_500_000, keyframe_interval_s=60))
    sizes: list[int] = []

    def run(frames: int) -> list[int]:
        start = len(sizes)
        for _ in range(frames):
            i = len(sizes)
            sizes.append(enc.encode(make_frame(i, texture_rows=40), i * STEP)[0].size)
        return sizes[start:]

    high = run(30)[10:]  # skip the first keyframe and rate-control warm-up
    enc.set_bitrate(300_000)
    run(1)
    # H.264 holds the edge of its in-place band (1/4 of the 1.5 M it was opened with) until the
    # next keyframe; VP8 cannot change in place but a drop below half is rebuilt at once.
    assert enc.stats().applied_bitrate == (375_000 if codec == "h264" else 300_000)
    enc.request_keyframe()  # H.264 rebuilds on this keyframe, for free
    low = run(45)[15:]
    assert enc.stats().applied_bitrate == 300_000
    enc.set_bitrate(1_500_000)
    run(1)
    assert enc.stats().applied_bitrate == (600_000 if codec == "h264" else 300_000)
    enc.request_keyframe()
    back = run(45)[15:]
    assert kbps(low) < 0.5 * kbps(high), (kbps(high), kbps(low))
    assert kbps(back) > 2 * kbps(low), (kbps(low), kbps(back))
    assert abs(kbps(back) - 1500) < 400, kbps(back)
    stats = enc.stats()
    # H.264's rebuilds landed on the requested keyframes: no keyframe beyond the first and the two
    # requests.  VP8's urgent rebuild on the drop cost one more.
    assert stats.rebuilds == 2, stats
    assert stats.applied_bitrate == 1_500_000, stats
    assert stats.keyframes == (3 if codec == "h264" else 4), stats


def test_h264_small_rate_changes_stay_in_place() -> None:
    enc = VideoEncoder(config("h264", hardware="off", bitrate=2_000_000, keyframe_interval_s=60))
    for i in range(10):
        enc.encode(make_frame(i, texture_rows=80), i * STEP)
    enc.set_bitrate(800_000)  # inside [ceiling / 4, ceiling]: no rebuild, no keyframe
    sizes = [enc.encode(make_frame(i, texture_rows=80), i * STEP)[0].size for i in range(10, 100)]
    stats = enc.stats()
    assert stats.rebuilds == 0
    assert stats.keyframes == 1
    assert stats.applied_bitrate == 800_000
    # after the VBV buffer's credit (0.5 s at the old rate) is spent, the new rate holds
    assert abs(kbps(sizes[45:]) - 800) < 200, kbps(sizes[45:])


def test_set_bitrate_clamps_to_the_configured_bounds() -> None:
    enc = VideoEncoder(
        config("h264", hardware="off", bitrate=1_000_000, min_bitrate=200_000, max_bitrate=2_000_000)
    )
    assert enc.set_bitrate(1) == 200_000
    assert enc.set_bitrate(10**9) == 2_000_000 == enc.target_bitrate
    # defaults: down to a tenth (at least 100 kbit/s), never above the configured bitrate
    assert EncoderConfig(bitrate=3_000_000).bitrate_bounds == (300_000, 3_000_000)
    assert EncoderConfig(bitrate=500_000).bitrate_bounds == (100_000, 500_000)


def test_hardware_auto_falls_back_to_libx264(caplog: pytest.LogCaptureFixture) -> None:
    nvenc_available.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="openrr.render.video_encoder"):
            enc = VideoEncoder(config("h264", hardware="auto"))
        if nvenc_available():  # a machine with a working NVENC
            assert enc.encoder_name == "h264_nvenc"
            assert enc.hardware
        else:
            assert enc.encoder_name == "libx264"
            assert not enc.hardware
            assert "h264_nvenc is not usable here" in caplog.text
        packet = enc.encode(make_frame(0), 0)[0]
        assert packet.is_keyframe
        assert decoder("h264").decode(packet)
    finally:
        nvenc_available.cache_clear()


def test_hardware_off_does_not_probe() -> None:
    nvenc_available.cache_clear()
    VideoEncoder(config("h264", hardware="off"))
    VideoEncoder(config("vp8", hardware="auto"))  # NVENC is for H.264 only
    assert nvenc_available.cache_info().misses == 0


def test_nvenc_that_fails_to_open_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The probe passed but opening with the real settings fails: libx264, with a warning."""
    if nvenc_available():
        pytest.skip("NVENC works here; the failure path cannot be provoked")
    monkeypatch.setattr(encoder_module, "nvenc_available", lambda: True)
    with caplog.at_level(logging.WARNING, logger="openrr.render.video_encoder"):
        enc = VideoEncoder(config("h264", hardware="auto"))
    assert enc.encoder_name == "libx264"
    assert not enc.hardware
    assert "falling back to libx264" in caplog.text
    assert enc.encode(make_frame(0), 0)[0].is_keyframe


def test_bad_input_is_refused() -> None:
    enc = VideoEncoder(config("h264", hardware="off"))
    with pytest.raises(ValueError, match="uint8"):
        enc.encode(np.zeros((H, W, 3), np.float32), 0)
    with pytest.raises(ValueError, match="uint8"):
        enc.encode(np.zeros((H, W), np.uint8), 0)
    enc.encode(make_frame(0), 100)
    with pytest.raises(ValueError, match="pts must increase"):
        enc.encode(make_frame(1), 100)
    enc.close()
    enc.close()
    with pytest.raises(RuntimeError, match="closed"):
        enc.encode(make_frame(1), 200)


@pytest.mark.parametrize("name", ["libx264", "h264_nvenc", "libvpx"])
def test_codec_options_exist(name: str) -> None:
    """PyAV ignores unknown options silently: check every name we pass against FFmpeg's tables."""
    ctx = av.CodecContext.create(name, "w")
    known = {o.name for o in ctx.supported_options.private} | {o.name for o in ctx.supported_options.generic}
    cfg = EncoderConfig(width=1920, height=1080, fps=60, bitrate=8_000_000)
    options = codec_options(name, cfg, 4_000_000, 8_000_000)
    assert set(options) <= known, set(options) - known
    choices = {o.name: {c.name for c in o.choices} for o in ctx.supported_options.private if o.choices}
    for key in ("preset", "tune", "rc", "profile", "level"):
        if key in options and key in choices:
            assert options[key] in choices[key], (key, options[key], choices[key])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"width": 321}, "width and height must be even"),
        ({"height": 8}, "width and height must be even"),
        ({"codec": "av1"}, "codec must be"),
        ({"hardware": "on"}, "hardware must be"),
        ({"fps": 0}, "fps must be within"),
        ({"bitrate": 0}, "bitrate must be positive"),
        ({"keyframe_interval_s": 0}, "keyframe_interval_s must be positive"),
        ({"threads": 0}, "threads must be within"),
        ({"min_bitrate": 4_000_000}, "min_bitrate <= bitrate"),
        ({"max_bitrate": 10}, "bitrate <= max_bitrate"),
    ],
)
def test_bad_config_is_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EncoderConfig(**kw)


def test_h264_level_fits_the_picture() -> None:
    assert h264_level_for(320, 240, 30, 1_000_000) == "2"
    assert h264_level_for(1280, 720, 30, 3_000_000) == "3.1"
    assert h264_level_for(1280, 720, 60, 6_000_000) == "3.2"
    assert h264_level_for(1920, 1080, 30, 8_000_000) == "4"
    assert h264_level_for(1920, 1080, 60, 8_000_000) == "4.2"
    assert h264_level_for(1280, 720, 30, 16_000_000) == "3.2"  # the bitrate decides
    assert EncoderConfig(width=3840, height=2160, fps=60, bitrate=40_000_000).h264_level == "5.2"
    with pytest.raises(ValueError, match=r"no H\.264 level fits"):
        h264_level_for(16384, 16384, 60, 1_000_000)
