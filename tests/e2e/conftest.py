"""Fixtures for end-to-end tests: real ``openrr serve`` processes and the render servers they start."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import OpenRRServer


@pytest.fixture
def openrr_factory(tmp_path: Path) -> Iterator[Callable[..., OpenRRServer]]:
    """Start control planes (``make(**serve_options)``); teardown stops them and all their render servers.

    Teardown fails the test if any process survives SIGTERM + SIGKILL.
    """
    servers: list[OpenRRServer] = []

    def make(**options: Any) -> OpenRRServer:
        server = OpenRRServer(tmp_path / f"data{len(servers)}", **options)
        servers.append(server)
        server.start()
        return server

    yield make

    survivors: list[str] = []
    for server in servers:
        _running, left = server.cleanup()
        survivors.extend(f"{p} [{server.data_dir}]" for p in left)
    assert not survivors, f"processes left behind: {survivors}"


@pytest.fixture
def openrr_server(openrr_factory: Callable[..., OpenRRServer]) -> OpenRRServer:
    """One control plane with throttling off, fast reaper, 2 s stop grace."""
    return openrr_factory()
