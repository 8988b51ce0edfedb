"""TLS on render-server ports (``--render-tls-cert``/``--render-tls-key``): real control plane and render
server; the connect token says https, the relay and ``openrr.client`` check the certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from openrr.client.rest import ArrClient
from openrr.client.stream import connect_session
from tests.e2e.server import OpenRRServer, wait_for
from tests.render import fixtures
from tests.render.test_signalling import make_offer


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own trust anchor, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "render node")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "render.pem", directory / "render.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(openrr_factory: Callable[..., OpenRRServer], tmp_path: Path) -> tuple[OpenRRServer, Path]:
    cert, key = self_signed(tmp_path / "render-tls")
    models = tmp_path / "models"
    models.mkdir()
    fixtures.two_node_glb(models)
    server = openrr_factory(
        render_tls_cert=str(cert),
        render_tls_key=str(key),
        model_root=str(models),
        video_width=320,
        video_height=180,
    )
    return server, cert


async def test_render_ports_serve_tls_and_every_client_checks_it(
    tls_server: tuple[OpenRRServer, Path],
) -> None:
    server, cert = tls_server
    with server.api() as api:
        api.create("secure", lease=30)
        session = api.wait_status("secure", "Ready", timeout=60)
    grant = server.connect_token_response("secure").json()
    handshake_url, inspector_url = grant["handshakeUrl"], grant["inspectorUrl"]
    assert handshake_url == f"https://127.0.0.1:{session['handshakePort']}"
    assert inspector_url == f"https://127.0.0.1:{session['arrInspectorPort']}"
    trusted = ssl.create_default_context(cafile=str(cert))
    auth = {"Authorization": f"Bearer {grant['token']}"}
    async with httpx.AsyncClient(verify=trusted, timeout=10) as http:
        assert (await http.get(handshake_url + "/handshake", headers=auth)).status_code == 200
        assert (await http.get(inspector_url + "/stats", headers=auth)).status_code == 200
    # Nothing in clear: plain HTTP to the same port gets no answer, and an untrusting client refuses it.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{session['handshakePort']}/handshake", headers=auth, timeout=5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(handshake_url + "/handshake", headers=auth, timeout=5)

    # openrr.client: the connect token says https; the client's CA bundle holds both certificates.
    bundle = cert.parent / "bundle.pem"
    bundle.write_bytes(server.cert.read_bytes() + cert.read_bytes())
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
        resp = httpx.post(
            f"{server.url}/openrr/accounts/{server.account.id}/sessions/secure/offer",
            json={"type": "offer", "sdp": pc.localDescription.sdp},
            headers={"Authorization": f"Bearer {server.token()}"},
            verify=server.ssl_context(),
            timeout=20,
        )
        assert resp.status_code == 200, resp.text
        assert json.loads(resp.content)["type"] == "answer"
    finally:
        await pc.close()
