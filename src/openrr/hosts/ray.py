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

Driver: ``connect`` joins the cluster as a Ray driver (one per process, shared by the RayHosts of a
process); ``close`` leaves it when the last one closes.

Authentication: whoever can reach a Ray cluster's GCS can run code on every node, render servers
included. Before joining, ``connect`` checks that the cluster requires token authentication
(``RAY_AUTH_MODE=token``): a separate process with no token at all (no ``RAY_*`` variables, an empty home,
so no ``~/.ray/auth_token``) opens a GCS client, which such a cluster refuses with Ray's
``AuthenticationError``. A cluster that lets it in is refused with a ``HostError``, unless the host was
made with ``allow_unauthenticated`` (``openrr serve --ray-allow-unauthenticated``); an answer that says
neither (the check itself failed) is refused as well, with what went wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any

import ray
import ray.exceptions

from openrr.child_env import child_env
from openrr.domain.session import Size
from openrr.errors import HostError
from openrr.hosts.base import Capacity, Handle, HostState, HostStatus, NodeCapacity, Slots
from openrr.hosts.ray_actor import EXIT_KV_NAMESPACE, RenderSupervisor, exit_key
from openrr.protocol.handshake import RenderSpec

log = logging.getLogger(__name__)

ACTOR_PREFIX = "openrr-"
_GONE = "The render server's Ray actor is gone."
# How long connect waits for the head's GCS port to accept a connection before giving up.
_REACH_TIMEOUT_S = 10.0
# How long stop waits for Ray to confirm an actor is dead (and its slot free) after ray.kill.
_KILL_CONFIRM_S = 5.0
# How long the authentication check may take (it imports Ray: about a second).
_AUTH_CHECK_TIMEOUT_S = 60.0
# Run in a process without any token: does the GCS at argv[1] let a client in? One line of answer.
_AUTH_CHECK = """
import sys
from ray._raylet import GcsClient
from ray.exceptions import AuthenticationError
try:
    GcsClient(address=sys.argv[1])
except AuthenticationError:
    print("token-required")
except Exception as exc:
    print("failed:", type(exc).__name__, str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "")
else:
    print("open")
"""


def resource_name(size: str) -> str:
    """The custom resource a node offers per render-server slot of ``size`` (``render_standard``)."""
    return f"render_{size.strip().lower()}"


class _Driver:
    """The process's Ray driver connection, shared by every RayHost of the process."""

    lock = threading.Lock()
    users = 0
    owned = False  # False: someone else called ray.init; we never shut their connection down

    @classmethod
    def acquire(cls, address: str, namespace: str, token_file: str | None) -> None:
        with cls.lock:
            if cls.users == 0 and not ray.is_initialized():
                _no_auto_init()
                if token_file is not None:
                    _use_token_file(token_file)
                ray.init(
                    address=address,
                    namespace=namespace,
                    logging_level=logging.WARNING,
                    log_to_driver=False,  # render-server output stays in its log file on the node
                )
                cls.owned = True
            cls.users += 1

    @classmethod
    def release(cls) -> None:
        with cls.lock:
            cls.users = max(0, cls.users - 1)
            if cls.users == 0 and cls.owned:
                cls.owned = False
                ray.shutdown()


def _no_auto_init() -> None:
    """Make a Ray call without a driver fail instead of starting a private local Ray instance (Ray's
    default): a call racing ``close`` must not spawn a cluster on the control plane's machine. Private
    API of Ray 2.60 (the RAY_ENABLE_AUTO_CONNECT variable is read only at import)."""
    from ray._private import auto_init_hook

    auto_init_hook.enable_auto_connect = False


