"""The Ray host's render-server actors, by name: finding one again (a new driver after a restart),
remembering what was learnt about it, killing it until its slot shows free, and reading the exit record a
retired session actor left (``openrr.hosts.ray_actor``).

A handle names its actor (``{"actor", "namespace", …}``); an actor handle found once is kept, so a dead
actor still tells why it died. Apart from ``openrr.hosts.ray`` so that the host reads as the
``Host`` contract (start, watch, stop) over this registry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import ray
import ray.exceptions

from openrr.compat.ray import kv_del, kv_get
from openrr.errors import HostError
from openrr.hosts.base import Handle, HostState, HostStatus
from openrr.hosts.ray_actor import EXIT_KV_NAMESPACE, exit_key
from openrr.hosts.ray_slots import available_per_node

log = logging.getLogger(__name__)

GONE = "The render server's Ray actor is gone."
# How long a kill waits for Ray to confirm an actor is dead (and its slot free) after ray.kill.
_KILL_CONFIRM_S = 5.0


class ActorHandles:
    """Actor handles and what was learnt about each, by actor name, in ``namespace`` unless a handle
    names another."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._actors: dict[str, Any] = {}  # actor handles by name, so a dead actor still tells why
        self._unanswered: dict[str, int] = {}  # polls in a row that got no answer
        self._node_of: dict[str, str] = {}  # actor name -> node id, learnt when its start completes

    def remember(self, name: str, actor: Any) -> None:
        self._actors[name] = actor

    def cached(self, name: str) -> Any | None:
        return self._actors.get(name)

    async def find(self, handle: Handle) -> Any | None:
        """The handle's actor: the one remembered, else Ray's live actor of that name; None if none."""
        name = handle_name(handle)
        cached = self._actors.get(name)
        if cached is not None:
            return cached
        try:
            actor = await asyncio.to_thread(ray.get_actor, name, namespace=self._namespace_of(handle))
        except ValueError:  # no live actor of that name
            return None
        self._actors[name] = actor
        return actor

    def forget(self, name: str) -> None:
        self._node_of.pop(name, None)
        self._actors.pop(name, None)
        self._unanswered.pop(name, None)

    def clear(self) -> None:
        self._actors.clear()

    def note_node(self, name: str, node_id: str) -> None:
        self._node_of[name] = node_id

    def node_of(self, name: str) -> str | None:
        return self._node_of.get(name)

    def answered(self, name: str) -> None:
        self._unanswered.pop(name, None)

    def unanswered(self, name: str, why: str, limit: int) -> HostStatus:
        """A poll of ``name`` that got no answer: a hung node or a slow GCS, maybe still running, so
        RUNNING, up to ``limit`` in a row; then GONE."""
        misses = self._unanswered.get(name, 0) + 1
        self._unanswered[name] = misses
        log.warning("render server actor %s did not answer a poll (%d in a row): %s", name, misses, why)
        if misses >= limit:
            return HostStatus(
                HostState.GONE, f"The render server's Ray actor stopped answering ({misses} polls): {why}"
            )
        return HostStatus(HostState.RUNNING)

    async def kill(
        self, name: str, actor: Any, handle: Handle, *, slot: tuple[Any, str] | None = None
    ) -> None:
        """ray.kill, then wait (bounded) until the GCS has the actor dead and, for ``slot`` (node id,
        resource) the actor held, until that node shows the slot free again."""
        self.forget(name)
        namespace = self._namespace_of(handle)
        node_id, resource = slot if slot else (None, "")
        await asyncio.to_thread(_kill_and_confirm, name, actor, namespace, node_id, resource)

    async def retired(self, handle: Handle) -> HostStatus | None:
        """How the render server of a session actor that retired ended (``openrr.hosts.ray_actor``)."""
        last = await asyncio.to_thread(self._last_poll, handle)
        if last is None:
            return None
        reason = last.get("reason")
        why = reason if isinstance(reason, str) else None
        return HostStatus(HostState.EXITED, str(last.get("message", "")), why)

    async def drop_exit_record(self, handle: Handle) -> None:
        """Remove what a retired session actor left in the KV store, if anything."""
        await asyncio.to_thread(self._last_poll, handle, forget=True)

    def _last_poll(self, handle: Handle, *, forget: bool = False) -> dict[str, Any] | None:
        """What a retired session actor left in the KV store (``forget``: and remove it). Blocking."""
        key = exit_key(self._namespace_of(handle), handle_name(handle))
        try:
            if forget:
                kv_del(key, EXIT_KV_NAMESPACE)
                return None
            raw = kv_get(key, EXIT_KV_NAMESPACE)
            found = json.loads(raw) if raw else None
        # The GCS unreachable (Ray's KV client raises what its transport does), or a value that is not
        # ours: as if none was left, since status must answer for a dead server without raising.
        except Exception as exc:  # noqa: BLE001 -- status never raises for a dead server
            log.debug("reading the exit record of %s: %s", key, exc)
            return None
        return found if isinstance(found, dict) else None

    def _namespace_of(self, handle: Handle) -> str:
        return str(handle.get("namespace") or self.namespace)


def _kill_and_confirm(name: str, actor: Any, namespace: str, node_id: Any, resource: str) -> None:
    before = available_per_node().get(node_id, {}).get(resource, 0.0) if node_id else 0.0
    try:
        ray.kill(actor, no_restart=True)
    except (ray.exceptions.RayError, ValueError) as exc:
        log.debug("ray.kill(%s): %s", name, exc)
    deadline = time.monotonic() + _KILL_CONFIRM_S
    # A detached actor's name is released once the GCS has it dead.
    while time.monotonic() < deadline:
        try:
            ray.get_actor(name, namespace=namespace)
        except ValueError:
            break
        time.sleep(0.05)
    # The resource view (what capacity() and the next start read) follows a raylet report later.
    while node_id and time.monotonic() < deadline:
        if available_per_node().get(node_id, {}).get(resource, 0.0) > before:
            return
        time.sleep(0.05)
    if time.monotonic() >= deadline:
        log.warning("render server actor %s: no freed slot seen %g s after ray.kill", name, _KILL_CONFIRM_S)


def handle_name(handle: Handle) -> str:
    """The actor a handle names; ``HostError`` if it names none."""
    name = handle.get("actor") if isinstance(handle, dict) else None
    if not isinstance(name, str) or not name:
        raise HostError(f"Not a render server handle of the Ray host: {handle!r}")
    return name


def reason_of(exc: BaseException) -> str:
    """Ray's explanation without its boilerplate: ActorDiedError lists ids and addresses on tab-indented
    lines; the cause (node died, killed, exited) is on the others."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and cause is not None:
        return str(cause)
    text = str(getattr(exc, "error_msg", None) or exc)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("\t")]
    return " ".join(lines) or type(exc).__name__


def awaitable(ref: Any) -> asyncio.Future[Any]:
    """An ObjectRef as a Future: awaitable, and cancellable by wait_for."""
    future: asyncio.Future[Any] = asyncio.ensure_future(ref)
    return future
