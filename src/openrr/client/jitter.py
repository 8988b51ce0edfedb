"""A video jitter buffer that hands a frame over as soon as its last packet is in.

aiortc's receiver (1.16) treats a video frame as complete only when the first packet of the *next* frame
arrives, so every frame waits one frame interval (33 ms at 30 fps) before it is decoded. Senders mark the
last packet of each frame with the RTP marker bit (aiortc's packetizers do, for H.264 and VP8, as
browsers do), which says the same thing a frame earlier. :class:`MarkerJitterBuffer` emits a frame when
its packets are contiguous and the last one carries the marker, and otherwise behaves as aiortc's buffer.
:func:`install` puts one into a receiver; the aiortc internals this needs are reached through
``openrr.compat.aiortc``.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from openrr.compat.aiortc import FrameEndJitterBuffer, replace_jitter_buffer

VIDEO_CAPACITY = 512  # as aiortc's own video buffer


class MarkerJitterBuffer(FrameEndJitterBuffer):
    def frame_end(self, packets: Iterator[RtpPacket | None]) -> int:
        """The packets up to the first marker, when they are all in and of one frame (one timestamp)."""
        timestamp: int | None = None
        for count, packet in enumerate(packets, start=1):
            if packet is None or (timestamp is not None and packet.timestamp != timestamp):
                return 0
            timestamp = packet.timestamp
            if packet.marker:
                return count
        return 0


def install(receiver: RTCRtpReceiver) -> None:
    """Give a video receiver a :class:`MarkerJitterBuffer` (call before any packet arrives)."""
    replace_jitter_buffer(receiver, MarkerJitterBuffer(capacity=VIDEO_CAPACITY, is_video=True))