def _use_token_file(path: str) -> None:
    """Token auth with the token in ``path``, for this process (and so for this driver)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = os.path.abspath(path)
    os.environ.pop("RAY_AUTH_TOKEN", None)  # it would win over the file
    # Ray read the auth mode at import (RayConfig) and caches the token it found: both must be read again
    # now. Private API of Ray 2.60, kept to this function.
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


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
        cluster without token authentication (see the module doc) instead of refusing it."""
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
        self._actors: dict[str, Any] = {}  # actor handles by name, so a dead actor still tells why
        self._unanswered: dict[str, int] = {}
        self._pooled: dict[str, Handle] = {}  # pooled actors this host started and has not assigned
        # Session starts not confirmed yet: a create answers as soon as the actor is registered (placing it
        # and starting its render server takes seconds), and the session's start timeout bounds the rest.
        self._launching: dict[str, tuple[asyncio.Future[Any], float]] = {}  # + time.monotonic() at start
        self._node_of: dict[str, str] = {}  # actor name -> node id, learnt when such a start completes

    # ---- connection -----------------------------------------------------------------------------------
    async def connect(self) -> None:
        """Join the cluster as a driver (``ray.init``, about a second). Raises ``HostError``."""
        if self._connected:
            return
        token_file = self._auth_token_file
        if token_file is not None and not os.path.isfile(token_file):
            raise HostError(f"The Ray auth token file {token_file} does not exist.")
        await self._reachable()
        if not self._allow_unauthenticated:
            await self._require_token_auth()
        try:
            await asyncio.to_thread(_Driver.acquire, self.address, self.namespace, token_file)
        except Exception as exc:  # ray.init raises ConnectionError, AuthenticationError, RuntimeError…
            # A refused token shows only in the cause: the last line of the traceback text Ray wraps.
            lines = str(exc.__cause__ or "").strip().splitlines()
            detail = f" ({lines[-1].strip()[:300]})" if lines else ""
            raise HostError(f"Could not join the Ray cluster at {self.address}: {exc}{detail}") from None
        self._connected = True

    async def _reachable(self, timeout: float = _REACH_TIMEOUT_S) -> None:
        """Fail fast on an address nothing answers at: ray.init would retry for minutes, logging only."""
        host, sep, port = self.address.rpartition(":")
        if not sep or not port.isdigit():
            raise HostError(f"The Ray address {self.address!r} is not HOST:PORT (the head's GCS address).")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), timeout)
        except (OSError, TimeoutError) as exc:
            why = "no answer in time" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            raise HostError(f"Could not reach the Ray cluster's head at {self.address}: {why}.") from None
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def _require_token_auth(self) -> None:
        """HostError unless the cluster refuses a client without a token (see the module doc)."""
        if self.address in _TOKEN_AUTH_SEEN:
            return
        answer = await asyncio.to_thread(_probe_without_token, self.address)
        if answer == "token-required":
            _TOKEN_AUTH_SEEN.add(self.address)
            return
        if answer == "open":
            raise HostError(
                f"The Ray cluster at {self.address} does not require token authentication: anyone who can "
                "reach it can run code on its nodes. Start it with RAY_AUTH_MODE=token (and give this "
                "service the token with --ray-auth-token-file), or pass --ray-allow-unauthenticated to "
                "use it as it is."
            )
        raise HostError(
            f"Could not check whether the Ray cluster at {self.address} requires token authentication "
            f"({answer}); pass --ray-allow-unauthenticated to skip the check."
        )

    async def close(self) -> None:
        """Stop this host's pooled actors, then leave the cluster. Session actors keep running."""
        if not self._connected:
            return
        await asyncio.gather(*(self.stop(handle, 2.0) for handle in list(self._pooled.values())))
        self._actors.clear()
        self._connected = False
        await asyncio.to_thread(_Driver.release)

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
        self._actors[name] = actor
        if not wait:
            # Actor tasks run in submission order: this start runs before any later poll or stop.
            self._launching[name] = (_awaitable(actor.start.remote(spec.to_json(), pooled)), time.monotonic())
            return {"kind": self.name, "actor": name, "namespace": self.namespace, "size": spec.size}
        try:
            info = await asyncio.wait_for(
                _awaitable(actor.start.remote(spec.to_json(), pooled)), self._start_timeout_s
            )
        except BaseException as exc:
            await self._kill(name, actor, {})  # never leave a pending or half-started actor behind
            if isinstance(exc, TimeoutError):
                raise HostError(
                    f"No {spec.size} render-server slot of the Ray cluster became free within "
                    f"{self._start_timeout_s:g} s."
                ) from None
            if isinstance(exc, ray.exceptions.RayError):
                raise HostError(f"The render server could not be started: {_reason(exc)}") from None
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
        name = _name(handle)
        if not handle.get("pooled"):
            raise HostError(f"The Ray actor {name} is not a pooled render server.")
        self._pooled.pop(name, None)
        actor = await self._actor(handle)
        if actor is None:
            raise HostError(f"The pooled render server is gone: {_GONE}")
        try:
            info = await asyncio.wait_for(
                _awaitable(actor.assign.remote(spec.to_json())), self._start_timeout_s
            )
        except TimeoutError:
            raise HostError("The pooled render server did not take its session in time.") from None
        except ray.exceptions.RayError as exc:
            raise HostError(f"The pooled render server could not take its session: {_reason(exc)}") from None
        session: Handle = {k: v for k, v in handle.items() if k != "pooled"}
        session.update(info)
        session["size"] = spec.size
        return session

    # ---- watch ----------------------------------------------------------------------------------------
    async def status(self, handle: Handle) -> HostStatus:
        """RUNNING, EXITED (the server or its actor died; the message says how) or GONE (no such actor,
        or it stopped answering). Never raises for a dead server. Also keeps a pooled actor alive."""
        self._require_connection()
        name = _name(handle)
        if name in self._launching:
            try:
                if await self.wait_started(handle, timeout=0) is None:
                    return HostStatus(HostState.RUNNING)  # still being placed or started
            except HostError as exc:
                return HostStatus(HostState.EXITED, exc.message)
        actor = await self._actor(handle)
        if actor is None:
            return await self._retired(handle) or HostStatus(HostState.GONE, _GONE)
        try:
            result = await asyncio.wait_for(_awaitable(actor.poll.remote()), self._poll_timeout_s)
        except ray.exceptions.ActorUnavailableError as exc:  # unreachable for now (a partitioned node)
            return self._unanswered_poll(name, _reason(exc))
        except ray.exceptions.RayActorError as exc:  # ActorDiedError: killed, crashed, its node died
            self._forget(name)
            died = HostStatus(HostState.EXITED, f"The render server's Ray actor died: {_reason(exc)}")
            return await self._retired(handle) or died
        except ray.exceptions.RayError as exc:
            return self._unanswered_poll(name, _reason(exc))
        except TimeoutError:
            return self._unanswered_poll(name, "no answer in time")
        self._unanswered.pop(name, None)
        if result["running"]:
            return HostStatus(HostState.RUNNING)
        reason = result.get("reason")
        return HostStatus(
            HostState.EXITED, str(result["message"]), reason if isinstance(reason, str) else None
        )

    def _unanswered_poll(self, name: str, why: str) -> HostStatus:
        # A hung node or a slow GCS: maybe still running, so RUNNING, up to max_unanswered_polls in a row.
        misses = self._unanswered.get(name, 0) + 1
        self._unanswered[name] = misses
        log.warning("render server actor %s did not answer a poll (%d in a row): %s", name, misses, why)
        if misses >= self._max_unanswered:
            return HostStatus(
                HostState.GONE, f"The render server's Ray actor stopped answering ({misses} polls): {why}"
            )
        return HostStatus(HostState.RUNNING)

    async def wait_started(self, handle: Handle, timeout: float | None = None) -> dict[str, Any] | None:
        """For a handle ``start`` returned: wait up to ``timeout`` s (None: the start timeout) until its
        render server runs, and return ``{nodeId, nodeIp, pid, log}``; None while it is still starting.
        A start that failed, or found no free slot within the start timeout, raises ``HostError`` (and
        its actor is killed, so it does not wait for a slot forever)."""
        name = _name(handle)
        launching = self._launching.get(name)
        if launching is None:
            return None
        future, since = launching
        left = since + self._start_timeout_s - time.monotonic()
        wait = left if timeout is None else min(timeout, left)
        try:
            if wait > 0:
                await asyncio.wait_for(asyncio.shield(future), wait)
        except TimeoutError:
            pass
        except Exception:  # a failed start: reported below from the future itself
            pass
        if not future.done():
            if time.monotonic() < since + self._start_timeout_s:
                return None
            del self._launching[name]
            future.cancel()
            actor = self._actors.get(name)
            if actor is not None:
                await self._kill(name, actor, handle)
            raise HostError(
                f"No {handle.get('size', '')} render-server slot of the Ray cluster became free within "
                f"{self._start_timeout_s:g} s."
            )
        del self._launching[name]
        failure = future.exception()
        if failure is not None:
            self._forget(name)
            raise HostError(f"The render server could not be started: {_reason(failure)}")
        info: dict[str, Any] = future.result()
        self._node_of[name] = str(info.get("nodeId") or "")
        return info

    async def adopt(self, handle: Handle) -> HostStatus:
        """Find the actor again by name (this is a new driver) and report its status."""
        self._forget(_name(handle))
        return await self.status(handle)

    # ---- stop -----------------------------------------------------------------------------------------
    async def stop(self, handle: Handle, grace: float) -> None:
        """Stop the server politely, then kill its actor; its slot is free on return. Idempotent."""
        self._require_connection()
        name = _name(handle)
        self._pooled.pop(name, None)
        launching, _since = self._launching.pop(name, (None, 0.0))
        actor = await self._actor(handle)
        if actor is None:
            self._forget(name)
            await asyncio.to_thread(self._last_poll, handle, forget=True)
            return
        if launching is not None and not launching.done():
            # Not placed or not started yet: nothing to stop politely, and a polite stop would wait for
            # the placement.
            launching.cancel()
            await self._kill(name, actor, handle, slot=(None, resource_name(str(handle.get("size", "")))))
            return
        held = True
        try:
            await asyncio.wait_for(_awaitable(actor.stop.remote(grace)), grace + 10.0)
        except (TimeoutError, ray.exceptions.RayError) as exc:
            # Dead or unreachable: killing the actor below takes its child along (PR_SET_PDEATHSIG).
            log.debug("render server actor %s did not stop politely: %s", name, exc)
            held = isinstance(exc, TimeoutError)  # a dead actor's slot is already back
        node_id = (handle.get("nodeId") or self._node_of.get(name)) if held else None
        await self._kill(name, actor, handle, slot=(node_id, resource_name(str(handle.get("size", "")))))

    async def _kill(
        self, name: str, actor: Any, handle: Handle, *, slot: tuple[Any, str] | None = None
    ) -> None:
        """ray.kill, then wait (bounded) until the GCS has the actor dead and, for ``slot`` (node id,
        resource) the actor held, until that node shows the slot free again."""
        self._forget(name)
        namespace = str(handle.get("namespace") or self.namespace)
        node_id, resource = slot if slot else (None, "")

        def kill_and_confirm() -> None:
            before = _available_per_node().get(node_id, {}).get(resource, 0.0) if node_id else 0.0
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
                if _available_per_node().get(node_id, {}).get(resource, 0.0) > before:
                    return
                time.sleep(0.05)
            if time.monotonic() >= deadline:
                log.warning(
                    "render server actor %s: no freed slot seen %g s after ray.kill", name, _KILL_CONFIRM_S
                )

        await asyncio.to_thread(kill_and_confirm)

    # ---- capacity -------------------------------------------------------------------------------------
    async def capacity(self) -> Capacity:
        """Slots per size from the cluster's ``render_<size>`` resources (alive nodes), with every node
        Ray knows, dead ones included (``alive`` False, no slots)."""
        self._require_connection()
        state = await asyncio.to_thread(_cluster_state)
        totals: Mapping[str, float] = state["total"]
        available: Mapping[str, float] = state["available"]
        sizes = {
            size.value.lower(): Slots(
                int(totals.get(resource_name(size.value), 0)),
                # Ray omits a resource from available_resources() once all of it is in use.
                int(available.get(resource_name(size.value), 0)),
            )
            for size in Size
        }
        nodes = []
        for node in state["nodes"]:
            node_id = str(node.get("NodeID", ""))
            alive = bool(node.get("Alive"))
            node_total: Mapping[str, float] = node.get("Resources") or {}
            node_free: Mapping[str, float] = state["per_node"].get(node_id, {}) if alive else {}
            slots = {
                size.value.lower(): Slots(
                    int(node_total.get(resource_name(size.value), 0)) if alive else 0,
                    int(node_free.get(resource_name(size.value), 0)),
                )
                for size in Size
                if resource_name(size.value) in node_total
            }
            nodes.append(NodeCapacity(node_id, str(node.get("NodeManagerAddress", "")), alive, slots))
        return Capacity(sizes=sizes, nodes=tuple(nodes))

    # ---- helpers --------------------------------------------------------------------------------------
    def _require_connection(self) -> None:
        if not self._connected:
            raise HostError("The Ray host is not connected (call connect() first).")

    async def _actor(self, handle: Handle) -> Any | None:
        name = _name(handle)
        cached = self._actors.get(name)
        if cached is not None:
            return cached
        namespace = str(handle.get("namespace") or self.namespace)
        try:
            actor = await asyncio.to_thread(ray.get_actor, name, namespace=namespace)
        except ValueError:  # no live actor of that name
            return None
        self._actors[name] = actor
        return actor

    async def _retired(self, handle: Handle) -> HostStatus | None:
        """How the render server of a session actor that retired ended (``openrr.hosts.ray_actor``)."""
        last = await asyncio.to_thread(self._last_poll, handle)
        if last is None:
            return None
        reason = last.get("reason")
        why = reason if isinstance(reason, str) else None
        return HostStatus(HostState.EXITED, str(last.get("message", "")), why)

    def _last_poll(self, handle: Handle, *, forget: bool = False) -> dict[str, Any] | None:
        """What a retired session actor left in the KV store (``forget``: and remove it). Blocking."""
        from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_get

        key = exit_key(str(handle.get("namespace") or self.namespace), _name(handle))
        try:
            if forget:
                _internal_kv_del(key, namespace=EXIT_KV_NAMESPACE)
                return None
            raw = _internal_kv_get(key, namespace=EXIT_KV_NAMESPACE)
            found = json.loads(raw) if raw else None
        except Exception as exc:  # the GCS unreachable, or a value that is not ours: as if none was left
            log.debug("reading the exit record of %s: %s", key, exc)
            return None
        return found if isinstance(found, dict) else None

    def _forget(self, name: str) -> None:
        self._node_of.pop(name, None)
        self._actors.pop(name, None)
        self._unanswered.pop(name, None)


