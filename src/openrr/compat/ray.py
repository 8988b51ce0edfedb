"""Ray's private APIs that the Ray host relies on, each reached from here alone.

Ray 2.60 offers no public way to do these, so each is one small function with the internal it uses:

- ``no_auto_connect``: ``ray._private.auto_init_hook.enable_auto_connect``. A Ray call without a driver
  then fails instead of starting a private local Ray instance (Ray's default; the public variable
  ``RAY_ENABLE_AUTO_CONNECT`` is read only at import).
- ``reload_auth_config``: ``ray._raylet.Config.initialize`` and ``AuthenticationTokenLoader.instance()
  .reset_cache()``. Ray reads the auth mode at import and caches the token it found; after the process's
  ``RAY_AUTH_*`` variables change, both must be read again.
- ``available_resources_per_node``: ``ray._private.state.state.available_resources_per_node``: there is no
  public per-node view of free resources without the dashboard (``ray.util.state`` needs it).
- ``kv_get``/``kv_put``/``kv_del``: ``ray.experimental.internal_kv._internal_kv_*``, the GCS's key-value
  store, where a retired session actor leaves its last poll (``openrr.hosts.ray_actor``).
- ``TOKEN_PROBE``: a script for a separate process that opens ``ray._raylet.GcsClient`` without a token and
  tells whether the cluster refused it with ``ray.exceptions.AuthenticationError``.

``tests/unit/test_compat_ray.py`` checks that each internal is still there.
"""

from __future__ import annotations

from typing import Any

# Run as ``python -c TOKEN_PROBE ADDRESS`` in a process without any token: does the GCS at ADDRESS let a
# client in? One line of answer: "token-required", "open", or "failed: <what>".
TOKEN_PROBE = """
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


def no_auto_connect() -> None:
    """Make a Ray call without a driver fail instead of starting a local Ray instance, for this process."""
    from ray._private import auto_init_hook

    auto_init_hook.enable_auto_connect = False


def reload_auth_config() -> None:
    """Make Ray read the auth mode and token from this process's environment again."""
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def available_resources_per_node() -> dict[str, dict[str, float]]:
    """Available resources by node id (alive nodes). Needs a driver. Blocking."""
    from ray._private.state import state as private_state

    found: dict[str, dict[str, float]] = private_state.available_resources_per_node()  # type: ignore[no-untyped-call]
    return found


def kv_get(key: bytes, namespace: bytes) -> Any:
    """The value at ``key`` in the GCS's internal KV store (None if none). Needs a driver. Blocking."""
    from ray.experimental.internal_kv import _internal_kv_get

    return _internal_kv_get(key, namespace=namespace)


def kv_put(key: bytes, value: bytes, namespace: bytes) -> None:
    """Store ``value`` at ``key`` in the GCS's internal KV store. Needs a driver or a worker. Blocking."""
    from ray.experimental.internal_kv import _internal_kv_put

    _internal_kv_put(key, value, namespace=namespace)


def kv_del(key: bytes, namespace: bytes) -> None:
    """Remove ``key`` from the GCS's internal KV store. Needs a driver. Blocking."""
    from ray.experimental.internal_kv import _internal_kv_del

    _internal_kv_del(key, namespace=namespace)
