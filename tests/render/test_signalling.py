"""The offer endpoint: who gets in, what a bad offer gets, and one client at a time."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from openrr.compat.aioice import loopback_host_candidates
from openrr.protocol.handshake import DATA_CHANNEL_LABEL, HANDSHAKE_PATH, OFFER_PATH
from openrr.render.http import MAX_HEADER_FIELD, MAX_HEADER_FIELDS, MAX_OFFER_BYTES
from tests.render import fixtures
from tests.render.live import LiveServer, live_server


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveServer]:
    fixtures.two_node_glb(tmp_path)
    async with live_server(tmp_path, models=("two_nodes.glb",)) as server:
        yield server


async def make_offer() -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.createDataChannel(DATA_CHANNEL_LABEL, ordered=True)
    with loopback_host_candidates():
        await pc.setLocalDescription(await pc.createOffer())
    return pc


async def post(
    live: LiveServer, body: Any, token: str | None = None, raw: bytes | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as http:
        if raw is not None:
            return await http.post(live.url + OFFER_PATH, content=raw, headers=headers)
        return await http.post(live.url + OFFER_PATH, json=body, headers=headers)


def error_of(resp: httpx.Response) -> tuple[int, str]:
    body = resp.json()
    assert set(body) == {"error"}
    assert body["error"]["message"]
    return resp.status_code, body["error"]["code"]


async def test_offers_need_a_connect_token_of_this_session(live: LiveServer) -> None:
    body = {"type": "offer", "sdp": "v=0"}
    assert error_of(await post(live, body)) == (401, "Unauthorized")
    assert error_of(await post(live, body, "not-a-jwt")) == (401, "Unauthorized")
    assert error_of(await post(live, body, live.token(lifetime=-60))) == (401, "Unauthorized")
    # Another session's connect token, and the account's own access token, are refused alike.
    assert error_of(await post(live, body, live.token(session="other-session"))) == (401, "Unauthorized")
    refused = await post(live, body, live.account_token())
    assert error_of(refused) == (401, "Unauthorized")
    assert "not a connect token" in refused.text


@pytest.mark.parametrize(
    "body",
    [
        {"type": "answer", "sdp": "v=0"},
        {"type": "offer"},
        {"type": "offer", "sdp": ""},
        {"type": "offer", "sdp": "v=0", "video": {"width": 321}},
        {"type": "offer", "sdp": "v=0", "video": {"fps": 0}},
        {"type": "offer", "sdp": "v=0", "video": {"codec": "av1"}},
        {"type": "offer", "sdp": "v=0", "video": {"colour": "red"}},
        ["not", "an", "object"],
        {"type": "offer", "sdp": "this is not SDP"},
    ],
)
async def test_bad_offers_get_400_and_leave_the_server_free(live: LiveServer, body: Any) -> None:
    assert error_of(await post(live, body, live.token())) == (400, "BadRequest")
    assert live.server.client is None


async def test_invalid_json_gets_400(live: LiveServer) -> None:
    assert error_of(await post(live, None, live.token(), raw=b"{nope")) == (400, "BadRequest")


async def test_an_offer_without_video_is_refused(live: LiveServer) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel(DATA_CHANNEL_LABEL)
    with loopback_host_candidates():
        await pc.setLocalDescription(await pc.createOffer())
    try:
        resp = await post(live, {"type": "offer", "sdp": pc.localDescription.sdp}, live.token())
        assert error_of(resp) == (400, "BadRequest")
        assert "video" in resp.json()["error"]["message"]
    finally:
        await pc.close()


async def test_one_client_at_a_time_and_the_next_after_it_left(live: LiveServer) -> None:
    first = await make_offer()
    second = await make_offer()
    try:
        resp = await post(live, {"type": "offer", "sdp": first.localDescription.sdp}, live.token())
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        assert answer["type"] == "answer"
        assert answer["video"]["codec"] == "h264"
        assert (answer["video"]["width"], answer["video"]["height"]) == (320, 180)
        await first.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        for _ in range(200):
            if first.connectionState == "connected":
                break
            await asyncio.sleep(0.05)
        assert first.connectionState == "connected"
        refused = await post(live, {"type": "offer", "sdp": second.localDescription.sdp}, live.token())
        assert error_of(refused) == (409, "ClientAlreadyConnected")
        await first.close()
        for _ in range(400):  # up to 20 s: the server sees the close, then resets the scene
            if live.server.client is None:
                break
            await asyncio.sleep(0.05)
        assert live.server.client is None
        third = await make_offer()
        try:
            body = {"type": "offer", "sdp": third.localDescription.sdp, "video": {"codec": "vp8"}}
            resp = await post(live, body, live.token())
            assert resp.status_code == 200
            assert resp.json()["video"]["codec"] == "vp8"
        finally:
            await third.close()
    finally:
        await first.close()
        await second.close()


async def test_unknown_paths_methods_and_huge_bodies_get_json_errors(live: LiveServer) -> None:
    async with httpx.AsyncClient() as http:
        assert error_of(await http.get(live.url + "/nope")) == (404, "NotFound")
        assert error_of(await http.get(live.url + OFFER_PATH)) == (405, "MethodNotAllowed")
        huge = b"x" * (600 * 1024)
        resp = await http.post(
            live.url + OFFER_PATH, content=huge, headers={"Authorization": f"Bearer {live.token()}"}
        )
        assert error_of(resp) == (413, "PayloadTooLarge")


async def test_bodies_and_heads_are_bounded_before_the_token_is_checked(live: LiveServer) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: bounded while it is read
        for _ in range(MAX_OFFER_BYTES // 65536 + 2):
            yield b" " * 65536

    async with httpx.AsyncClient() as http:
        # No Authorization header: a 401 would mean the token was looked at first.
        declared = await http.post(live.url + OFFER_PATH, content=b"x" * (MAX_OFFER_BYTES + 5000))
        assert error_of(declared) == (413, "PayloadTooLarge")
        assert error_of(await http.post(live.url + OFFER_PATH, content=chunks())) == (413, "PayloadTooLarge")
        small = await http.post(live.url + OFFER_PATH, content=b"{}")
        assert error_of(small) == (401, "Unauthorized")
        many = {f"x-field-{i}": "1" for i in range(MAX_HEADER_FIELDS + 1)}
        assert (await http.get(live.url + "/health", headers=many)).status_code == 400  # aiohttp's answer
        long = {"x-long": "a" * (MAX_HEADER_FIELD + 1)}
        assert (await http.get(live.url + "/health", headers=long)).status_code == 400


async def test_the_handshake_shows_models_without_their_query_strings(live: LiveServer) -> None:
    sas = "https://user:pw@assets.test/a/m.glb?sv=2021-08-06&sig=SECRET"
    live.server.spec = dataclasses.replace(live.server.spec, models=(sas,))
    async with httpx.AsyncClient() as http:
        resp = await http.get(live.url + HANDSHAKE_PATH, headers={"Authorization": f"Bearer {live.token()}"})
    assert resp.status_code == 200
    assert resp.json()["models"] == ["https://assets.test/a/m.glb"]
    assert "SECRET" not in resp.text
    assert "pw" not in resp.text


async def test_an_offer_with_no_codec_in_common_is_refused(live: LiveServer) -> None:
    pc = await make_offer()
    try:
        sdp = pc.localDescription.sdp.replace("VP8/90000", "VP9/90000").replace("H264/90000", "AV1/90000")
        resp = await post(live, {"type": "offer", "sdp": sdp}, live.token())
        assert error_of(resp) == (400, "BadRequest")
        assert live.server.client is None
    finally:
        await pc.close()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda sdp: sdp.replace("a=setup:actpass\r\n", ""),
        lambda sdp: sdp + sdp[sdp.index("m=video") :],
        lambda sdp: sdp.replace("a=sendrecv", "a=sendonly").replace("a=recvonly", "a=sendonly"),
    ],
    ids=["no-setup", "two-videos", "video-sendonly"],
)
async def test_hostile_offers_get_400_and_leave_no_connection(live: LiveServer, mangle: Any) -> None:
    pc = await make_offer()
    try:
        resp = await post(live, {"type": "offer", "sdp": mangle(pc.localDescription.sdp)}, live.token())
        assert error_of(resp) == (400, "BadRequest")
        assert live.server.client is None
    finally:
        await pc.close()
