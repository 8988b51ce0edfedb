"""EncodedVideoTrack over a real aiortc loopback, and the sender hook that feeds it PLI/FIR/REMB."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    pack_remb_fci,
)

from openrr.compat.aioice import loopback_host_candidates
from openrr.render.encoder import EncoderConfig
from openrr.render.ice import IceSettings
from openrr.render.track import EncodedVideoTrack, SentFrame, add_video_track, remb_target

W, H = 320, 240
SQUARE = (255, 40, 0)
SQUARE_AT = (slice(80, 160), slice(120, 200))

Frame = npt.NDArray[np.uint8]


class Source:
    """A frame source like the renderer's: a moving gradient with a fixed coloured square."""

    def __init__(self) -> None:
        self.frames: dict[int, Frame] = {}
        self.next_id = 0

    async def next_frame(self) -> tuple[Frame, int]:
        i = self.next_id
        self.next_id += 1
        x = np.arange(W, dtype=np.int32)[None, :]
        img = np.empty((H, W, 3), np.uint8)
        img[..., 0] = (x + 4 * i) % 256
        img[..., 1] = np.arange(H, dtype=np.int32)[:, None] % 256
        img[..., 2] = 100
        img[SQUARE_AT] = SQUARE
        self.frames[i] = img
        return img, i


