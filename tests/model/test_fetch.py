"""DNS rebinding: the loader connects to exactly the addresses its source check saw, never by name again.

Real HTTP(S) servers on loopback addresses; host names under ``.test`` (which no DNS answers) are resolved
only by the policy's resolver seam, a fake that answers one address to the first lookup and another to
every later one. A loader that resolved the name itself could not reach the server at all; one that asked
the resolver again would reach the second server.
"""

from __future__ import annotations

import contextlib
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpcore
import pytest

from openrr.model.errors import ModelLoadError
from openrr.model.fetch import PinnedBackend, Pins, UncheckedHost
from openrr.model.loader import load_model
from openrr.model.sources import ModelSourcePolicy
from openrr.tls import ensure_self_signed
from tests.render import fixtures


class Recorder(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and records the Host header of each request."""

    seen: list[str]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Host", ""))
        super().do_GET()


@contextlib.contextmanager
def serving(
    folder: Path, address: str, port: int = 0, tls: ssl.SSLContext | None = None
) -> Iterator[tuple[int, list[str]]]:
    """Serve ``folder`` on ``address:port`` (0: a free port); yields the port and the Host headers seen."""
    seen: list[str] = []

    def handler(*args: object) -> Recorder:
        h = Recorder.__new__(Recorder)
        h.seen = seen
        Recorder.__init__(h, *args, directory=str(folder))  # type: ignore[arg-type]
        return h

    server = http.server.ThreadingHTTPServer((address, port), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class RebindingResolver:
    """Answers ``first`` to the first lookup and ``later`` to every other: a rebinding DNS server."""

    def __init__(self, first: str, later: str) -> None:
        self.first, self.later = first, later
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return [self.first if len(self.lookups) == 1 else self.later]


@pytest.fixture
def sites(tmp_path: Path) -> tuple[Path, Path]:
    """The checked server's folder (a good model) and the rebinding target's (a broken one, same name)."""
    good, evil = tmp_path / "good", tmp_path / "evil"
    good.mkdir()
    evil.mkdir()
    fixtures.two_node_glb(good)
    (evil / "two_nodes.glb").write_bytes(b"not the checked server's model")
    return good, evil


def test_the_loader_connects_to_the_checked_address_and_not_to_a_second_answer(
    sites: tuple[Path, Path],
) -> None:
    good, evil = sites
    with serving(good, "127.0.0.1") as (port, good_seen), serving(evil, "127.0.0.2", port) as (_, evil_seen):
        resolver = RebindingResolver("127.0.0.1", "127.0.0.2")
        policy = ModelSourcePolicy(roots=(), allow_private_urls=True, resolver=resolver)
        scene = load_model(f"http://models.test:{port}/two_nodes.glb", guard=policy.guard)
    assert {node.name for node in scene.nodes()} >= {"RedBox", "BlueSphere"}
    assert resolver.lookups == ["models.test"]  # resolved once, by the check
    assert good_seen == [f"models.test:{port}"]  # the Host header names the host, not the address
    assert evil_seen == []


def test_the_render_pipelines_up_front_check_is_the_one_the_download_uses(sites: tuple[Path, Path]) -> None:
    """The pipeline checks a source before loading it (``guard``), then loads with ``guard_after``: the
    model's request connects to the address of that first check, without a second lookup."""
    good, evil = sites
    with serving(good, "127.0.0.1") as (port, good_seen), serving(evil, "127.0.0.2", port) as (_, evil_seen):
        resolver = RebindingResolver("127.0.0.1", "127.0.0.2")
        policy = ModelSourcePolicy(roots=(), allow_private_urls=True, resolver=resolver)
        url = f"http://models.test:{port}/two_nodes.glb"
        checked = policy.guard(url)
        scene = load_model(url, guard=policy.guard_after(checked))
    assert len(scene)
    assert resolver.lookups == ["models.test"]
    assert len(good_seen) == 1
    assert evil_seen == []


def test_a_rebinding_to_a_private_address_is_refused_before_any_connection(
    sites: tuple[Path, Path],
) -> None:
    good, _ = sites
    with serving(good, "127.0.0.1") as (port, seen):
        # the pipeline's up-front check sees a public address; the loader's own check sees loopback
        resolver = RebindingResolver("93.184.216.34", "127.0.0.1")
        policy = ModelSourcePolicy(roots=(), resolver=resolver)
        url = f"http://models.test:{port}/two_nodes.glb"
        assert policy.check(url) == url
        with pytest.raises(ModelLoadError, match="not a public address"):
            load_model(url, guard=policy.guard)
    assert seen == []


def test_https_keeps_the_name_for_sni_and_the_certificate(
    sites: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, _ = sites
    cert, key = ensure_self_signed(tmp_path / "tls", extra_hosts=("models.test",))
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the operator's trust anchors still count
    with serving(good, "127.0.0.1", tls=tls) as (port, seen):
        policy = ModelSourcePolicy(
            roots=(), allow_private_urls=True, resolver=lambda host, port: ["127.0.0.1"]
        )
        scene = load_model(f"https://models.test:{port}/two_nodes.glb", guard=policy.guard)
        assert len(scene)
        assert seen == [f"models.test:{port}"]
        # the same address under a name the certificate does not have: verification fails, by name
        with pytest.raises(ModelLoadError, match="download failed"):
            load_model(f"https://other.test:{port}/two_nodes.glb", guard=policy.guard)
    assert len(seen) == 1


def test_proxies_from_the_environment_are_ignored(
    sites: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, evil = sites
    with serving(good, "127.0.0.1") as (port, seen), serving(evil, "127.0.0.2") as (proxy_port, proxied):
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.2:{proxy_port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        policy = ModelSourcePolicy(roots=(), allow_private_urls=True, resolver=lambda h, p: ["127.0.0.1"])
        load_model(f"http://models.test:{port}/two_nodes.glb", guard=policy.guard)
    assert len(seen) == 1
    assert proxied == []


def test_the_backend_refuses_a_host_nothing_was_checked_for() -> None:
    with pytest.raises(UncheckedHost):
        PinnedBackend(Pins()).connect_tcp("models.test", 80)
    assert issubclass(UncheckedHost, httpcore.ConnectError)
