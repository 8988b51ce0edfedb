"""Bounded request heads for uvicorn's httptools protocol, and no reading of refused bodies.

httptools (llhttp) limits neither the size nor the number of header fields, and uvicorn's protocol appends
every one of them to a list: a client that never ends its head can make the control plane hold gigabytes
(measured: 200,000 fields, 20 MB, were accepted as one request). ``bounded_protocol`` returns uvicorn's
protocol class with two limits added, checked as each piece of the head arrives; past either one the
client gets ``431 Request Header Fields Too Large`` and the connection is closed.

Internals relied on (uvicorn 0.54): ``HttpToolsProtocol.on_message_begin``, ``on_url``, ``on_header``,
``on_headers_complete`` (which makes ``self.cycle``), ``send_400_response`` (called by ``data_received``
when a parser callback raises), ``transport`` and ``server_state.default_headers``; and
``on_body``, ``RequestResponseCycle.transport`` and ``more_body`` (True until the request's body has all
arrived). ``tests/unit/test_compat.py`` checks that they are still there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

# How long a connection whose answer refused its body stays open, unread, before it is dropped. Shorter than
# uvicorn's keep-alive timeout (5 s), which would otherwise close it gracefully, reading again.
LINGER_S = 2.0


TLS_READ_BUFFER = 16 * 1024


class _HeadTooLarge(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class HeadBounds:
    """The limits of one server: the head's bytes and fields, and the body limit of each path."""

    max_head_bytes: int
    max_fields: int
    body_limit: Callable[[str], int]


def bounded_protocol(
    *, max_head_bytes: int, max_fields: int, body_limit: Callable[[str], int]
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, refusing request heads over ``max_head_bytes`` or ``max_fields``, and
    buffering nothing of a body whose ``Content-Length`` is over ``body_limit(path)`` (the app answers 413
    for it, see ``openrr.api.limits``)."""
    bounds = HeadBounds(max_head_bytes, max_fields, body_limit)
    # uvicorn takes a class and makes an instance per connection: the bounds go in as a class attribute.
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"bounds": bounds})


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, checking ``bounds`` (set by ``bounded_protocol``) as a head arrives."""

    bounds: HeadBounds
    _head_bytes = 0
    _refusal: str | None = None
    _dropping = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvloop's TLS transport takes up to 256 KiB of ciphertext a connection off the socket before it
        # stops reading, even while the app reads nothing; request bodies here are small.
        if hasattr(transport, "set_read_buffer_limits"):
            transport.set_read_buffer_limits(high=TLS_READ_BUFFER)

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        self._dropping = False
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # httptools may hand over a long field in several pieces; each piece counts once.
        self._count(len(name) + len(value) + 4)
        if len(self.headers) >= self.bounds.max_fields:
            self._refuse(f"The request has more than {self.bounds.max_fields} header fields.")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and not isinstance(cycle.transport, _DropUnreadBody):
            cycle.transport = cast(asyncio.Transport, _DropUnreadBody(cycle.transport, cycle))
        declared = next((v for k, v in self.headers if k == b"content-length"), b"")
        if declared.isdigit() and int(declared) > self.bounds.body_limit(self.scope["path"]):
            # Refused from its head alone: take no more of it off the socket, and keep none of what
            # already came with the head (uvicorn would buffer it for the app).
            self._dropping = True
            self.transport.pause_reading()

    def on_body(self, body: bytes) -> None:
        if not self._dropping:
            super().on_body(body)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.bounds.max_head_bytes:
            self._refuse(
                f"The request line and headers are larger than {self.bounds.max_head_bytes // 1024} KiB."
            )

    def _refuse(self, message: str) -> None:
        self._refusal = message
        # Raised inside a parser callback: httptools turns it into HttpParserCallbackError, and
        # uvicorn's data_received answers with send_400_response, which answers 431 instead below.
        raise _HeadTooLarge(message)

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
            return
        self.transport.write(_head_too_large(self._refusal, self.server_state.default_headers))
        self.transport.close()


def _head_too_large(message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole 431 answer: uvicorn's default headers, then ARR's error body; the connection closes."""
    body = json.dumps({"error": {"code": "RequestHeaderFieldsTooLarge", "message": message}}).encode()
    head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head += [
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class _DropUnreadBody:
    """The request's transport, as its response cycle sees it: closing while the client is still sending a
    body nobody will read (a 413 answered from the Content-Length alone, or a chunked body cut at the
    limit) stops reading at once and drops the connection ``LINGER_S`` later, instead of closing gracefully.

    A graceful TLS close reads and decrypts whatever the client goes on sending until it stops or 30 s pass
    (uvloop's shutdown timeout): 50 clients that went on uploading held 31 MiB more. Not reading leaves the
    rest in the kernel's socket buffer, which fills and stops the client (TCP flow control). The answer is
    already written; the linger gives the client time to read it before the connection is reset.
    """

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle

    def close(self) -> None:
        if not self._cycle.more_body or self._transport.is_closing():
            self._transport.close()
            return
        self._transport.pause_reading()
        asyncio.get_running_loop().call_later(LINGER_S, self._transport.abort)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
