"""The marker-bit jitter buffer, and the aiortc internals it replaces."""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket

from openrr.client.jitter import MarkerJitterBuffer, install


def packet(seq: int, timestamp: int, data: bytes, marker: bool) -> RtpPacket:
    p = RtpPacket(payload_type=96, marker=int(marker), sequence_number=seq, timestamp=timestamp)
    p._data = data  # type: ignore[attr-defined]  # what aiortc's depayloader stores
    return p


def test_a_frame_is_complete_at_its_marker_not_at_the_next_frame() -> None:
    buffer = MarkerJitterBuffer(capacity=16, is_video=True)
    assert buffer.add(packet(100, 9000, b"a", False)) == (False, None)
    _, frame = buffer.add(packet(101, 9000, b"b", True))
    assert frame is not None
    assert (frame.data, frame.timestamp) == (b"ab", 9000)
    # Out of order: the marker arrives before a middle packet; the frame waits for it.
    assert buffer.add(packet(104, 12000, b"f", True)) == (False, None)
    assert buffer.add(packet(102, 12000, b"d", False)) == (False, None)
    _, frame = buffer.add(packet(103, 12000, b"e", False))
    assert frame is not None
    assert frame.data == b"def"


def test_without_markers_it_behaves_as_aiortcs_buffer() -> None:
    buffer = MarkerJitterBuffer(capacity=16, is_video=True)
    assert buffer.add(packet(1, 100, b"x", False)) == (False, None)
    _, frame = buffer.add(packet(2, 200, b"y", False))  # the next frame starts: the first is complete
    assert frame is not None
    assert frame.data == b"x"


async def test_install_replaces_the_receivers_buffer() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        install(receiver)
        assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, MarkerJitterBuffer)  # type: ignore[attr-defined]
    finally:
        await pc.close()
