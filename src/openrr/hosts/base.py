"""The Host protocol: start, watch and stop one render server per session.

Contract (after JupyterHub's Spawner.poll):
  * ``start(spec)`` launches a render server and returns a small JSON-serialisable *handle*. The store
    persists it with the session, so the handle alone must be enough to find the server again.
  * ``status(handle)`` never raises for a server that died: it reports EXITED or GONE with a message.
  * ``adopt(handle)`` is called once per persisted handle after the control plane restarts, before any
    ``status`` call on it; it returns the current status.
  * ``stop(handle, grace)`` is idempotent: terminate politely, then forcibly after ``grace`` seconds.
Readiness is not a host concern: the render server calls the control plane back itself.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Protocol

from openrr.handshake import RenderSpec

Handle = dict[str, Any]


class HostState(enum.StrEnum):
    RUNNING = "running"
    EXITED = "exited"  # it ran and stopped; ``message`` says how
    GONE = "gone"  # nothing to be found for this handle


@dataclasses.dataclass(frozen=True)
class HostStatus:
    state: HostState
    message: str = ""

    @property
    def running(self) -> bool:
        return self.state is HostState.RUNNING


class Host(Protocol):
    name: str

    async def start(self, spec: RenderSpec) -> Handle: ...
    async def status(self, handle: Handle) -> HostStatus: ...
    async def adopt(self, handle: Handle) -> HostStatus: ...
    async def stop(self, handle: Handle, grace: float) -> None: ...
    async def close(self) -> None: ...
