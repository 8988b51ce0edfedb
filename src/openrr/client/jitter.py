"""A video jitter buffer that hands a frame over as soon as its last packet is in.

aiortc's receiver (1.16) treats a video frame as complete only when the first packet of the *next* frame
arrives, so every frame waits one frame interval (33 ms at 30 fps) before it is decoded. Senders mark the
last packet of each frame with the RTP marker bit (aiortc's packetizers do, for H.264 and VP8, as
browsers do), which says the same thing a frame earlier. :class:`MarkerJitterBuffer` emits a frame when
its packets are contiguous and the last one carries the marker, and otherwise behaves as aiortc's buffer.
:func:`install` puts one into a receiver; ``tests/client`` pins the aiortc internals it relies on.
"""

from __future__ import annotations

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame

VIDEO_CAPACITY = 512  # as aiortc's own video buffer


class MarkerJitterBuffer(JitterBuffer):
    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        if self._origin is not None:
            timestamp: int | None = None
            data: list[bytes] = []
            for count in range(self.capacity):
                packet = self._packets[(self._origin + count) % self.capacity]
                if packet is None or (timestamp is not None and packet.timestamp != timestamp):
                    break
                timestamp = packet.timestamp
                data.append(packet._data)  # type: ignore[attr-defined]  # the depayloaded frame part
                if packet.marker:
                    self.remove(count + 1)
                    return JitterFrame(data=b"".join(data), timestamp=timestamp)
        return super()._remove_frame(sequence_number)


def install(receiver: RTCRtpReceiver) -> None:
    """Give a video receiver a :class:`MarkerJitterBuffer` (call before any packet arrives)."""
    attribute = "_RTCRtpReceiver__jitter_buffer"
    if not isinstance(getattr(receiver, attribute, None), JitterBuffer):
        raise RuntimeError("aiortc's receiver no longer keeps its jitter buffer where openrr expects it")
    setattr(receiver, attribute, MarkerJitterBuffer(capacity=VIDEO_CAPACITY, is_video=True))
