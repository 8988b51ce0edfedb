"""The third-party internals openrr.compat relies on: an upgrade that removes one fails here, loudly."""

from __future__ import annotations

import inspect

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from openrr.compat.uvicorn_headers import bounded_protocol


def test_uvicorn_httptools_protocol_still_has_what_the_bounds_use() -> None:
    for name in (
        "connection_made",
        "on_message_begin",
        "on_url",
        "on_header",
        "on_headers_complete",
        "on_body",
        "send_400_response",
        "data_received",
    ):
        assert callable(getattr(HttpToolsProtocol, name, None)), f"HttpToolsProtocol.{name} is gone"
    # data_received must still turn a parser callback's exception into send_400_response.
    source = inspect.getsource(HttpToolsProtocol.data_received)
    assert "HttpParserError" in source
    assert "send_400_response" in source
    assert "default_headers" in inspect.getsource(ServerState.__init__)
    # The response cycle closes through its own transport attribute, and knows whether the body is all in.
    cycle = inspect.getsource(RequestResponseCycle)
    assert "self.transport = transport" in cycle
    assert "self.transport.close()" in cycle
    assert "self.more_body" in cycle
    protocol = bounded_protocol(max_head_bytes=1024, max_fields=10, body_limit=lambda _path: 1024)
    assert issubclass(protocol, HttpToolsProtocol)
