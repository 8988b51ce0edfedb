"""The third-party internals openrr.compat relies on: an upgrade that removes one fails here, loudly."""

from __future__ import annotations

import asyncio
import ctypes
import inspect

import aioice.ice
import pytest
from aioice import Connection
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
    rtcdtlstransport,
    rtcpeerconnection,
)
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtcpByePacket, RtpPacket
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from openrr.compat import aioice as aioice_compat
from openrr.compat.aiortc import (
    FrameEndJitterBuffer,
    chosen_codecs,
    intercept_sender,
    offered_direction,
    prefer_among_chosen,
    replace_jitter_buffer,
)
from openrr.compat.embreex import embree_library
from openrr.compat.uvicorn_headers import bounded_protocol


def test_uvicorn_httptools_protocol_still_has_what_the_bounds_use() -> None:
    for name in (
        "connection_made",
        "on_message_begin",
        "on_url",
        "on_header",
        "on_headers_complete",
        "on_body",
        "send_400_response",
        "data_received",
    ):
        assert callable(getattr(HttpToolsProtocol, name, None)), f"HttpToolsProtocol.{name} is gone"
    # data_received must still turn a parser callback's exception into send_400_response.
    source = inspect.getsource(HttpToolsProtocol.data_received)
    assert "HttpParserError" in source
    assert "send_400_response" in source
    assert "default_headers" in inspect.getsource(ServerState.__init__)
    # The response cycle closes through its own transport attribute, and knows whether the body is all in.
    cycle = inspect.getsource(RequestResponseCycle)
    assert "self.transport = transport" in cycle
    assert "self.transport.close()" in cycle
    assert "self.more_body" in cycle
    protocol = bounded_protocol(max_head_bytes=1024, max_fields=10, body_limit=lambda _path: 1024)
    assert issubclass(protocol, HttpToolsProtocol)


# -- aioice ----------------------------------------------------------------------------------------------


def test_aioice_still_gathers_host_addresses_through_its_module_function() -> None:
    found = aioice.ice.__dict__.get("get_host_addresses")
    assert callable(found), "aioice.ice.get_host_addresses is gone: openrr.compat.aioice needs updating"
    parameters = list(inspect.signature(found).parameters)
    assert parameters == ["use_ipv4", "use_ipv6"], f"aioice.ice.get_host_addresses now takes {parameters}"
    # Looked up by name in aioice.ice's globals when gathering: replacing the module attribute reaches it.
    source = inspect.getsource(Connection.gather_candidates)
    assert "get_host_addresses(" in source, "aioice's Connection.gather_candidates no longer calls it"


async def gathered_hosts() -> set[str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.createDataChannel("x")
        await pc.setLocalDescription(await pc.createOffer())
        lines = [line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate:")]
        return {line.split()[4] for line in lines if line.split()[7] == "host"}
    finally:
        await pc.close()


async def test_loopback_host_candidates_reach_only_the_code_inside_the_block() -> None:
    inside = asyncio.Event()
    outside: set[str] = set()

    async def elsewhere() -> None:
        # Another coroutine gathering while the block below is open (and awaiting) sees aioice's own list.
        await inside.wait()
        outside.update(await gathered_hosts())

    other = asyncio.create_task(elsewhere())
    with aioice_compat.loopback_host_candidates():
        inside.set()
        assert await gathered_hosts() == {"127.0.0.1"}
        await other
    assert "127.0.0.1" not in outside
    assert "127.0.0.1" not in await gathered_hosts(), "aioice's own addresses once the block is left"
    # Installed once, for good: aioice's function is openrr's now, answering aioice's list outside blocks.
    assert aioice.ice.get_host_addresses is aioice_compat._host_addresses
    aioice_compat.install()  # idempotent
    assert aioice.ice.get_host_addresses is aioice_compat._host_addresses


def test_loopback_host_candidates_nest_and_follow_the_address_families_asked_for() -> None:
    with aioice_compat.loopback_host_candidates(["127.0.0.1", "::1"]):
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "::1"]
        assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == ["::1"]
        with aioice_compat.loopback_host_candidates(["127.0.0.2"]):
            assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.2"]
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)


# -- aiortc ----------------------------------------------------------------------------------------------


def test_aiortc_senders_still_route_rtcp_and_start_through_instance_lookups() -> None:
    assert inspect.iscoroutinefunction(getattr(RTCRtpSender, "_handle_rtcp_packet", None)), (
        "RTCRtpSender._handle_rtcp_packet is gone: openrr.compat.aiortc.intercept_sender needs updating"
    )
    assert inspect.iscoroutinefunction(RTCRtpSender.send), "RTCRtpSender.send is no longer a coroutine"
    assert "recipient._handle_rtcp_packet(" in inspect.getsource(rtcdtlstransport), (
        "aiortc's DTLS transport no longer routes RTCP through recipient._handle_rtcp_packet"
    )
    assert "transceiver.sender.send(" in inspect.getsource(rtcpeerconnection), (
        "aiortc's peer connection no longer starts senders with transceiver.sender.send"
    )
    assert "self._ssrc = " in inspect.getsource(RTCRtpSender.__init__), "RTCRtpSender._ssrc is gone"


