"""A render server running in the test's event loop, without a control plane: for signalling and
data-channel tests that need a real WebRTC peer but not a session's life cycle."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from openrr.protocol.handshake import RenderSettings, RenderSpec
from openrr.render.http import http_runner
from openrr.render.server import RenderServer
from tests.render.control_plane import ACCOUNT, Keys
from tests.render.fixtures import model_root_for

SESSION = "live-session"


@dataclasses.dataclass
class LiveServer:
    server: RenderServer
    port: int
    keys: Keys

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, session: str = SESSION, lifetime: float = 600) -> str:
        """A connect token (of this session unless told otherwise)."""
        return self.keys.token(session, lifetime)

    def account_token(self) -> str:
        """The session account's access token, which a render server must refuse."""
        return self.keys.account_token()


@asynccontextmanager
async def live_server(model_root: Path, **spec_fields: Any) -> AsyncIterator[LiveServer]:
    keys = Keys()
    fields: dict[str, Any] = {
        "account_id": ACCOUNT,
        "session_id": SESSION,
        "instance": "live",
        "size": "standard",
        "models": (),
        "bind_host": "127.0.0.1",
        "advertise_host": "127.0.0.1",
        "teraflops": 1.0,
        "callback_url": "http://127.0.0.1:9/unused",
        "callback_token": "unused",
        "callback_ca": None,
        "connect_secret": keys.secret,
        "ready_deadline_s": 5.0,
        "settings": RenderSettings(
            model_roots=(str(model_root_for(model_root, ACCOUNT)),), video_width=320, video_height=180
        ),
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
        yield LiveServer(server, port, keys)
    finally:
        await server.shutdown()
        await runner.cleanup()
