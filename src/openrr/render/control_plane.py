"""The render server's calls to the control plane that started it (``protocol.handshake``, "Callbacks").

Ready, failed and idle reports are POSTed until answered (retrying with backoff until the spec's ready
deadline); a heartbeat is one POST whose answer may move the lease. Every call carries the spec's callback
token. Apart from the server because it is the one place that speaks HTTP as a client, and the lease
keeper (``lease.py``) and the idle clock use it without knowing the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from openrr.protocol.handshake import (
    FAILED_SUFFIX,
    HEARTBEAT_SUFFIX,
    IDLE_SUFFIX,
    READY_SUFFIX,
    ReadyReport,
    RenderSpec,
)

log = logging.getLogger("openrr.render")


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """What one heartbeat came back with.

    ``refused``: the control plane says the session is over (404/409/410). ``answer``: a 2xx answer's JSON
    object ({} when it is none), which counts as contact; None when there was no contact (no answer, 5xx,
    401/403)."""

    refused: bool = False
    answer: Mapping[str, Any] | None = None


class ControlPlane:
    """The callbacks of the session ``spec`` (whose callback URL, token and CA it uses)."""

    def __init__(self, spec: RenderSpec) -> None:
        self.spec = spec

    async def report_ready(self, report: ReadyReport) -> dict[str, Any] | None:
        """POST the ready report until answered: the answer, or None when the control plane refused it."""
        return await self._callback(READY_SUFFIX, report.to_json())

    async def report_failed(self, code: str, message: str) -> bool:
        """Tell the control plane this server cannot serve the session (it goes to Error)."""
        body = {"instance": self.spec.instance, "code": code, "message": message[:2000]}
        return await self._callback(FAILED_SUFFIX, body) is not None

    async def report_idle(self, seconds: float) -> None:
        """Tell the control plane nobody used this session for ``seconds``; it decides to stop it."""
        log.info("no client for %.1f s: reporting the session idle", seconds)
        body = {"instance": self.spec.instance, "idleSeconds": round(seconds, 3)}
        try:
            await self._callback(IDLE_SUFFIX, body)
        except TimeoutError as exc:
            log.warning("%s", exc)

    def heartbeat_session(self) -> aiohttp.ClientSession:
        """The HTTP session heartbeats share while the lease is kept (``heartbeat_s`` apart)."""
        interval = self.spec.settings.heartbeat_s
        timeout = aiohttp.ClientTimeout(total=max(1.0, min(10.0, 2 * interval)))
        return aiohttp.ClientSession(timeout=timeout, trust_env=False)  # as _callback

    async def heartbeat(self, http: aiohttp.ClientSession, ssl_ctx: ssl.SSLContext | bool) -> Heartbeat:
        """One heartbeat, never retried: the lease keeper sends the next one."""
        url = self.spec.callback_url + HEARTBEAT_SUFFIX
        try:
            async with http.post(
                url, json={"instance": self.spec.instance}, headers=self._auth(), ssl=ssl_ctx
            ) as resp:
                if resp.status in (404, 409, 410):
                    log.error("heartbeat refused: %s %s", resp.status, (await resp.text())[:500])
                    return Heartbeat(refused=True)
                if resp.status >= 300:
                    log.warning("heartbeat answered %s %s", resp.status, (await resp.text())[:500])
                    return Heartbeat()
                try:
                    answer = await resp.json(content_type=None)
                except ValueError:
                    answer = None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("heartbeat failed: %s", exc or type(exc).__name__)
            return Heartbeat()
        return Heartbeat(answer=answer if isinstance(answer, dict) else {})

    def ssl(self) -> ssl.SSLContext | bool:
        """How to verify the control plane: its CA file for an https callback URL that names one."""
        if self.spec.callback_url.startswith("https://") and self.spec.callback_ca:
            return ssl.create_default_context(cafile=self.spec.callback_ca)
        return True

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.spec.callback_token}"}

    async def _callback(self, suffix: str, body: Mapping[str, object]) -> dict[str, Any] | None:
        """POST until answered; the answer's JSON object on 2xx ({} if it is none), None when refused,
        TimeoutError past the ready deadline."""
        ssl_ctx = self.ssl()
        deadline = time.monotonic() + self.spec.ready_deadline_s
        delay = 0.05
        headers = self._auth()
        # trust_env=False (aiohttp's default, said here because it matters): no proxy from the environment
        # sees the callback token. The URL is the control plane's own (--public-url), never a client's.
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as http:
            while True:
                try:
                    async with http.post(
                        self.spec.callback_url + suffix, json=body, headers=headers, ssl=ssl_ctx
                    ) as resp:
                        if resp.status < 300:
                            try:
                                answer = await resp.json(content_type=None)
                            except ValueError:
                                answer = None
                            return answer if isinstance(answer, dict) else {}
                        text = await resp.text()
                        if resp.status in (401, 403, 404, 409, 410):
                            log.error("control plane refused %s: %s %s", suffix, resp.status, text)
                            return None
                        log.warning("%s answered %s %s; retrying", suffix, resp.status, text)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    log.warning("%s failed (%s); retrying", suffix, exc)
                if time.monotonic() + delay > deadline:
                    raise TimeoutError(f"the control plane did not answer {suffix} in time")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