def psnr(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(autouse=True)
def loopback() -> Iterator[None]:
    """Both peers offer 127.0.0.1 host candidates only (works in a namespace with only ``lo``)."""
    with loopback_host_candidates():
        yield


@dataclass
class Call:
    server: RTCPeerConnection
    client: RTCPeerConnection
    track: EncodedVideoTrack
    sender: RTCRtpSender
    source: Source
    answer_sdp: str
    sent: list[SentFrame] = field(default_factory=list)
    received: list[av.VideoFrame] = field(default_factory=list)
    remote: MediaStreamTrack | None = None
    progress: asyncio.Event = field(default_factory=asyncio.Event)  # set when a frame is sent or received

    async def until(self, done: Callable[[], bool]) -> None:
        """Returns once ``done()`` holds, checking it after each frame sent or received."""
        while not done():
            self.progress.clear()
            await self.progress.wait()

    async def wait_for(self, frames: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            await self.until(lambda: len(self.received) >= frames)

    def sent_frame_for(self, frame: av.VideoFrame) -> Frame:
        """The source frame a received one was made from, matched by RTP timestamp."""
        # aiortc's receiver maps the first RTP timestamp to pts 0; the track's pts also start near 0.
        assert frame.pts is not None
        pts = self.sent[0].pts + frame.pts
        (sent,) = [s for s in self.sent if s.pts == pts]
        return self.source.frames[sent.frame_id]


@contextlib.asynccontextmanager
async def call(prefer: str, **config: Any) -> AsyncIterator[Call]:
    """A server peer sending an EncodedVideoTrack to a client peer that offers only ``prefer``."""
    ice = IceSettings().rtc_configuration()
    server, client = RTCPeerConnection(ice), RTCPeerConnection(ice)
    tasks: list[asyncio.Task[None]] = []
    try:
        transceiver = client.addTransceiver("video", direction="recvonly")
        caps = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences([c for c in caps if c.mimeType.lower() in (prefer, "video/rtx")])
        await client.setLocalDescription(await client.createOffer())

        source = Source()
        cfg = EncoderConfig(width=W, height=H, fps=30, bitrate=1_000_000, hardware="off", **config)
        sent: list[SentFrame] = []

        def on_frame(frame: SentFrame) -> None:
            sent.append(frame)
            c.progress.set()

        track = EncodedVideoTrack(source, cfg, on_frame=on_frame)
        await server.setRemoteDescription(client.localDescription)
        sender = add_video_track(server, track)
        await server.setLocalDescription(await server.createAnswer())
        c = Call(server, client, track, sender, source, server.localDescription.sdp, sent)

        async def consume(remote: MediaStreamTrack) -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame = await remote.recv()
                    assert isinstance(frame, av.VideoFrame)
                    c.received.append(frame)
                    c.progress.set()

        @client.on("track")
        def on_track(remote: MediaStreamTrack) -> None:
            c.remote = remote
            tasks.append(asyncio.ensure_future(consume(remote)))

        await client.setRemoteDescription(server.localDescription)
        yield c
    finally:
        await client.close()
        await server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def negotiated_mime(sdp: str) -> str:
    """The first (i.e. sending) codec of the video m-line of an SDP."""
    lines = sdp.splitlines()
    media = next(line for line in lines if line.startswith("m=video"))
    first_pt = media.split()[3]
    rtpmap = next(line for line in lines if line.startswith(f"a=rtpmap:{first_pt} "))
    return rtpmap.split()[1].split("/")[0]


def check_pictures(c: Call) -> None:
    for frame in c.received[5:]:
        out = frame.to_ndarray(format="rgb24")
        assert out.shape == (H, W, 3)
        patch = out[100:140, 140:180].reshape(-1, 3).mean(axis=0)
        assert np.abs(patch - SQUARE).max() < 12, patch
        assert psnr(out, c.sent_frame_for(frame)) > 30


@pytest.mark.parametrize(
    ("prefer", "codec", "encoder"), [("video/h264", "H264", "libx264"), ("video/vp8", "VP8", "libvpx")]
)
async def test_client_receives_what_the_source_rendered(prefer: str, codec: str, encoder: str) -> None:
    async with call(prefer) as c:
        await c.wait_for(24)
        assert negotiated_mime(c.answer_sdp) == codec
        stats = c.track.stats()
        assert stats.codec == codec.lower()
        assert stats.encoder == encoder
        check_pictures(c)
        # pts on the 90 kHz clock, increasing, paced at ~30 fps
        pts = [s.pts for s in c.sent]
        assert all(b > a for a, b in itertools.pairwise(pts))
        # never faster than 30 fps (how much slower depends on the machine's load)
        span = (pts[-1] - pts[0]) / 90_000
        assert span >= 0.9 * (len(pts) - 1) / 30
        assert c.sent[0].keyframe
        assert stats.frames >= 24
        assert stats.bytes == sum(s.size for s in c.sent[: stats.frames])
        assert stats.last_frame_id == c.sent[-1].frame_id


async def test_pli_from_the_receiver_produces_a_keyframe() -> None:
    async with call("video/h264", keyframe_interval_s=60) as c:
        await c.wait_for(10)
        assert [s.keyframe for s in c.sent].count(True) == 1
        before = len(c.sent)
        # What aiortc's receiver does on a decode error: an RTCP PLI for the sender's SSRC, over the wire.
        (receiver_transceiver,) = c.client.getTransceivers()
        await receiver_transceiver.receiver._send_rtcp_pli(c.sender._ssrc)
        async with asyncio.timeout(5):
            await c.until(lambda: any(s.keyframe for s in c.sent[before:]))
        assert c.track.stats().pli_received >= 1
        first_key = next(i for i, s in enumerate(c.sent[before:]) if s.keyframe)
        assert first_key <= 5, "the keyframe follows within a few frames"
        received = len(c.received)
        await c.wait_for(received + 5)  # and the stream goes on
        check_pictures(c)


async def test_sender_hook_routes_pli_fir_and_remb() -> None:
    pc = RTCPeerConnection(IceSettings().rtc_configuration())
    cfg = EncoderConfig(
        width=W, height=H, bitrate=1_000_000, min_bitrate=200_000, max_bitrate=2_000_000, hardware="off"
    )
    track, other_track = EncodedVideoTrack(Source(), cfg), EncodedVideoTrack(Source(), cfg)
    try:
        sender = add_video_track(pc, track)
        # only this sender instance is adapted; the class and other senders keep aiortc's methods
        assert "_handle_rtcp_packet" in vars(sender)
        assert "send" in vars(sender)
        other = pc.addTrack(other_track)
        assert "_handle_rtcp_packet" not in vars(other)
        assert "send" not in vars(other)

        ssrc = sender._ssrc

        async def deliver(packet: AnyRtcpPacket) -> None:
            # what RTCDtlsTransport does with an RTCP packet routed to this sender
            await sender._handle_rtcp_packet(packet)

        def remb(bitrate: int, ssrcs: list[int]) -> RtcpPsfbPacket:
            return RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs))

        await deliver(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=ssrc))
        await deliver(RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=1, media_ssrc=ssrc))
        stats = track.stats()
        assert (stats.pli_received, stats.fir_received) == (1, 1)

        # nothing sent yet: an estimate above that does not bind, it can only raise the target ...
        await deliver(remb(150_000, [ssrc]))
        assert track.stats().target_bitrate == 1_000_000
        await deliver(remb(1_500_000, [ssrc]))
        assert track.stats().target_bitrate == 1_500_000
        await deliver(remb(50_000_000, [ssrc]))
        assert track.stats().target_bitrate == 2_000_000, "clamped to max_bitrate"
        # ... while below what is actually being sent it lowers it (down to min_bitrate)
        for _ in range(8):
            await track.recv()
        sent = track.stats().sent_bps
        assert sent > 0
        await deliver(remb(int(sent / 2), [ssrc]))
        stats = track.stats()
        assert stats.remb_received == 4
        assert stats.remb_bitrate is not None
        assert abs(stats.remb_bitrate - sent / 2) < 0.01 * sent  # REMB's mantissa/exponent rounding
        assert stats.target_bitrate == max(200_000, stats.remb_bitrate) < 1_000_000
        assert track.encoder is not None
        assert track.encoder.target_bitrate == stats.target_bitrate

        # a REMB for another stream, a broken one, and a receiver report: ignored by the hook, and
        # aiortc's own handling still runs (it would raise on anything it cannot take)
        await deliver(remb(900_000, [ssrc + 1]))
        await deliver(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=b"junk"))
        report = RtcpReceiverInfo(
            ssrc=ssrc, fraction_lost=0, packets_lost=0, highest_sequence=1, jitter=0, lsr=0, dlsr=0
        )
        await deliver(RtcpRrPacket(ssrc=1, reports=[report]))
        assert track.stats().remb_received == 4
        assert track.stats().target_bitrate == stats.target_bitrate

        with pytest.raises(RuntimeError, match="already attached"):
            track.attach(sender)
        with pytest.raises(ValueError, match="does not carry"):
            other_track.attach(sender)
    finally:
        track.stop()
        other_track.stop()
        await pc.close()


