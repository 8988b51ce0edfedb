"""Fixtures of the render tests that start real render servers: a model root and the control plane's
callback receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.render import fixtures
from tests.render.control_plane import CallbackReceiver, callback_receiver
from tests.render.processes import RenderProcesses


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    fixtures.two_node_glb(root)
    return root


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    async with callback_receiver() as r:
        yield r


@pytest.fixture
async def render(tmp_path: Path) -> AsyncIterator[RenderProcesses]:
    processes = RenderProcesses(tmp_path)
    try:
        yield processes
    finally:
        await processes.stop_all()
