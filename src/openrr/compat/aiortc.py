"""The places where openrr reaches into aiortc's internals, all of them, each behind a small function.

aiortc's public API has no way to: see the RTCP a sender receives (PLI, FIR, REMB reach only aiortc's own
encoder, which openrr does not use), learn the negotiated codec before a sender starts, reorder the codecs
an answer already chose, read what direction an offer allowed, or give a receiver another jitter buffer.
The render server's track (``openrr.render.track``, ``openrr.render.connection``) and the client's jitter
buffer (``openrr.client.jitter``) need each of these; they call the functions here and never touch a
private name themselves. Every adaptation acts on the one object it is given, when it is called: nothing
is patched on aiortc's classes.

Internals relied on (aiortc 1.16), each checked by ``tests/unit/test_compat.py``:

* ``RTCRtpSender._handle_rtcp_packet`` and ``RTCRtpSender.send``, looked up on the instance by aiortc's
  transport (RTCP routing) and peer connection (starting the sender); ``RTCRtpSender._ssrc``;
* ``RTCRtpTransceiver._codecs`` (the codecs chosen by ``setRemoteDescription``) with
  ``aiortc.rtcpeerconnection.filter_preferred_codecs``, and ``RTCRtpTransceiver._offerDirection``;
* ``RTCRtpReceiver.__jitter_buffer`` (name-mangled), ``JitterBuffer._remove_frame``, ``_origin``,
  ``_packets``, ``capacity`` and ``remove``, and ``RtpPacket._data`` (the depayloaded frame part the
  receiver stores on each packet).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import cast

from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcpeerconnection import filter_preferred_codecs
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtp import AnyRtcpPacket, RtpPacket

_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"


# -- senders ----------------------------------------------------------------------------------------------


def intercept_sender(
    sender: RTCRtpSender,
    *,
    on_rtcp: Callable[[AnyRtcpPacket, int], None],
    on_send: Callable[[RTCRtpSendParameters], None],
) -> None:
    """Have ``sender`` call ``on_rtcp(packet, its SSRC)`` for every RTCP packet aiortc routes to it, and
    ``on_send(parameters)`` each time the peer connection starts it, each before aiortc's own handling
    (which still runs: RR statistics, NACK retransmissions). Only this instance is adapted: instance
    attributes shadow the class's methods, as aiortc's transport calls ``recipient._handle_rtcp_packet``
    and the peer connection ``transceiver.sender.send``, both looked up on the instance."""
    aiortc_handle_rtcp: Callable[[AnyRtcpPacket], Awaitable[None]] = sender._handle_rtcp_packet
    aiortc_send: Callable[[RTCRtpSendParameters], Awaitable[None]] = sender.send

    async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
        on_rtcp(packet, sender._ssrc)
        await aiortc_handle_rtcp(packet)

    async def send(parameters: RTCRtpSendParameters) -> None:
        on_send(parameters)
        await aiortc_send(parameters)

    sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
    sender.send = send  # type: ignore[method-assign]


# -- transceivers -----------------------------------------------------------------------------------------


def chosen_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    """The codecs the transceiver will use, best first, once a remote description chose them (else [])."""
    return list(transceiver._codecs)


def prefer_among_chosen(transceiver: RTCRtpTransceiver, preferred: list[RTCRtpCodecCapability]) -> None:
    """Reorder (and filter) the codecs already chosen by ``preferred``, as aiortc does for an offer.

    When answering, aiortc chooses the codecs in ``setRemoteDescription``, in the offer's order, before
    ``setCodecPreferences`` can be called; this applies the preferences to that choice. Nothing changes
    when none was chosen yet, or when no chosen codec is preferred."""
    if transceiver._codecs:
        chosen = filter_preferred_codecs(transceiver._codecs, preferred)
        if chosen:
            transceiver._codecs = chosen


def offered_direction(transceiver: RTCRtpTransceiver) -> str | None:
    """What the remote offer lets this side do, from this side ("sendonly" when the remote only receives);
    None before an offer was applied."""
    return cast(str | None, getattr(transceiver, "_offerDirection", None))


# -- receivers --------------------------------------------------------------------------------------------


class FrameEndJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, asking :meth:`frame_end` first whether the packets at its origin already
    make a whole frame, and otherwise completing frames by aiortc's own rule."""

    def frame_end(self, packets: Iterator[RtpPacket | None]) -> int:
        """How many of ``packets`` (the buffer's slots from its origin on; None for a missing packet) make
        a whole frame now; 0 for none yet. This base class says 0."""
        return 0

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        origin = self._origin
        if origin is not None:
            count = self.frame_end(self._slot(origin + i) for i in range(self.capacity))
            if count:
                packets = [cast(RtpPacket, self._slot(origin + i)) for i in range(count)]
                self.remove(count)
                data = b"".join(packet._data for packet in packets)  # type: ignore[attr-defined]
                return JitterFrame(data=data, timestamp=packets[0].timestamp)
        return super()._remove_frame(sequence_number)

    def _slot(self, sequence_number: int) -> RtpPacket | None:
        return self._packets[sequence_number % self.capacity]


def replace_jitter_buffer(receiver: RTCRtpReceiver, buffer: JitterBuffer) -> None:
    """Give ``receiver`` ``buffer`` instead of its own (call before any packet arrives)."""
    if not isinstance(getattr(receiver, _JITTER_BUFFER, None), JitterBuffer):
        raise RuntimeError(
            f"aiortc's receiver no longer keeps its jitter buffer in {_JITTER_BUFFER}: "
            "openrr.compat.aiortc needs updating"
        )
    setattr(receiver, _JITTER_BUFFER, buffer)
