"""The control plane's half of the render-server contract, for tests that start real ``python -m
openrr.render`` processes: specs (templates and sessions), account tokens, and a receiver for the
ready/failed/idle callbacks on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from openrr.protocol.handshake import CONNECT_AUDIENCE, RenderSettings, RenderSpec
from tests.render.fixtures import model_root_for

ACCOUNT = "00000000-0000-0000-0000-0000000000aa"


class Keys:
    """The connect secret the control plane gives a session's render server, and the account key pair its
    STS signs with (an account token is what a render server must refuse)."""

    def __init__(self) -> None:
        self.secret = secrets.token_urlsafe(32)
        self.account_key = Ed25519PrivateKey.generate()

    def token(self, session: str, lifetime: float = 600) -> str:
        """A connect token for ``session``'s render server."""
        return connect_token(self.secret, session, lifetime)

    def account_token(self, account: str = ACCOUNT) -> str:
        claims = {"sub": account, "aud": "openrr", "iss": "openrr", "exp": int(time.time() + 600)}
        return jwt.encode(claims, self.account_key, algorithm="EdDSA")


def connect_token(secret: str, session: str, lifetime: float = 600) -> str:
    """What ``POST .../sessions/{session}/connectToken`` answers, minted here (see protocol.handshake)."""
    claims = {
        "sub": session,
        "aud": CONNECT_AUDIENCE,
        "iss": "openrr",
        "accountId": ACCOUNT,
        "exp": int(time.time() + lifetime),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def template(model_root: Path, *, size: str = "standard", **settings: Any) -> RenderSpec:
    """What a pool is filled from: the shared fields set, every session field blank."""
    root = model_root_for(model_root, ACCOUNT)  # sessions are ACCOUNT's: its folder holds model_root's models
    values: dict[str, Any] = {"model_roots": (str(root),), "video_width": 320, "video_height": 180}
    values.update(settings)
    return RenderSpec(
        account_id="",
        session_id="",
        instance="",
        size=size,
        models=(),
        bind_host="127.0.0.1",
        advertise_host="127.0.0.1",
        teraflops=1.0,
        callback_url="",
        callback_token="",
        callback_ca=None,
        connect_secret="",
        ready_deadline_s=20.0,
        settings=RenderSettings(**values),
    )


@dataclasses.dataclass(frozen=True)
class Callback:
    session: str
    kind: str  # "ready", "failed", "idle", "heartbeat"
    body: dict[str, Any]
    authorization: str
    at: float  # time.monotonic() on arrival


class CallbackReceiver:
    """Answers every callback 200 ``{}`` (or what ``answer`` returns: status and JSON body) and keeps it, in
    order of arrival."""

    def __init__(self) -> None:
        self.received: list[Callback] = []
        self.answer: Callable[[Callback], tuple[int, dict[str, Any]]] | None = None
        self.port = 0
        self._arrived = asyncio.Condition()

    def url(self, session: str) -> str:
        return f"http://127.0.0.1:{self.port}/render/{session}"

    def session(
        self, base: RenderSpec, keys: Keys, session: str, *, models: tuple[str, ...] = ()
    ) -> RenderSpec:
        """``base`` (a template) with a session's fields filled in, calling back here."""
        return dataclasses.replace(
            base,
            account_id=ACCOUNT,
            session_id=session,
            instance=f"instance-of-{session}",
            models=models,
            callback_url=self.url(session),
            callback_token=f"token-of-{session}",
            connect_secret=keys.secret,
        )

    async def _post(self, request: web.Request) -> web.Response:
        callback = Callback(
            session=request.match_info["session"],
            kind=request.match_info["kind"],
            body=await request.json(),
            authorization=request.headers.get("Authorization", ""),
            at=time.monotonic(),
        )
        async with self._arrived:
            self.received.append(callback)
            self._arrived.notify_all()
        if self.answer is not None:
            status, body = self.answer(callback)
            return web.json_response(body, status=status)
        return web.json_response({})

    def of(self, session: str, kind: str) -> list[Callback]:
        return [c for c in self.received if c.session == session and c.kind == kind]

    async def wait(self, session: str, kind: str, count: int = 1, timeout: float = 60.0) -> list[Callback]:
        """The first ``count`` callbacks of that kind for that session, waiting for them to arrive."""

        def enough() -> bool:
            return len(self.of(session, kind)) >= count

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(enough), timeout)
        return self.of(session, kind)[:count]


@asynccontextmanager
async def callback_receiver() -> AsyncIterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    app = web.Application()
    app.router.add_post("/render/{session}/{kind}", receiver._post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.port = runner.addresses[0][1]
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def wait_for_log(path: Path, text: str, alive: Callable[[], bool], timeout: float = 60.0) -> None:
    """Until ``text`` shows in the log at ``path``; fails at once when the process is no longer alive."""

    def read() -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if text in await asyncio.to_thread(read):
            return
        if not alive():
            log = await asyncio.to_thread(read)
            raise AssertionError(f"the render server ended before logging {text!r}:\n{log}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} not logged in {timeout} s")