# Addresses whose cluster was seen to require a token, by this process: checked once per address.
_TOKEN_AUTH_SEEN: set[str] = set()


def _probe_without_token(address: str) -> str:
    """``_AUTH_CHECK``'s answer for ``address``: "token-required", "open", or what failed."""
    with tempfile.TemporaryDirectory(prefix="openrr-ray-auth-") as home:
        # No RAY_* (child_env drops them) and an empty home: Ray finds no token anywhere.
        env = child_env({"HOME": home, "RAY_USAGE_STATS_ENABLED": "0"})
        try:
            done = subprocess.run(
                [sys.executable, "-c", _AUTH_CHECK, address],
                capture_output=True,
                text=True,
                timeout=_AUTH_CHECK_TIMEOUT_S,
                env=env,
                stdin=subprocess.DEVNULL,
                cwd=home,
            )
        except subprocess.TimeoutExpired:
            return f"no answer within {_AUTH_CHECK_TIMEOUT_S:g} s"
    lines = done.stdout.strip().splitlines()
    if lines:
        return lines[-1]
    return f"the check exited with {done.returncode}: {done.stderr.strip()[-300:]}"


def _available_per_node() -> dict[str, dict[str, float]]:
    """Available resources by node id (alive nodes). Private API, kept to this one place: Ray 2.60 has no
    public per-node view without the dashboard (ray.util.state needs it); without it, nodes show totals
    only and stop does not wait for the freed slot to show."""
    try:
        from ray._private.state import state as private_state

        found: dict[str, dict[str, float]] = private_state.available_resources_per_node()  # type: ignore[no-untyped-call]
    except Exception:  # a Ray version without it
        return {}
    return found


def _cluster_state() -> dict[str, Any]:
    return {
        "total": ray.cluster_resources(),  # type: ignore[no-untyped-call]
        "available": ray.available_resources(),  # type: ignore[no-untyped-call]
        "nodes": ray.nodes(),  # type: ignore[no-untyped-call]
        "per_node": _available_per_node(),
    }


def _name(handle: Handle) -> str:
    name = handle.get("actor") if isinstance(handle, dict) else None
    if not isinstance(name, str) or not name:
        raise HostError(f"Not a render server handle of the Ray host: {handle!r}")
    return name


def _reason(exc: BaseException) -> str:
    """Ray's explanation without its boilerplate: ActorDiedError lists ids and addresses on tab-indented
    lines; the cause (node died, killed, exited) is on the others."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, ray.exceptions.RayTaskError) and cause is not None:
        return str(cause)
    text = str(getattr(exc, "error_msg", None) or exc)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("\t")]
    return " ".join(lines) or type(exc).__name__


def _awaitable(ref: Any) -> asyncio.Future[Any]:
    # An ObjectRef is awaitable; as a Future it can also be cancelled by wait_for.
    future: asyncio.Future[Any] = asyncio.ensure_future(ref)
    return future