async def test_intercept_sender_adapts_that_sender_only_and_sees_its_rtcp() -> None:
    pc = RTCPeerConnection()
    try:
        sender = pc.addTransceiver("video", direction="sendonly").sender
        other = pc.addTransceiver("video", direction="sendonly").sender
        seen: list[object] = []
        intercept_sender(sender, on_rtcp=lambda p, ssrc: seen.append(ssrc), on_send=seen.append)
        assert "_handle_rtcp_packet" in vars(sender)
        assert "send" in vars(sender)
        assert "_handle_rtcp_packet" not in vars(other)
        assert "send" not in vars(other)
        await sender._handle_rtcp_packet(RtcpByePacket(sources=[1]))
        assert seen == [sender._ssrc]
    finally:
        await pc.close()


def test_aiortc_transceivers_still_keep_chosen_codecs_and_the_offers_direction() -> None:
    source = inspect.getsource(rtcpeerconnection)
    assert callable(getattr(rtcpeerconnection, "filter_preferred_codecs", None)), (
        "aiortc.rtcpeerconnection.filter_preferred_codecs is gone: openrr.compat.aiortc needs updating"
    )
    assert "transceiver._codecs = " in source, "RTCRtpTransceiver._codecs is no longer set on negotiation"
    assert "transceiver._offerDirection = " in source, "RTCRtpTransceiver._offerDirection is no longer set"
    init = inspect.getsource(RTCRtpTransceiver.__init__)
    assert "self._codecs" in init
    assert "self._offerDirection" in init


async def test_chosen_codecs_preferences_and_direction_of_an_answered_offer() -> None:
    client, server = RTCPeerConnection(), RTCPeerConnection()
    try:
        client.addTransceiver("video", direction="recvonly")
        await client.setLocalDescription(await client.createOffer())
        await server.setRemoteDescription(
            RTCSessionDescription(client.localDescription.sdp, client.localDescription.type)
        )
        (transceiver,) = server.getTransceivers()
        assert offered_direction(transceiver) == "sendonly"
        chosen = [c.mimeType.lower() for c in chosen_codecs(transceiver)]
        assert chosen[0] == "video/vp8", chosen
        assert "video/h264" in chosen, chosen
        h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() == "video/h264"]
        prefer_among_chosen(transceiver, h264)
        assert {c.mimeType.lower() for c in chosen_codecs(transceiver)} == {"video/h264"}
    finally:
        await client.close()
        await server.close()


def test_aiortc_receivers_still_keep_a_jitter_buffer_that_completes_frames_in_remove_frame() -> None:
    receiver = inspect.getsource(RTCRtpReceiver)
    gone = "RTCRtpReceiver.__jitter_buffer is gone: openrr.compat.aiortc.replace_jitter_buffer needs updating"
    assert "self.__jitter_buffer = " in receiver, gone
    assert "self.__jitter_buffer.add(packet)" in receiver, gone
    assert "packet._data = " in receiver, "aiortc's receiver no longer stores RtpPacket._data"
    assert "self._remove_frame(" in inspect.getsource(JitterBuffer.add), (
        "JitterBuffer.add no longer completes frames in _remove_frame: openrr.compat.aiortc needs updating"
    )
    buffer = JitterBuffer(capacity=8, is_video=True)
    for name in ("_origin", "_packets", "capacity", "remove"):
        assert hasattr(buffer, name), f"JitterBuffer.{name} is gone: openrr.compat.aiortc needs updating"


async def test_replace_jitter_buffer_and_a_frame_end_rule() -> None:
    class FirstPacketIsAFrame(FrameEndJitterBuffer):
        def frame_end(self, packets: object) -> int:
            return 1

    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        buffer = FirstPacketIsAFrame(capacity=8, is_video=True)
        replace_jitter_buffer(receiver, buffer)
        assert receiver._RTCRtpReceiver__jitter_buffer is buffer  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="__jitter_buffer"):
            replace_jitter_buffer(object(), buffer)  # type: ignore[arg-type]
    finally:
        await pc.close()
    packet = RtpPacket(payload_type=96, sequence_number=7, timestamp=90)
    packet._data = b"part"  # type: ignore[attr-defined]
    _, frame = buffer.add(packet)
    assert frame is not None
    assert (frame.data, frame.timestamp) == (b"part", 90)
    # The base class has no rule of its own: aiortc's applies (a frame completes at the next one).
    plain = FrameEndJitterBuffer(capacity=8, is_video=True)
    assert plain.add(packet) == (False, None)


def test_embreex_still_bundles_libembree4_where_the_spatial_queries_load_it() -> None:
    library = embree_library()
    assert library.is_file()
    assert library.name.startswith("libembree4")
    # It loads, and it is Embree 4: the C API openrr.render.embree calls.
    loaded = ctypes.CDLL(str(library))
    assert hasattr(loaded, "rtcNewDevice")
    assert hasattr(loaded, "rtcIntersect1")
