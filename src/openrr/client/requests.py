"""Data-channel requests and their answers: each request gets ``v`` (2 for the scene API's, else 1) and a
fresh ``id``, is checked against ``protocol.datachannel``, and waits for the message whose ``re`` names it;
``model.progress`` messages for it go to its progress callback on the way.

Apart from the connection, which owns the channel and the server's unsolicited messages (``hello``,
``frame``, ``stats``, ``bye``); this table only knows who is waiting for what.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from openrr.client.errors import RenderConnectError, RenderRequestError
from openrr.protocol import datachannel as protocol
from openrr.protocol import scene_api

_REQUEST: TypeAdapter[protocol.Request] = TypeAdapter(protocol.Request)

Progress = Callable[[dict[str, Any]], None]  # gets each ``model.progress`` message of a request


@dataclass(frozen=True)
class Request:
    """A request ready to send: its ``id``, ``type``, the message and its JSON text."""

    id: str | int
    kind: Any
    body: dict[str, Any]
    text: str


@dataclass
class _Pending:
    future: asyncio.Future[tuple[dict[str, Any], float]]
    on_progress: Progress | None


class RequestTable:
    """The requests waiting for an answer, by id."""

    def __init__(self) -> None:
        self._pending: dict[str | int, _Pending] = {}
        self._ids = itertools.count(1)

    def build(self, msg: Mapping[str, Any] | BaseModel, validate: bool = True) -> Request:
        """The request for ``msg``: ``v`` and an ``id`` added when missing. ValueError when ``validate``
        and the protocol would reject it, or when its id is taken by a request still waiting."""
        body = msg.model_dump(mode="json", exclude_none=True) if isinstance(msg, BaseModel) else dict(msg)
        kind = body.get("type")
        # The scene API's requests are protocol v2; every v1 request stays v1, so a server sees a v1 client
        # until it uses the scene API.
        body["v"] = body.get("v", scene_api.VERSION if kind in scene_api.SCENE_TYPES else protocol.VERSION)
        if body.get("id") is None:
            body["id"] = next(self._ids)
        request_id = body["id"]
        if validate:
            try:
                _REQUEST.validate_python(body)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
                )
                raise ValueError(f"not a valid {kind or 'request'}: {problems}") from None
        if not isinstance(request_id, str | int) or request_id in self._pending:
            raise ValueError(f"request id {request_id!r} is not a fresh string or integer")
        return Request(request_id, kind, body, json.dumps(body, separators=(",", ":"), allow_nan=False))

    async def exchange(
        self, request: Request, send: Callable[[str], None], timeout: float, on_progress: Progress | None
    ) -> tuple[dict[str, Any], float]:
        """``send`` the request and return its answer and when it came. TimeoutError after ``timeout``; an
        ``error`` answer raises RenderRequestError; the request stops waiting however it ends."""
        future: asyncio.Future[tuple[dict[str, Any], float]] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = _Pending(future, on_progress)
        try:
            send(request.text)
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as the answer
            # does (it returns the answer instead), so a task cancelled while waiting here ran on.
            async with asyncio.timeout(timeout):
                answer, received_at = await future
        except TimeoutError:
            raise TimeoutError(f"no answer to {request.kind} within {timeout:g} s") from None
        finally:
            self._pending.pop(request.id, None)
        if answer.get("type") == "error":
            kind = request.kind
            raise RenderRequestError(
                str(answer.get("code", "Error")), str(answer.get("message", "")), str(kind) if kind else None
            )
        return answer, received_at

    def deliver(self, msg: dict[str, Any], now: float) -> bool:
        """Hand ``msg`` to the request its ``re`` names: progress to its callback, anything else answers it.
        False when no waiting request is named."""
        re = msg.get("re")
        if not isinstance(re, str | int) or (pending := self._pending.get(re)) is None:
            return False
        if msg.get("type") == "model.progress":
            if pending.on_progress is not None:
                pending.on_progress(msg)
            return True
        del self._pending[re]
        if not pending.future.done():
            pending.future.set_result((msg, now))
        return True

    def fail_all(self, why: str) -> None:
        """End every waiting request with RenderConnectError ``ConnectionClosed``."""
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(RenderConnectError(0, "ConnectionClosed", why))
        self._pending.clear()
