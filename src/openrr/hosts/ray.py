"""Render servers as Ray actors across a Ray cluster (``openrr serve --host-backend ray``).

Each render server is a ``python -m openrr.render`` process supervised by one *detached, named* actor
(``openrr.hosts.ray_actor``) in this host's namespace. Detached, so a control plane that exits or
restarts leaves its sessions running; named, so the handle ``{"kind": "ray", "actor", "namespace",
"nodeId", "nodeIp", "pid", "log", "size"}`` finds the actor again from any driver.

Slots: a node offers ``render_<size>`` custom resources (``ray start --resources '{"render_standard": 2}'``)
and each actor takes one, so Ray's scheduler is the slot table. Actors are spread over the nodes. A start
with no free slot fails at once (``HostError``) instead of leaving an actor pending; if two starts race
for the last slot, the loser waits ``start_timeout_s`` and is then killed, never left behind.

Status: the actor polls its child (``running``, exit code, the log's last lines). A poll that does not
answer within ``poll_timeout_s`` (a hung or partitioned node) counts as "running, unknown" and is logged;
after ``max_unanswered_polls`` in a row the server is reported GONE. A dead node, by contrast, is
reported by Ray itself within seconds: its actors die with the node and status says EXITED with
Ray's reason.

Warm pool: ``start_idle`` starts an actor whose render server warms up and waits; ``assign`` hands it its
session. A pooled actor that nobody polls for ``pool_idle_timeout_s`` (its control plane died) stops its
server and exits, so it cannot hold a slot forever; ``close`` stops this host's pooled actors at once.

Orphaned sessions: a session's render server stops itself when its lease ends or its control plane has
been unreachable too long (``openrr.protocol.handshake``, "Lease"); its actor, once nobody has polled it for
``pool_idle_timeout_s`` either, leaves its last poll in Ray's KV store and exits, freeing the slot.
``status`` of such a handle reads that record (EXITED, with the server's message and reason); ``stop``
deletes it.

Modules: ``ray_driver`` joins the cluster (one driver per process, token authentication required);
``ray_slots`` reads the ``render_<size>`` resources as slots; ``ray_handles`` keeps the actors by name,
kills them and reads their exit records; ``ray_actor`` is the actor itself, on the node.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import ray
import ray.exceptions

from openrr.errors import HostError
from openrr.hosts.base import Capacity, Handle, HostState, HostStatus
from openrr.hosts.ray_actor import RenderSupervisor
from openrr.hosts.ray_driver import join, leave
from openrr.hosts.ray_handles import GONE, ActorHandles, awaitable, handle_name, reason_of
from openrr.hosts.ray_slots import capacity_of, cluster_state, resource_name
from openrr.protocol.handshake import RenderSpec

log = logging.getLogger(__name__)

ACTOR_PREFIX = "openrr-"


class RayHost:
    name = "ray"

    def __init__(
        self,
        address: str,
        *,
        namespace: str = "openrr",
        auth_token_file: str | None = None,
        log_dir: str | None = None,
        pool_idle_timeout_s: float = 60.0,
        start_timeout_s: float = 30.0,
        poll_timeout_s: float = 5.0,
        max_unanswered_polls: int = 6,
        allow_unauthenticated: bool = False,
    ) -> None:
        """``address``: the head's GCS ``HOST:PORT``. ``auth_token_file``: the cluster token (sets
        ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` for this process); without it Ray's own
        ``RAY_AUTH_*`` environment applies. ``log_dir``: where render-server logs go on each node
        (default: ``logs/openrr`` in the node's Ray session directory). ``allow_unauthenticated``: join a
        cluster without token authentication (see ``openrr.hosts.ray_driver``) instead of refusing it."""
        self.address = address
        self._allow_unauthenticated = allow_unauthenticated
        self.namespace = namespace
        self._auth_token_file = auth_token_file
        self._log_dir = log_dir
        self._pool_idle_timeout_s = pool_idle_timeout_s
        self._start_timeout_s = start_timeout_s
        self._poll_timeout_s = poll_timeout_s
        self._max_unanswered = max_unanswered_polls
        self._connected = False
        self._actors = ActorHandles(namespace)
        self._pooled: dict[str, Handle] = {}  # pooled actors this host started and has not assigned
        # Session starts not confirmed yet: a create answers as soon as the actor is registered (placing it
        # and starting its render server takes seconds), and the session's start timeout bounds the rest.
        self._launching: dict[str, tuple[asyncio.Future[Any], float]] = {}  # + time.monotonic() at start

    # ---- connection -----------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Join the cluster as a driver (``ray.init``, about a second). Raises ``HostError``."""
        if self._connected:
            return
        await join(
            self.address,
            self.namespace,
            self._auth_token_file,
            allow_unauthenticated=self._allow_unauthenticated,
        )
        self._connected = True

    async def close(self) -> None:
        """Stop this host's pooled actors, then leave the cluster. Session actors keep running."""
        if not self._connected:
            return
        await asyncio.gather(*(self.stop(handle, 2.0) for handle in list(self._pooled.values())))
        self._actors.clear()
        self._connected = False
        await leave()

    # ---- start ----------------------------------------------------------------------------------------
    async def start(self, spec: RenderSpec) -> Handle:
        return await self._launch(spec, pooled=False, wait=False)

    async def start_idle(self, template: RenderSpec) -> Handle:
        """A pooled render server for ``template``'s size; its handle has ``"pooled": True``."""
        handle = await self._launch(template, pooled=True)
        self._pooled[handle["actor"]] = handle
        return handle

    async def _launch(self, spec: RenderSpec, *, pooled: bool, wait: bool = True) -> Handle:
        self._require_connection()
        resource = resource_name(spec.size)
        slots = (await self.capacity()).slots(spec.size)
        if not slots.free:
            raise HostError(
                f"All {slots.total} {spec.size} render-server slots of the Ray cluster are taken."
                if slots.total
                else f"No node of the Ray cluster offers {spec.size} render servers (resource {resource})."
            )
        name = ACTOR_PREFIX + secrets.token_hex(8)
        options = {
            "name": name,
            "namespace": self.namespace,
            "lifetime": "detached",
            "resources": {resource: 1},
            "scheduling_strategy": "SPREAD",
        }
        try:
            # Registering a named actor is a synchronous round trip to the GCS.
            actor = await asyncio.to_thread(
                lambda: RenderSupervisor.options(**options).remote(  # type: ignore[attr-defined]
                    name, self._pool_idle_timeout_s, self._log_dir
                )
            )
        except (ray.exceptions.RayError, ValueError) as exc:
            raise HostError(f"Could not create the render server's Ray actor: {exc}") from None
        self._actors.remember(name, actor)
        if not wait:
            # Actor tasks run in submission order: this start runs before any later poll or stop.
            self._launching[name] = (awaitable(actor.start.remote(spec.to_json(), pooled)), time.monotonic())
            return {"kind": self.name, "actor": name, "namespace": self.namespace, "size": spec.size}
        try:
            info = await asyncio.wait_for(
                awaitable(actor.start.remote(spec.to_json(), pooled)), self._start_timeout_s
            )
        except BaseException as exc:
            await self._actors.kill(name, actor, {})  # never leave a pending or half-started actor behind
            if isinstance(exc, TimeoutError):
                raise HostError(
                    f"No {spec.size} render-server slot of the Ray cluster became free within "
                    f"{self._start_timeout_s:g} s."
                ) from None
            if isinstance(exc, ray.exceptions.RayError):
                raise HostError(f"The render server could not be started: {reason_of(exc)}") from None
            raise
        handle: Handle = {"kind": self.name, "actor": name, "namespace": self.namespace, **info}
        handle["size"] = spec.size
        if pooled:
            handle["pooled"] = True
        return handle

    async def assign(self, handle: Handle, spec: RenderSpec) -> Handle:
        """Give a pooled server its session; returns the session's handle. ``HostError`` when the pooled
        server is gone, is no pooled server, or was assigned before (by any control plane)."""
        self._require_connection()
        name = handle_name(handle)
        if not handle.get("pooled"):
            raise HostError(f"The Ray actor {name} is not a pooled render server.")
        self._pooled.pop(name, None)
        actor = await self._actors.find(handle)
        if actor is None:
            raise HostError(f"The pooled render server is gone: {GONE}")
        try:
            info = await asyncio.wait_for(
                awaitable(actor.assign.remote(spec.to_json())), self._start_timeout_s
            )
        except TimeoutError:
            raise HostError("The pooled render server did not take its session in time.") from None
        except ray.exceptions.RayError as exc:
            raise HostError(
                f"The pooled render server could not take its session: {reason_of(exc)}"
            ) from None
        session: Handle = {k: v for k, v in handle.items() if k != "pooled"}
        session.update(info)
        session["size"] = spec.size
        return session

    # ---- watch ----------------------------------------------------------------------------------------
    async def status(self, handle: Handle) -> HostStatus:
        """RUNNING, EXITED (the server or its actor died; the message says how) or GONE (no such actor,
        or it stopped answering). Never raises for a dead server. Also keeps a pooled actor alive."""
        self._require_connection()
        name = handle_name(handle)
        if name in self._launching:
            try:
                if await self.wait_started(handle, timeout=0) is None:
                    return HostStatus(HostState.RUNNING)  # still being placed or started
            except HostError as exc:
                return HostStatus(HostState.EXITED, exc.message)
        actor = await self._actors.find(handle)
        if actor is None:
            return await self._actors.retired(handle) or HostStatus(HostState.GONE, GONE)
        try:
            result = await asyncio.wait_for(awaitable(actor.poll.remote()), self._poll_timeout_s)
        except ray.exceptions.ActorUnavailableError as exc:  # unreachable for now (a partitioned node)
            return self._actors.unanswered(name, reason_of(exc), self._max_unanswered)
        except ray.exceptions.RayActorError as exc:  # ActorDiedError: killed, crashed, its node died
            self._actors.forget(name)
            died = HostStatus(HostState.EXITED, f"The render server's Ray actor died: {reason_of(exc)}")
            return await self._actors.retired(handle) or died
        except ray.exceptions.RayError as exc:
            return self._actors.unanswered(name, reason_of(exc), self._max_unanswered)
        except TimeoutError:
            return self._actors.unanswered(name, "no answer in time", self._max_unanswered)
        self._actors.answered(name)
        if result["running"]:
            return HostStatus(HostState.RUNNING)
        reason = result.get("reason")
        return HostStatus(
            HostState.EXITED, str(result["message"]), reason if isinstance(reason, str) else None
        )

    async def wait_started(self, handle: Handle, timeout: float | None = None) -> dict[str, Any] | None:
        """For a handle ``start`` returned: wait up to ``timeout`` s (None: the start timeout) until its
        render server runs, and return ``{nodeId, nodeIp, pid, log}``; None while it is still starting.
        A start that failed, or found no free slot within the start timeout, raises ``HostError`` (and
        its actor is killed, so it does not wait for a slot forever)."""
        name = handle_name(handle)
        launching = self._launching.get(name)
        if launching is None:
            return None
        future, since = launching
        left = since + self._start_timeout_s - time.monotonic()
        wait = left if timeout is None else min(timeout, left)
        if wait > 0:
            # Neither raises nor cancels the start: how it went is read from the future below.
            await asyncio.wait([future], timeout=wait)
            if future.cancelled():  # a stop cancelled the start meanwhile: as awaiting it would raise
                raise asyncio.CancelledError
        if not future.done():
            if time.monotonic() < since + self._start_timeout_s:
                return None
            del self._launching[name]
            future.cancel()
            actor = self._actors.cached(name)
            if actor is not None:
                await self._actors.kill(name, actor, handle)
            raise HostError(
                f"No {handle.get('size', '')} render-server slot of the Ray cluster became free within "
                f"{self._start_timeout_s:g} s."
            )
        del self._launching[name]
        failure = future.exception()
        if failure is not None:
            self._actors.forget(name)
            raise HostError(f"The render server could not be started: {reason_of(failure)}")
        info: dict[str, Any] = future.result()
        self._actors.note_node(name, str(info.get("nodeId") or ""))
        return info

    async def adopt(self, handle: Handle) -> HostStatus:
        """Find the actor again by name (this is a new driver) and report its status."""
        self._actors.forget(handle_name(handle))
        return await self.status(handle)

    # ---- stop -----------------------------------------------------------------------------------------
    async def stop(self, handle: Handle, grace: float) -> None:
        """Stop the server politely, then kill its actor; its slot is free on return. Idempotent."""
        self._require_connection()
        name = handle_name(handle)
        self._pooled.pop(name, None)
        launching, _since = self._launching.pop(name, (None, 0.0))
        actor = await self._actors.find(handle)
        if actor is None:
            self._actors.forget(name)
            await self._actors.drop_exit_record(handle)
            return
        if launching is not None and not launching.done():
            # Not placed or not started yet: nothing to stop politely, and a polite stop would wait for
            # the placement.
            launching.cancel()
            await self._actors.kill(
                name, actor, handle, slot=(None, resource_name(str(handle.get("size", ""))))
            )
            return
        held = True
        try:
            await asyncio.wait_for(awaitable(actor.stop.remote(grace)), grace + 10.0)
        except (TimeoutError, ray.exceptions.RayError) as exc:
            # Dead or unreachable: killing the actor below takes its child along (PR_SET_PDEATHSIG).
            log.debug("render server actor %s did not stop politely: %s", name, exc)
            held = isinstance(exc, TimeoutError)  # a dead actor's slot is already back
        node_id = (handle.get("nodeId") or self._actors.node_of(name)) if held else None
        await self._actors.kill(
            name, actor, handle, slot=(node_id, resource_name(str(handle.get("size", ""))))
        )

    # ---- capacity -------------------------------------------------------------------------------------
    async def capacity(self) -> Capacity:
        """Slots per size from the cluster's ``render_<size>`` resources (alive nodes), with every node
        Ray knows, dead ones included (``alive`` False, no slots)."""
        self._require_connection()
        return capacity_of(await asyncio.to_thread(cluster_state))

    def _require_connection(self) -> None:
        if not self._connected:
            raise HostError("The Ray host is not connected (call connect() first).")
