"""Request heads and bodies bounded by a real ``openrr serve`` (uvicorn + httptools), before any route."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl

from tests.e2e.server import OpenRRServer


def exchange(server: OpenRRServer, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send a raw request over TLS; the status, headers and body of the answer (read until close)."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    with server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        # The server may answer and close before it has read everything; a close with unread data ends in
        # a reset, which arrives after the answer's bytes (Linux delivers queued data before the error).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            conn.sendall(head + body)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                data += chunk
    assert data, "no answer"
    head_part, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head_part.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, rest


def test_heads_over_the_limits_get_431_and_bodies_413_before_authentication(
    openrr_server: OpenRRServer,
) -> None:
    many = b"".join(b"X-Field-%d: 1\r\n" % i for i in range(101))
    status, _, body = exchange(openrr_server, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status == 431
    assert json.loads(body)["error"]["code"] == "RequestHeaderFieldsTooLarge"

    long = b"X-Long: " + b"a" * 40_000 + b"\r\n"
    status, headers, body = exchange(openrr_server, b"GET /health HTTP/1.1\r\nHost: x\r\n" + long + b"\r\n")
    assert status == 431
    assert "32 KiB" in json.loads(body)["error"]["message"]
    assert headers["connection"] == "close"

    status, _, _ = exchange(openrr_server, b"GET /" + b"a" * 40_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 431

    # A declared gigabyte is refused from its head alone: only the first 64 KiB are even sent here.
    account = openrr_server.account
    head = (
        f"POST /v1/accounts/{account.id}/sessions/create HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {2**30}\r\n\r\n"
    ).encode()
    status, headers, body = exchange(openrr_server, head, b" " * 65536)
    assert status == 413
    assert json.loads(body)["status"] == 413
    assert headers["connection"] == "close"

    # Chunked, without a length: refused once it passes the limit.
    head = b"PUT /accounts/%s/sessions/big?api-version=2021-01-01 HTTP/1.1\r\n" % account.id.encode()
    head += b"Host: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = b"".join(b"4000\r\n" + b" " * 0x4000 + b"\r\n" for _ in range(8))
    status, _, body = exchange(openrr_server, head, chunks)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "PayloadTooLarge"

    # Within the limits, the same server answers as before.
    status, _, body = exchange(openrr_server, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200
    assert json.loads(body)["status"] == "ok"
