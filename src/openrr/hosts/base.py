"""The Host protocol: start, watch and stop one render server per session, and keep warm ones waiting.

Contract (after JupyterHub's Spawner.poll):
  * ``start(spec)`` launches a render server and returns a small JSON-serialisable *handle*. The store
    persists it with the session, so the handle alone must be enough to find the server again.
  * ``start_idle(template)`` launches a *pooled* render server: it warms up (imports, GL context, shaders)
    and then waits for its session, without ports or a callback yet. ``template`` is a ``RenderSpec`` whose
    session fields are blank; only its shared fields (size, settings, polygon limit, bind/advertise host)
    matter. A pooled server whose control plane goes away exits by itself (see ``openrr.protocol.handshake``).
  * ``assign(idle_handle, spec)`` gives a pooled server its session and returns the session's handle (the
    one ``start`` would have returned). It raises ``HostError`` when the pooled server is gone; the caller
    then starts a fresh one. A pooled server is assigned at most once.
  * ``status(handle)`` never raises for a server that died: it reports EXITED or GONE with a message, and
    with a ``reason`` when the server stopped itself (``openrr.hosts.exits.self_stop_reason``). It
    works for pooled handles too, and for hosts whose pooled servers expire when nobody watches them
    (Ray) a ``status`` call is also what keeps a pooled server alive.
  * ``adopt(handle)`` is called once per persisted handle after the control plane restarts, before any
    ``status`` call on it; it returns the current status.
  * ``stop(handle, grace)`` is idempotent: terminate politely, then forcibly after ``grace`` seconds. The
    server's slot is free when it returns.
  * ``capacity()`` says how many render servers of each size the host can hold and how many it could
    start now; ``None`` totals mean "no limit configured".
Readiness is not a host concern: the render server calls the control plane back itself.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Protocol

from openrr.protocol.handshake import RenderSpec

Handle = dict[str, Any]


class HostState(enum.StrEnum):
    RUNNING = "running"
    EXITED = "exited"  # it ran and stopped; ``message`` says how
    GONE = "gone"  # nothing to be found for this handle


@dataclasses.dataclass(frozen=True)
class HostStatus:
    state: HostState
    message: str = ""
    # Set when the render server stopped itself, LEASE_ENDED or CONTROL_PLANE_UNREACHABLE (protocol.handshake)
    reason: str | None = None

    @property
    def running(self) -> bool:
        return self.state is HostState.RUNNING


@dataclasses.dataclass(frozen=True)
class Slots:
    """Render-server slots of one size. ``total`` None: unlimited; ``free``: what could start right now."""

    total: int | None
    free: int | None


@dataclasses.dataclass(frozen=True)
class NodeCapacity:
    """One machine of the host (a Ray node; the local host has one)."""

    node_id: str
    address: str
    alive: bool
    slots: dict[str, Slots]  # by lower-case size name: "standard", "premium" (``spec.size.lower()``)


@dataclasses.dataclass(frozen=True)
class Capacity:
    sizes: dict[str, Slots]  # by lower-case size name, as in NodeCapacity; a size missing is unlimited
    nodes: tuple[NodeCapacity, ...] = ()

    def slots(self, size: str) -> Slots:
        return self.sizes.get(size.lower(), Slots(None, None))


class Host(Protocol):
    name: str

    async def start(self, spec: RenderSpec) -> Handle: ...
    async def start_idle(self, template: RenderSpec) -> Handle: ...
    async def assign(self, handle: Handle, spec: RenderSpec) -> Handle: ...
    async def status(self, handle: Handle) -> HostStatus: ...
    async def adopt(self, handle: Handle) -> HostStatus: ...
    async def stop(self, handle: Handle, grace: float) -> None: ...
    async def capacity(self) -> Capacity: ...
    async def close(self) -> None: ...
