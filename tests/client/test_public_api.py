"""``openrr.client`` is the client's public face: every name users imported from ``openrr.client.stream``
before it was split (and the REST client) imports from the package, and importing the package, as every
``openrr`` command does through ``openrr.client.rest``, loads no WebRTC or video library."""

from __future__ import annotations

import subprocess
import sys

import pytest

import openrr.client

# What ``openrr.client.stream`` offered before the split into modules, the REST client, and the scene API.
PUBLIC = (
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
    "Texture",
    "Transform",
    "VideoSettings",
    "best_clock_sample",
    "connect",
    "connect_session",
    "fps",
    "glass_to_glass_ms",
    "input_latencies_ms",
    "offer_error",
    "parse_answer",
    "percentiles",
    "session_endpoint",
    "StereoFrame",
    "head_views",
    "symmetric_projection",
)


def test_the_public_names_import_from_the_package() -> None:
    assert sorted(openrr.client.__all__) == sorted(PUBLIC)
    namespace: dict[str, object] = {}
    exec(f"from openrr.client import {', '.join(PUBLIC)}", namespace)  # the way users write it
    for name in PUBLIC:
        assert namespace[name] is getattr(openrr.client, name)
        assert name in dir(openrr.client)


def test_the_package_names_the_objects_of_its_modules() -> None:
    from openrr.client import connection, entities, errors, measurements, rest, scene, session, signalling

    assert openrr.client.RenderConnection is connection.RenderConnection
    assert openrr.client.connect_session is session.connect_session
    assert openrr.client.SessionNotReadyError is errors.SessionNotReadyError
    assert openrr.client.FrameLog is measurements.FrameLog
    assert openrr.client.VideoSettings is signalling.VideoSettings
    assert openrr.client.ArrClient is rest.ArrClient
    assert openrr.client.RemoteScene is scene.RemoteScene
    assert openrr.client.Entity is entities.Entity


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = openrr.client.no_such_name


def test_the_cli_and_the_package_start_without_webrtc_or_video() -> None:
    code = (
        "import sys, openrr.client, openrr.client.rest, openrr.cli.main; "
        "print(sorted(m for m in ('aiortc', 'av') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
