"""A real ``openrr serve``: its data directory, store and arrconfig.json are its user's only, its development
certificate is a leaf that clients verify through the throwaway CA, and its HTTPS answers carry HSTS."""

from __future__ import annotations

import json
import ssl
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import OpenRRServer, wait_for

pytestmark = pytest.mark.e2e


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_is_private_and_the_certificate_a_leaf(openrr_server: OpenRRServer) -> None:
    server = openrr_server
    data = server.data_dir
    assert mode(data) == 0o700
    files = [data / "openrr.db", data / "arrconfig.json", data / "tls" / "key.pem"]
    files += [p for p in (data / "openrr.db-wal", data / "openrr.db-shm") if p.exists()]
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    ca = Path(json.loads(server.config_path.read_text())["openrr"]["caCertificate"])
    assert ca == (data / "tls" / "ca.pem").resolve()
    resp = httpx.get(f"{server.url}/health", verify=ssl.create_default_context(cafile=str(ca)), timeout=5)
    assert resp.status_code == 200
    assert resp.headers["strict-transport-security"] == "max-age=31536000"
    assert f"SSL_CERT_FILE={ca}" in server.log_tail(80)


def test_no_log_line_carries_a_query_string(openrr_factory: Callable[..., OpenRRServer]) -> None:
    server = openrr_factory(log_level="debug")  # debug: uvicorn's access log is on
    verify = server.ssl_context()
    account = server.account
    token = server.token()
    for path in (
        "/health?sig=SECRET-1",
        f"/accounts/{account.id}/sessions?api-version=2021-01-01&sig=SECRET-2",
    ):
        resp = httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}, verify=verify)
        assert resp.status_code == 200, resp.text
    bad = httpx.get(f"{server.url}/accounts/{account.id}/token?sig=SECRET-3", verify=verify)  # 401, logged
    assert bad.status_code == 401

    def logged() -> str | None:
        text = server.log_path.read_text(errors="replace")
        return text if "/token?[redacted]" in text else None

    log = wait_for(logged, what="the access log line of the last request")
    assert "SECRET" not in log
    assert "/health?[redacted]" in log
    assert "/sessions?[redacted]" in log
