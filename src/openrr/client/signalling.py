"""Signalling: trading SDP with a render server (``protocol.handshake``).

The client gathers its ICE candidates completely (aiortc has no trickle ICE), then POSTs
``{"type": "offer", "sdp", "video"?}`` to ``http://hostname:handshakePort/offer`` with a connect token of
the session (``ArrClient.connect_token``) and applies the answer. The render server's offer port is plain
HTTP unless the service serves render ports with TLS (the connect token's ``handshakeUrl`` says https).

Apart from the connection: this is one HTTP round trip and its checks, testable without a peer connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aioice.ice
import httpx
from aiortc import RTCRtpSender, RTCRtpTransceiver

from openrr.client.errors import RenderConnectError
from openrr.compat.aioice import loopback_host_candidates
from openrr.protocol.handshake import OFFER_PATH

Codec = Literal["h264", "vp8"]

_CODEC_MIME = {"h264": "video/h264", "vp8": "video/vp8"}

_OFFER_STATUS_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    409: "ClientAlreadyConnected",
    503: "NotReady",
}


@dataclass(frozen=True)
class VideoSettings:
    """What the offer asks for (``video`` in the offer body); None fields are left to the server."""

    width: int | None = None
    height: int | None = None
    fps: int | None = None
    bitrate: int | None = None  # bit/s
    codec: Codec | None = None

    def to_json(self) -> dict[str, Any]:
        fields = {
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "bitrate": self.bitrate,
            "codec": self.codec,
        }
        return {k: v for k, v in fields.items() if v is not None}


def offer_url(scheme: str, host: str, port: int) -> str:
    """The offer's URL on a render server (an IPv6 ``host`` gets its brackets)."""
    bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{scheme}://{bracketed}:{port}{OFFER_PATH}"


def prefer_codec(transceiver: RTCRtpTransceiver, codec: Codec) -> None:
    """Offer ``codec`` alone on ``transceiver`` (with RTX, so the server can retransmit on NACK)."""
    mime = _CODEC_MIME[codec]
    codecs = RTCRtpSender.getCapabilities("video").codecs
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() in (mime, "video/rtx")])


# ---- the offer and its answer ---------------------------------------------------------------------------
async def post_offer(
    url: str, token: str, sdp: str, video: VideoSettings, *, timeout: float, verify: ssl.SSLContext | bool
) -> dict[str, Any]:
    """POST the offer with the connect ``token``; the checked answer (see :func:`parse_answer`).

    A non-2xx answer raises :func:`offer_error`'s error, a network failure ``ConnectionFailed``, and running
    out of ``timeout`` a bare TimeoutError (the caller says which stage timed out)."""
    body: dict[str, Any] = {"type": "offer", "sdp": sdp}
    if wanted := video.to_json():
        body["video"] = wanted
    # trust_env=False: the media itself goes peer to peer, so an HTTP proxy from the environment could
    # only misroute the signalling (e.g. loopback traffic sent to a corporate proxy).
    async with httpx.AsyncClient(timeout=timeout, trust_env=False, verify=verify) as http:
        try:
            resp = await http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.HTTPError as exc:
            raise RenderConnectError(0, "ConnectionFailed", f"{url}: {exc}") from None
    if resp.status_code >= 300:
        raise offer_error(resp.status_code, resp.content)
    return parse_answer(resp.status_code, resp.content)


def offer_error(status: int, body: bytes) -> RenderConnectError:
    """The error for a non-2xx offer answer: the server's ``{"error": {"code", "message"}}`` when the body
    has one, else a code from the status and the start of the body as the message."""
    code = _OFFER_STATUS_CODES.get(status, f"HTTP{status}")
    message = f"the render server answered HTTP {status}"
    try:
        data = json.loads(body)
    except ValueError:
        # Not JSON (a proxy's page, a plain-text error): its start says more than the status alone.
        message = body[:300].decode("utf-8", "replace").strip() or message
    else:
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            code = str(data["error"].get("code") or code)
            message = str(data["error"].get("message") or message)
    return RenderConnectError(status, code, message)


def parse_answer(status: int, body: bytes) -> dict[str, Any]:
    """The answer of a 2xx offer response, checked: ``{"type": "answer", "sdp": str, "video"?: dict}``."""
    try:
        data = json.loads(body)
    except ValueError:
        raise RenderConnectError(status, "BadAnswer", "the answer is not JSON") from None
    if not isinstance(data, dict) or data.get("type") != "answer" or not isinstance(data.get("sdp"), str):
        raise RenderConnectError(status, "BadAnswer", "the answer is not {type: answer, sdp: ...}")
    if not isinstance(data.get("video", {}), dict):
        raise RenderConnectError(status, "BadAnswer", "the answer's video is not an object")
    return data


# ---- ICE candidates for a loopback server ---------------------------------------------------------------
async def loopback_addresses(host: str) -> list[str]:
    """The loopback addresses ``host`` names (none for a remote host)."""
    bare = host.strip("[]")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return [str(ip)] if ip.is_loopback else []
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(bare, None, type=socket.SOCK_STREAM)
    except OSError:
        return []  # the offer's POST reports the failure with the URL
    found: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%")[0]
        if ipaddress.ip_address(address).is_loopback and address not in found:
            found.append(address)
    return found


@contextlib.contextmanager
def gathering_for(loopback: Sequence[str]) -> Iterator[None]:
    """ICE gathering that also offers ``loopback`` addresses (aioice leaves 127.0.0.1 out; see
    ``openrr.compat.aioice``), beside the usual host addresses, so a server offering only those still
    pairs."""
    if not loopback:
        yield
        return
    usual = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
    with loopback_host_candidates([*loopback, *(a for a in usual if a not in loopback)]):
        yield
