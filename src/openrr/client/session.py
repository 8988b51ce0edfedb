"""Reaching a session's render server through the control plane: ask the REST API where the session's
render server is and for a connect token, then connect.

Apart from the connection: this is the one part of the streaming client that speaks to the control plane
(through :class:`openrr.client.rest.ArrClient`); a connection needs only a host, a port and a token.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple
from urllib.parse import urlsplit

from aiortc import RTCConfiguration

from openrr.client.connection import RenderConnection, connect
from openrr.client.errors import RenderConnectError, SessionNotReadyError
from openrr.client.rest import ArrClient
from openrr.client.signalling import VideoSettings


class RenderEndpoint(NamedTuple):
    host: str
    port: int
    token: str  # a connect token of the session
    scheme: str = "http"  # https where the service serves render ports with TLS (--render-tls-cert)


async def session_endpoint(client: ArrClient, session_id: str) -> RenderEndpoint:
    """Where a Ready session's render server is, with a connect token; SessionNotReadyError otherwise.

    ``ArrClient`` is synchronous, so its calls run in a worker thread to keep the event loop free.
    """
    session = await asyncio.to_thread(client.get_session, session_id)
    status = str(session.get("status"))
    if status != "Ready":
        message = f"session {session_id} is {status}, not Ready"
        error = session.get("error")
        if isinstance(error, dict) and error.get("code"):
            message += f" ({error.get('code')}: {error.get('message')})"
        raise SessionNotReadyError(session_id, status, message)
    host, port = session.get("hostname"), session.get("handshakePort")
    if not isinstance(host, str) or not host or not isinstance(port, int):
        raise RenderConnectError(0, "BadSession", f"session {session_id} has no hostname/handshakePort")
    grant = await asyncio.to_thread(client.connect_token, session_id)
    scheme = urlsplit(str(grant.get("handshakeUrl") or "http:")).scheme
    return RenderEndpoint(host, port, str(grant["token"]), "https" if scheme == "https" else "http")


async def connect_session(
    client: ArrClient,
    session_id: str,
    *,
    video: VideoSettings | None = None,
    timeout: float = 10.0,
    ice: RTCConfiguration | None = None,
) -> RenderConnection:
    """Look the session up through the REST API, require Ready, and connect to its render server."""
    found = await session_endpoint(client, session_id)
    return await connect(
        found.host,
        found.port,
        found.token,
        video=video,
        timeout=timeout,
        ice=ice,
        scheme=found.scheme,
        verify=client.verify,
    )
