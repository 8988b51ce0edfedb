"""``openrr serve --host-backend ray`` refuses a Ray cluster without token authentication unless told
``--ray-allow-unauthenticated``; the shared cluster (token auth on) is accepted by every other test here."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from openrr.errors import HostError
from openrr.hosts.ray import RayHost
from tests.e2e.server import OpenRRServer, free_port, openrr_command
from tests.ray_cluster import RayCluster, ray_executable

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def open_cluster() -> Iterator[RayCluster]:
    """A one-node cluster of this module's own, without token authentication."""
    if ray_executable() is None:
        pytest.skip("Ray is not installed here (no `ray` executable)")
    cluster = RayCluster(auth=False)
    try:
        cluster.start()
        yield cluster
    finally:
        survivors = cluster.stop()
    assert not survivors, f"Ray processes left behind: {survivors}"


def test_serve_refuses_a_cluster_without_token_auth(open_cluster: RayCluster, tmp_path: Path) -> None:
    options = open_cluster.serve_options("refused")
    args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    done = subprocess.run(
        [*openrr_command(), "serve", "--data-dir", str(tmp_path / "data"), "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=OpenRRServer.env(),
        stdin=subprocess.DEVNULL,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "does not require token authentication" in output
    assert "--ray-allow-unauthenticated" in output


async def test_the_host_refuses_it_before_joining(open_cluster: RayCluster) -> None:
    host = RayHost(open_cluster.address)
    with pytest.raises(HostError, match="does not require token authentication"):
        await host.connect()


def test_serve_uses_it_when_told_to(open_cluster: RayCluster, tmp_path: Path) -> None:
    server = OpenRRServer(
        tmp_path / "data",
        extra_env={"OPENRR_RAY_ALLOW_UNAUTHENTICATED": "1"},
        **open_cluster.serve_options("allowed"),
    )
    try:
        server.start(timeout=90)
        status = server.cli("cluster", "status", "--data-dir", str(server.data_dir), "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["host"] == "ray"
    finally:
        _, survivors = server.cleanup()
    assert not survivors
