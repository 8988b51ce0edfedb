"""openrr's Python client: the public API, importable from here.

``ArrClient`` speaks the control plane's 2021-01-01 API (``rest``); ``connect_session`` (or ``connect``, given
a host, port and connect token) opens a :class:`RenderConnection` to a session's render server over WebRTC:
video in, camera and scene commands out, measured as it goes::

    from openrr.client import ArrClient, connect_session

    async with await connect_session(ArrClient(url, account_id, key), session_id) as conn:
        await conn.wait_frames(30)
        await conn.orbit(45)
        marker = await conn.scene.create_entity("marker", position=(0, 1, 0))

Where each part lives: ``rest`` (the REST client), ``session`` (reaching a session's render server),
``connection`` (the WebRTC connection), ``commands`` (the requests it can make), ``scene``, ``entities``,
``scene_types`` and ``scene_fields`` (the scene API, protocol v2), ``requests`` (requests waiting for
answers), ``signalling`` (the offer and its answer), ``stereo`` (stereo frames for headsets),
``measurements`` (what is measured and how), ``errors``, ``jitter`` (a faster video jitter buffer).

The names below are loaded on first use (PEP 562): every ``openrr`` command imports ``openrr.client.rest``,
which runs this file first, and the control plane (``openrr serve``) must start without the WebRTC and
video libraries (aiortc, PyAV, numpy) that the streaming half needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openrr.client.connection import Image, ReceivedFrame, RenderConnection, connect
    from openrr.client.entities import Entity
    from openrr.client.errors import RenderConnectError, RenderRequestError, SessionNotReadyError
    from openrr.client.measurements import (
        ClockSample,
        FrameLog,
        Matched,
        Measurements,
        best_clock_sample,
        fps,
        glass_to_glass_ms,
        input_latencies_ms,
        percentiles,
    )
    from openrr.client.rest import ApiError, ArrClient
    from openrr.client.scene import RemoteScene
    from openrr.client.scene_types import (
        Bounds,
        Component,
        EntityMaterials,
        EntityState,
        Material,
        OutlineSettings,
        PointCloudSettings,
        RayHit,
        ShellSettings,
        Skies,
        Texture,
        Transform,
    )
    from openrr.client.session import RenderEndpoint, connect_session, session_endpoint
    from openrr.client.signalling import Codec, VideoSettings, offer_error, parse_answer
    from openrr.client.stereo import StereoFrame, head_views, symmetric_projection

# Each public name and the module of this package that holds it.
_HOMES = {
    "ApiError": "rest",
    "ArrClient": "rest",
    "RenderEndpoint": "session",
    "connect_session": "session",
    "session_endpoint": "session",
    "Image": "connection",
    "ReceivedFrame": "connection",
    "RenderConnection": "connection",
    "connect": "connection",
    "RenderConnectError": "errors",
    "RenderRequestError": "errors",
    "SessionNotReadyError": "errors",
    "Codec": "signalling",
    "VideoSettings": "signalling",
    "offer_error": "signalling",
    "parse_answer": "signalling",
    "ClockSample": "measurements",
    "FrameLog": "measurements",
    "Matched": "measurements",
    "Measurements": "measurements",
    "best_clock_sample": "measurements",
    "fps": "measurements",
    "glass_to_glass_ms": "measurements",
    "input_latencies_ms": "measurements",
    "percentiles": "measurements",
    "RemoteScene": "scene",
    "Entity": "entities",
    "Bounds": "scene_types",
    "Component": "scene_types",
    "EntityMaterials": "scene_types",
    "EntityState": "scene_types",
    "Material": "scene_types",
    "OutlineSettings": "scene_types",
    "PointCloudSettings": "scene_types",
    "RayHit": "scene_types",
    "ShellSettings": "scene_types",
    "Skies": "scene_types",
    "Texture": "scene_types",
    "Transform": "scene_types",
    "StereoFrame": "stereo",
    "head_views": "stereo",
    "symmetric_projection": "stereo",
}

__all__ = [
    "ApiError",
    "ArrClient",
    "Bounds",
    "ClockSample",
    "Codec",
    "Component",
    "Entity",
    "EntityMaterials",
    "EntityState",
    "FrameLog",
    "Image",
    "Matched",
    "Material",
    "Measurements",
    "OutlineSettings",
    "PointCloudSettings",
    "RayHit",
    "ReceivedFrame",
    "RemoteScene",
    "RenderConnectError",
    "RenderConnection",
    "RenderEndpoint",
    "RenderRequestError",
    "SessionNotReadyError",
    "ShellSettings",
    "Skies",
    "StereoFrame",
    "Texture",
    "Transform",
    "VideoSettings",
    "best_clock_sample",
    "connect",
    "connect_session",
    "fps",
    "glass_to_glass_ms",
    "head_views",
    "input_latencies_ms",
    "offer_error",
    "parse_answer",
    "percentiles",
    "session_endpoint",
    "symmetric_projection",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
