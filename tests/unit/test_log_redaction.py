"""No URL query string in a log line (``openrr.log_redaction``): the rule, and real loggers through it."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator

import httpx
import pytest
from uvicorn.logging import AccessFormatter

from openrr import log_redaction
from openrr.log_redaction import REDACTED, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /x?sig=SECRET HTTP/1.1", f"GET /x?{REDACTED} HTTP/1.1"),
        ('https://a.blob/c/m.glb?sv=1&sig=SECRET "200"', f'https://a.blob/c/m.glb?{REDACTED} "200"'),
        ("file:///models/a.glb?sig=SECRET", f"file:///models/a.glb?{REDACTED}"),
        ("(see https://h/a?sig=SECRET(1))", f"(see https://h/a?{REDACTED}"),  # brackets do not end it
        ("'http://h/p?sig=SECRET', next", f"'http://h/p?{REDACTED}', next"),
        ("what? nothing here", "what? nothing here"),
        ("/health", "/health"),
    ],
)
def test_the_rule(text: str, expected: str) -> None:
    assert redact(text) == expected


class _Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def loopback_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_every_logger_of_the_process_is_redacted(caplog: pytest.LogCaptureFixture, loopback_url: str) -> None:
    log_redaction.install()
    log_redaction.install()  # idempotent
    caplog.set_level(logging.DEBUG)
    # httpx's own request line (it logs the full URL at INFO).
    with httpx.Client() as http:
        assert http.get(f"{loopback_url}/model.glb?sig=SECRET-1").status_code == 200
    # An exception whose text carries the URL, logged with its traceback.
    try:
        raise ValueError(f"cannot load {loopback_url}/a.glb?sig=SECRET-2")
    except ValueError as exc:
        logging.getLogger("openrr.test").exception("failed: %s", exc)
    # uvicorn's access log: its formatter unpacks the arguments, which must keep their types.
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/health?sig=SECRET-3", "1.1", 200)
    texts = [logging.Formatter().format(r) for r in caplog.records]
    (access_record,) = [r for r in caplog.records if r.name == "uvicorn.access"]
    texts.append(AccessFormatter("%(message)s", use_colors=False).format(access_record))
    joined = "\n".join(texts)
    assert "SECRET" not in joined, joined
    assert f"/model.glb?{REDACTED}" in joined
    assert f"/health?{REDACTED}" in joined
    assert f"/a.glb?{REDACTED}" in joined
    assert "Traceback" in joined