@pytest.mark.parametrize(
    ("remb", "sent", "target", "expected"),
    [
        (400_000, 1_000_000, 1_000_000, 400_000),  # the path carries less than we send: follow it down
        (600_000, 400_000, 1_000_000, 1_000_000),  # cheap scene, estimate tracks usage: keep the target
        (390_000, 400_000, 1_000_000, 1_000_000),  # ~1.0x the sent rate: the estimator's start, not overuse
        (1_500_000, 1_000_000, 1_000_000, 1_500_000),  # the estimate grew: follow it up
    ],
)
def test_remb_policy(remb: int, sent: float, target: int, expected: int) -> None:
    assert remb_target(remb, sent, target) == expected


async def test_pli_bursts_collapse_and_requests_wait_for_the_gap() -> None:
    sent: list[SentFrame] = []
    cfg = EncoderConfig(width=W, height=H, hardware="off", keyframe_interval_s=60)
    track = EncodedVideoTrack(Source(), cfg, on_frame=sent.append, min_keyframe_gap_s=0.2)
    try:
        for i in range(20):
            if i in (1, 2, 3):  # a burst of requests right after the first keyframe
                track.request_keyframe()
            await track.recv()
        keys = [s for s in sent if s.keyframe]
        # the burst yields one keyframe, on the first frame at least 0.2 s after the first one
        assert len(keys) == 2
        second = sent.index(keys[1])
        assert keys[1].captured_at - keys[0].captured_at >= 0.2
        assert sent[second - 1].captured_at - keys[0].captured_at < 0.2
        # a request once the gap has passed is served by the next frame
        track.request_keyframe()
        assert (await track.recv()).is_keyframe
        assert track.encoder is not None
        assert track.encoder.stats().keyframe_requests == 2
    finally:
        track.stop()


async def test_track_paces_stops_and_reports_the_codec_it_used() -> None:
    track = EncodedVideoTrack(Source(), EncoderConfig(codec="vp8", width=W, height=H, fps=30, hardware="off"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    packets = [await track.recv() for _ in range(10)]
    elapsed = loop.time() - started
    assert track.codec == "vp8", "not attached to a sender: the configured codec"
    assert packets[0].is_keyframe
    assert not any(p.is_keyframe for p in packets[1:])
    assert 0.9 * 9 / 30 <= elapsed < 9 / 30 + 3.0
    pts = [p.pts or 0 for p in packets]
    assert packets[0].pts is not None
    assert pts[0] < 3000
    deltas = [b - a for a, b in itertools.pairwise(pts)]
    assert all(d >= 1500 for d in deltas), deltas  # at least half a period apart, 3000 on average
    assert sum(deltas) >= 0.9 * 9 * 3000
    track.stop()
    assert track.readyState == "ended"
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_source_ending_ends_the_track() -> None:
    class Ending:
        async def next_frame(self) -> tuple[Frame, int]:
            raise MediaStreamError

    track = EncodedVideoTrack(Ending(), EncoderConfig(width=W, height=H, hardware="off"))
    with pytest.raises(MediaStreamError):
        await track.recv()
    track.stop()


def test_ice_settings() -> None:
    assert IceSettings().rtc_configuration().iceServers == [], "no STUN server unless configured"
    ice = IceSettings(
        stun_urls=("stun:stun.example.org:3478",),
        turn_urls=("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org"),
        turn_username="u",
        turn_credential="secret",
    )
    servers = ice.rtc_configuration().iceServers
    assert servers is not None
    assert [s.urls for s in servers] == [
        ["stun:stun.example.org:3478"],
        ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org"],
    ]
    assert servers[1].username == "u"
    assert servers[1].credential == "secret"
    assert "secret" not in repr(ice)
    with pytest.raises(ValueError, match="bad ICE server URL"):
        IceSettings(stun_urls=("stun.example.org",))
    with pytest.raises(ValueError, match="expected a stun URL"):
        IceSettings(stun_urls=("turn:turn.example.org",))
    with pytest.raises(ValueError, match="turn_username"):
        IceSettings(turn_urls=("turn:turn.example.org",))
