"""TLS on render-server ports (``--render-tls-cert``/``--render-tls-key``): real control plane and render
server; the connect token says https, the relay and ``openrr.client`` check the certificate."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from openrr.client.rest import ArrClient
from openrr.client.session import connect_session
from openrr.tls import ca_file, ensure_self_signed
from tests.e2e.server import OpenRRServer, wait_for
from tests.render import fixtures
from tests.render.test_signalling import make_offer


@pytest.fixture
def tls_server(openrr_factory: Callable[..., OpenRRServer], tmp_path: Path) -> tuple[OpenRRServer, Path]:
    # Made as openrr makes its development certificate: a leaf for 127.0.0.1 and its CA.
    cert, key = ensure_self_signed(tmp_path / "render-tls")
    ca = ca_file(tmp_path / "render-tls")
    models = tmp_path / "models"
    models.mkdir()
    fixtures.two_node_glb(models)
    server = openrr_factory(
        render_tls_cert=str(cert),
        render_tls_key=str(key),
        render_tls_ca=str(ca),
        model_root=str(models),
        video_width=320,
        video_height=180,
    )
    return server, ca


async def test_render_ports_serve_tls_and_every_client_checks_it(
    tls_server: tuple[OpenRRServer, Path],
) -> None:
    server, ca = tls_server
    with server.api() as api:
        api.create("secure", lease=30)
        session = api.wait_status("secure", "Ready", timeout=60)
    grant = server.connect_token_response("secure").json()
    handshake_url, inspector_url = grant["handshakeUrl"], grant["inspectorUrl"]
    assert handshake_url == f"https://127.0.0.1:{session['handshakePort']}"
    assert inspector_url == f"https://127.0.0.1:{session['arrInspectorPort']}"
    trusted = ssl.create_default_context(cafile=str(ca))
    auth = {"Authorization": f"Bearer {grant['token']}"}
    async with httpx.AsyncClient(verify=trusted, timeout=10) as http:
        assert (await http.get(handshake_url + "/handshake", headers=auth)).status_code == 200
        assert (await http.get(inspector_url + "/stats", headers=auth)).status_code == 200
    # Nothing in clear: plain HTTP to the same port gets no answer, and an untrusting client refuses it.
    async with httpx.AsyncClient(timeout=5) as untrusting:
        with pytest.raises(httpx.HTTPError):
            await untrusting.get(f"http://127.0.0.1:{session['handshakePort']}/handshake", headers=auth)
        with pytest.raises(httpx.ConnectError):
            await untrusting.get(handshake_url + "/handshake", headers=auth)

    # openrr.client: the connect token says https; the client's CA bundle holds both CAs.
    bundle = ca.parent / "bundle.pem"
    bundle.write_bytes(server.cert.read_bytes() + ca.read_bytes())
    account = server.account
    with ArrClient(server.url, account.id, account.key, verify=str(bundle)) as arr:
        async with await connect_session(arr, "secure", timeout=20) as conn:
            assert conn.url.startswith("https://")
            await conn.wait_frames(3, timeout=20)

    # The control plane's relay (the browser pages' way in) reaches it over TLS and checks the certificate
    # (the client above has left: the render server takes the next one).
    def free() -> bool:
        answer = httpx.get(handshake_url + "/handshake", headers=auth, verify=trusted, timeout=5).json()
        return answer["clientConnected"] is False

    wait_for(free, timeout=20, interval=0.2, what="the render server to notice its client left")
    pc = await make_offer()
    try:
        async with httpx.AsyncClient(verify=server.ssl_context(), timeout=20) as relay:
            resp = await relay.post(
                f"{server.url}/openrr/accounts/{server.account.id}/sessions/secure/offer",
                json={"type": "offer", "sdp": pc.localDescription.sdp},
                headers={"Authorization": f"Bearer {server.token()}"},
            )
        assert resp.status_code == 200, resp.text
        assert json.loads(resp.content)["type"] == "answer"
    finally:
        await pc.close()
