"""The Ray internals openrr.compat.ray relies on: an upgrade that removes one fails here, loudly.

No cluster is needed: each check looks the internal up, the way openrr.compat.ray reaches it.
"""

from __future__ import annotations

import inspect

import ray.exceptions
from ray._private import auto_init_hook
from ray._private.state import state as private_state
from ray._raylet import AuthenticationTokenLoader, Config, GcsClient  # type: ignore[attr-defined]
from ray.experimental import internal_kv

from openrr.compat import ray as compat_ray


def test_the_auto_connect_switch_is_still_there() -> None:
    assert isinstance(auto_init_hook.enable_auto_connect, bool)
    # it is what Ray's auto-init hook consults before starting a local instance
    assert "enable_auto_connect" in inspect.getsource(auto_init_hook)


def test_the_auth_config_can_still_be_read_again() -> None:
    assert callable(Config.initialize)
    assert callable(AuthenticationTokenLoader.instance().reset_cache)


def test_the_per_node_resource_view_is_still_there() -> None:
    assert callable(private_state.available_resources_per_node)


def test_the_internal_kv_functions_are_still_there() -> None:
    for name in ("_internal_kv_get", "_internal_kv_put", "_internal_kv_del"):
        function = getattr(internal_kv, name, None)
        assert callable(function), f"ray.experimental.internal_kv.{name} is gone"
        assert "namespace" in inspect.signature(function).parameters


def test_the_token_probe_still_finds_what_it_imports() -> None:
    assert callable(GcsClient)
    assert issubclass(ray.exceptions.AuthenticationError, Exception)
    assert "from ray._raylet import GcsClient" in compat_ray.TOKEN_PROBE
    assert "from ray.exceptions import AuthenticationError" in compat_ray.TOKEN_PROBE
