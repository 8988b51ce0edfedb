"""Joining a Ray cluster fails fast and clearly when the address is wrong (ray.init itself would retry for
minutes, logging warnings only)."""

from __future__ import annotations

import socket

import pytest

from openrr.errors import HostError
from openrr.hosts.ray import RayHost


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # free again once closed: nothing listens there


async def test_nothing_listening_at_the_address() -> None:
    host = RayHost(f"127.0.0.1:{_closed_port()}")
    with pytest.raises(HostError, match=r"Could not reach the Ray cluster's head at 127\.0\.0\.1:\d+: "):
        await host.connect()


@pytest.mark.parametrize("address", ["nonsense", "127.0.0.1", "127.0.0.1:port"])
async def test_an_address_that_is_not_host_and_port(address: str) -> None:
    with pytest.raises(HostError, match="is not HOST:PORT"):
        await RayHost(address).connect()


async def test_a_missing_token_file() -> None:
    with pytest.raises(HostError, match=r"auth token file .* does not exist"):
        await RayHost("127.0.0.1:1", auth_token_file="no-such-token-file").connect()
