"""A render server running in the test's event loop, without a control plane: for signalling and
data-channel tests that need a real WebRTC peer but not a session's life cycle."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from openrr.handshake import RenderSettings, RenderSpec
from openrr.render.server import RenderServer, http_runner

ACCOUNT = "00000000-0000-0000-0000-0000000000aa"


@dataclasses.dataclass
class LiveServer:
    server: RenderServer
    port: int
    key: Ed25519PrivateKey

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, account: str = ACCOUNT, lifetime: float = 600) -> str:
        claims = {"sub": account, "aud": "openrr", "iss": "openrr", "exp": int(time.time() + lifetime)}
        return jwt.encode(claims, self.key, algorithm="EdDSA")


@asynccontextmanager
async def live_server(model_root: Path, **spec_fields: Any) -> AsyncIterator[LiveServer]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fields: dict[str, Any] = {
        "account_id": ACCOUNT,
        "session_id": "live-session",
        "instance": "live",
        "size": "standard",
        "models": (),
        "bind_host": "127.0.0.1",
        "advertise_host": "127.0.0.1",
        "teraflops": 1.0,
        "callback_url": "http://127.0.0.1:9/unused",
        "callback_token": "unused",
        "callback_ca": None,
        "token_public_key": public.decode(),
        "ready_deadline_s": 5.0,
        "settings": RenderSettings(model_roots=(str(model_root),), video_width=320, video_height=180),
    }
    fields.update(spec_fields)
    server = RenderServer(RenderSpec(**fields))
    failure = await server.prepare()
    assert failure is None, failure.message
    runner = http_runner(server.handshake_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield LiveServer(server, port, key)
    finally:
        await server.shutdown()
        await runner.cleanup()
