"""A Ray session whose control plane is gone: its render server stops itself past the grace, and its actor,
not polled by anyone, retires (its slot free again) and leaves why for a returning control plane."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import ray

from openrr.hosts.base import HostState
from openrr.protocol.handshake import CONTROL_PLANE_UNREACHABLE, RenderSettings, RenderSpec
from tests.ray_host.conftest import NAMESPACE, wait_until
from tests.render.control_plane import callback_receiver


async def test_an_orphaned_session_actor_retires_and_leaves_why(
    make_host: Callable[..., Any], make_spec: Callable[..., RenderSpec]
) -> None:
    host = await make_host(pool_idle_timeout_s=2.0)
    async with callback_receiver() as receiver:
        # Ready is accepted; every heartbeat after it fails, as with a control plane that is gone.
        receiver.answer = lambda c: (200, {}) if c.kind == "ready" else (503, {})
        base = make_spec("Standard")
        spec = dataclasses.replace(
            base,
            callback_url=receiver.url(base.session_id),
            settings=RenderSettings(
                video_width=320, video_height=180, heartbeat_s=0.2, control_plane_grace_s=1.0
            ),
        )
        handle = await host.start(spec)
        handle.update(await host.wait_started(handle) or {})
        await receiver.wait(base.session_id, "ready", timeout=90)
        # Nobody polls it from here on: the render server stops itself, then its actor retires.

        def retired() -> bool:
            names = ray.util.list_named_actors(all_namespaces=True)
            return not any(a["name"] == handle["actor"] and a["namespace"] == NAMESPACE for a in names)

        await wait_until(lambda: asyncio.to_thread(retired), 90, "the actor to retire")
    # The host that started it, and a fresh one (a restarted control plane) that never saw the actor alive.
    for watcher in (host, await make_host()):
        status = await watcher.status(handle)
        assert status.state is HostState.EXITED, status
        assert status.reason == CONTROL_PLANE_UNREACHABLE
        assert "exited with code 7" in status.message
    await host.stop(handle, 1.0)  # the session is released: its record goes too
    assert (await host.status(handle)).state is HostState.GONE
