"""Joining a Ray cluster as a driver: the address answers, the cluster requires a token, ``ray.init``.

Authentication: whoever can reach a Ray cluster's GCS can run code on every node, render servers
included. Before joining, ``join`` checks that the cluster requires token authentication
(``RAY_AUTH_MODE=token``): a separate process with no token at all (no ``RAY_*`` variables, an empty home,
so no ``~/.ray/auth_token``) opens a GCS client, which such a cluster refuses with Ray's
``AuthenticationError``. A cluster that lets it in is refused with a ``HostError``, unless the caller
allows unauthenticated clusters (``openrr serve --ray-allow-unauthenticated``); an answer that says
neither (the check itself failed) is refused as well, with what went wrong.

Driver: one per process, shared by the RayHosts of the process (``join``/``leave`` count them); the last
``leave`` shuts it down, unless someone else had called ``ray.init`` first.

Apart from ``openrr.hosts.ray`` because none of it concerns render servers: it is the process's connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import threading

import ray

from openrr.child_env import child_env
from openrr.compat.ray import TOKEN_PROBE, no_auto_connect, reload_auth_config
from openrr.errors import HostError

# How long join waits for the head's GCS port to accept a connection before giving up.
_REACH_TIMEOUT_S = 10.0
# How long the authentication check may take (it imports Ray: about a second).
_AUTH_CHECK_TIMEOUT_S = 60.0
# Addresses whose cluster was seen to require a token, by this process: checked once per address.
_TOKEN_AUTH_SEEN: set[str] = set()


async def join(address: str, namespace: str, token_file: str | None, *, allow_unauthenticated: bool) -> None:
    """Join the cluster at ``address`` (the head's GCS ``HOST:PORT``) as this process's driver, or count
    one more user of the driver it has. ``token_file``: the cluster token (sets ``RAY_AUTH_MODE=token`` and
    ``RAY_AUTH_TOKEN_PATH`` for this process); without it Ray's own ``RAY_AUTH_*`` environment applies.
    Raises ``HostError``, saying what is wrong."""
    if token_file is not None and not await asyncio.to_thread(os.path.isfile, token_file):
        raise HostError(f"The Ray auth token file {token_file} does not exist.")
    await _reachable(address)
    if not allow_unauthenticated:
        await _require_token_auth(address)
    try:
        await asyncio.to_thread(_Driver.acquire, address, namespace, token_file)
    # ray.init raises ConnectionError, AuthenticationError, RuntimeError… (undocumented): this is the edge
    # where whatever it raises becomes the HostError that `openrr serve` reports.
    except Exception as exc:  # noqa: BLE001 -- the edge: any ray.init failure becomes a HostError
        # A refused token shows only in the cause: the last line of the traceback text Ray wraps.
        lines = str(exc.__cause__ or "").strip().splitlines()
        detail = f" ({lines[-1].strip()[:300]})" if lines else ""
        raise HostError(f"Could not join the Ray cluster at {address}: {exc}{detail}") from None


async def leave() -> None:
    """One user fewer of the process's driver; the last one shuts it down (if ``join`` started it)."""
    await asyncio.to_thread(_Driver.release)


class _Driver:
    """The process's Ray driver connection, shared by every RayHost of the process."""

    lock = threading.Lock()
    users = 0
    owned = False  # False: someone else called ray.init; we never shut their connection down

    @classmethod
    def acquire(cls, address: str, namespace: str, token_file: str | None) -> None:
        with cls.lock:
            if cls.users == 0 and not ray.is_initialized():
                # A call racing ``close`` must not spawn a Ray instance on the control plane's machine.
                no_auto_connect()
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


def _use_token_file(path: str) -> None:
    """Token auth with the token in ``path``, for this process (and so for this driver)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = os.path.abspath(path)
    os.environ.pop("RAY_AUTH_TOKEN", None)  # it would win over the file
    reload_auth_config()  # Ray read the auth mode and the token at import


async def _reachable(address: str, timeout: float = _REACH_TIMEOUT_S) -> None:
    """Fail fast on an address nothing answers at: ray.init would retry for minutes, logging only."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise HostError(f"The Ray address {address!r} is not HOST:PORT (the head's GCS address).")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), timeout)
    except (OSError, TimeoutError) as exc:
        why = "no answer in time" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise HostError(f"Could not reach the Ray cluster's head at {address}: {why}.") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _require_token_auth(address: str) -> None:
    """HostError unless the cluster refuses a client without a token (see the module doc)."""
    if address in _TOKEN_AUTH_SEEN:
        return
    answer = await asyncio.to_thread(_probe_without_token, address)
    if answer == "token-required":
        _TOKEN_AUTH_SEEN.add(address)
        return
    if answer == "open":
        raise HostError(
            f"The Ray cluster at {address} does not require token authentication: anyone who can "
            "reach it can run code on its nodes. Start it with RAY_AUTH_MODE=token (and give this "
            "service the token with --ray-auth-token-file), or pass --ray-allow-unauthenticated to "
            "use it as it is."
        )
    raise HostError(
        f"Could not check whether the Ray cluster at {address} requires token authentication "
        f"({answer}); pass --ray-allow-unauthenticated to skip the check."
    )


def _probe_without_token(address: str) -> str:
    """``TOKEN_PROBE``'s answer for ``address``: "token-required", "open", or what failed."""
    with tempfile.TemporaryDirectory(prefix="openrr-ray-auth-") as home:
        # No RAY_* (child_env drops them) and an empty home: Ray finds no token anywhere.
        env = child_env({"HOME": home, "RAY_USAGE_STATS_ENABLED": "0"})
        try:
            done = subprocess.run(
                [sys.executable, "-c", TOKEN_PROBE, address],
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
