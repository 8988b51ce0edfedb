"""Protocol v2 (the scene API) against a real render server: each request's answer, its errors and codes,
the versions answers and pushed messages carry, and the clean slate the next client gets.

One server for the module (the two-node model preloaded: a root "Scene" holding "RedBox", a unit cube at
x = -1.5, and "BlueSphere"); each test connects a client of its own, so each starts from that clean slate.
Requests are sent as raw data-channel messages.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from openrr.client.connection import RenderConnection, connect
from openrr.client.errors import RenderRequestError
from openrr.protocol import scene_api
from openrr.protocol.scene_api import SCENE_TYPES
from openrr.render import scene_context, scene_entities
from openrr.render.scene_commands import HANDLERS
from tests.render import fixtures
from tests.render.fixtures import RED_X
from tests.render.live import LiveServer, live_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    root = tmp_path_factory.mktemp("models")
    fixtures.two_node_glb(root)
    fixtures.textured_gltf(root)  # stripes.png: 16 x 16
    (root / "bomb.png").write_bytes(fixtures.png_bomb(20000))
    (root / "notes.png").write_text("not an image")
    Image.fromarray(np.full((32, 64, 3), 90, dtype=np.uint8)).save(root / "panorama.png")
    Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(root / "face.png")
    async with live_server(root, models=("two_nodes.glb",)) as live:
        yield live


async def until(condition: Any, what: str) -> None:
    for _ in range(400):  # up to 20 s on a loaded machine; a condition, not a timing
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest_asyncio.fixture(loop_scope="module")
async def conn(server: LiveServer) -> AsyncIterator[RenderConnection]:
    await until(lambda: server.server.client is None, "the previous client to be gone")
    async with await connect("127.0.0.1", server.port, server.token()) as c:
        await c.wait_frames(1, timeout=20)
        yield c


async def ask(conn: RenderConnection, type_: str, **fields: Any) -> dict[str, Any]:
    answer = await conn.request({"v": 2, "type": type_, **fields}, timeout=20)
    assert answer["v"] == 2, answer
    return answer


async def refused(conn: RenderConnection, message: dict[str, Any]) -> RenderRequestError:
    with pytest.raises(RenderRequestError) as err:
        await conn.request({"v": 2, **message}, validate=False, timeout=20)
    assert err.value.message
    return err.value


async def entity_named(conn: RenderConnection, name: str) -> dict[str, Any]:
    entities = (await ask(conn, "scene.get"))["entities"]
    return next(e for e in entities if e["name"] == name)


def close(actual: list[float], expected: list[float] | tuple[float, ...]) -> bool:
    return len(actual) == len(expected) and all(
        math.isclose(a, e, abs_tol=1e-6) for a, e in zip(actual, expected, strict=True)
    )


async def test_every_scene_request_has_a_handler() -> None:
    assert set(HANDLERS) == SCENE_TYPES


async def test_versions_hello_and_v1_clients(conn: RenderConnection) -> None:
    hello = conn.hello
    assert hello is not None
    assert (hello["v"], hello["protocols"]) == (1, [1, 2])
    pong = await conn.request({"type": "ping", "t": 1.0})
    assert (pong["type"], pong["v"]) == ("pong", 1)
    with pytest.raises(RenderRequestError) as err:
        await conn.request({"v": 1, "type": "scene.get"}, validate=False)
    assert err.value.code == "BadMessage"
    assert all(m["v"] == 1 for m in conn.stats_messages)  # a v1 client never sees a v2
    assert (await ask(conn, "ping", t=2.0))["type"] == "pong"  # v1 requests also speak v2
    seen = len(conn.stats_messages)
    await until(lambda: len(conn.stats_messages) > seen, "a pushed stats message")
    assert conn.stats_messages[-1]["v"] == 2  # pushed messages: the highest version the client used
    # A v1 request still gets a v1 answer, and a v2 one's error is v2.
    assert (await conn.request({"type": "ping"}))["v"] == 1
    assert (await refused(conn, {"type": "entity.get", "entity": 99999})).code == "EntityNotFound"


async def test_entities_hierarchy_transforms_and_bounds(conn: RenderConnection, server: LiveServer) -> None:
    whole = await ask(conn, "scene.get")
    scene = whole["entities"]
    assert scene[0]["name"] == "Scene"  # parents first
    assert {e["name"] for e in scene} == {"Scene", "RedBox", "BlueSphere"}
    assert (whole["total"], whole["offset"]) == (3, 0)
    page = await ask(conn, "scene.get", offset=1, limit=1)
    assert (page["entities"], page["total"], page["offset"]) == ([scene[1]], 3, 1)
    box = await entity_named(conn, "RedBox")
    assert (box["mesh"], box["parts"], box["enabled"], box["components"]) == (True, 1, True, [])
    assert close(box["local"]["position"], (RED_X, 0, 0))
    half_turn_y = [0.0, math.sin(math.pi / 4), 0.0, math.cos(math.pi / 4)]  # 90 degrees about +Y
    holder = (
        await ask(
            conn, "entity.create", name="Holder", position=[0, 2, 0], rotation=half_turn_y, scale=[2, 2, 2]
        )
    )["entity"]
    assert (holder["parent"], holder["mesh"], holder["parts"]) == (None, False, 0)
    assert close(holder["local"]["rotation"], half_turn_y)
    assert close(holder["local"]["scale"], (2, 2, 2))
    moved = (await ask(conn, "entity.set", entity=box["id"], parent=holder["id"]))["entity"]
    assert moved["parent"] == holder["id"]
    assert close(moved["local"]["position"], (RED_X, 0, 0))  # the local transform is kept
    # world = holder · local: x -1.5 scaled to -3, turned about +Y to z = +3, lifted to y = 2
    assert close(moved["world"]["position"], (0, 2, 3))
    assert close(moved["world"]["scale"], (2, 2, 2))
    matrix = moved["world"]["matrix"]
    assert close(matrix[12:15], (0, 2, 3))  # column-major: the translation is the last column
    world = await ask(conn, "entity.bounds", entity=holder["id"], space="world")
    assert close(world["min"], (-1, 1, 2))
    assert close(world["max"], (1, 3, 4))
    local = await ask(conn, "entity.bounds", entity=holder["id"], space="local")
    assert close(local["min"], (RED_X - 0.5, -0.5, -0.5))
    assert close(local["max"], (RED_X + 0.5, 0.5, 0.5))
    empty = (await ask(conn, "entity.create", name="Empty"))["entity"]
    nothing = await ask(conn, "entity.bounds", entity=empty["id"])
    assert (nothing["space"], nothing["min"], nothing["max"]) == ("world", None, None)
    assert (await ask(conn, "entity.metadata", entity=box["id"]))["metadata"] == {}

    # position alone, then a whole matrix; disabling; a root again with parent null
    shifted = (
        await ask(conn, "entity.set", entity=box["id"], position=[0, 0, 1], enabled=False, name="Box")
    )["entity"]
    assert close(shifted["local"]["position"], (0, 0, 1))
    assert (shifted["enabled"], shifted["name"]) == (False, "Box")
    column_major = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 5, 6, 7, 1]
    placed = (await ask(conn, "entity.set", entity=box["id"], transform=column_major, parent=None))["entity"]
    assert placed["parent"] is None
    assert close(placed["world"]["position"], (5, 6, 7))
    assert (await ask(conn, "entity.get", entity=box["id"]))["entity"] == placed

    for message, code in [
        ({"type": "entity.get", "entity": 99999}, "EntityNotFound"),
        ({"type": "entity.create", "parent": 99999}, "EntityNotFound"),
        ({"type": "entity.set", "entity": holder["id"], "parent": holder["id"]}, "BadMessage"),
        (
            {"type": "entity.set", "entity": box["id"], "transform": column_major, "position": [0, 0, 0]},
            "BadMessage",
        ),
        ({"type": "entity.create", "rotation": [0, 0, 0, 0]}, "BadMessage"),
        ({"type": "entity.create", "position": [0, "up", 0]}, "BadMessage"),
        ({"type": "entity.bounds", "entity": box["id"], "space": "sideways"}, "BadMessage"),
    ]:
        assert (await refused(conn, message)).code == code, message

    polygons = (await conn.stats())["polygons"]
    gone = await ask(conn, "entity.destroy", entity=box["id"])
    assert (gone["type"], gone["destroyed"]) == ("ack", [box["id"]])
    assert (await conn.stats())["polygons"] == polygons - 12  # the cube's triangles
    assert (await refused(conn, {"type": "entity.get", "entity": box["id"]})).code == "EntityNotFound"
    # Destroying a model's root unloads the model: nothing of it is left, and it is no longer listed.
    root = await entity_named(conn, "Scene")
    await ask(conn, "entity.destroy", entity=root["id"])
    assert (await conn.stats())["polygons"] == 0
    assert server.server.pipeline.models == {}


async def test_components_round_trip_and_limits(conn: RenderConnection) -> None:
    box = await entity_named(conn, "RedBox")
    override = "HierarchicalStateOverride"
    created = await ask(
        conn, "component.create", entity=box["id"], component=override, properties={"hidden": "ForceOn"}
    )
    props = created["properties"]
    assert (props["hidden"], props["seeThrough"], props["cutPlaneFilterMask"]) == (
        "ForceOn",
        "InheritFromParent",
        0xFFFFFFFF,
    )
    changed = await ask(
        conn, "component.set", entity=box["id"], component=override, properties={"tintColor": [0, 1, 0, 0.5]}
    )
    assert changed["properties"]["hidden"] == "ForceOn"  # only the properties given change
    assert changed["properties"]["tintColor"] == [0, 1, 0, 0.5]
    got = await ask(conn, "component.get", entity=box["id"], component=override)
    assert got["properties"] == changed["properties"]
    assert (await ask(conn, "entity.get", entity=box["id"]))["entity"]["components"] == [override]
    light = await ask(
        conn,
        "component.create",
        entity=box["id"],
        component="SpotLight",
        properties={"innerConeAngle": 10, "outerConeAngle": 40},
    )
    assert (
        light["properties"]["innerConeAngle"],
        light["properties"]["outerConeAngle"],
        light["properties"]["enabled"],
    ) == (10, 40, True)

    for message, code in [
        ({"type": "component.create", "entity": box["id"], "component": override}, "ComponentExists"),
        ({"type": "component.get", "entity": box["id"], "component": "CutPlane"}, "ComponentNotFound"),
        ({"type": "component.get", "entity": 99999, "component": "CutPlane"}, "EntityNotFound"),
        (
            {
                "type": "component.set",
                "entity": box["id"],
                "component": override,
                "properties": {"hidden": "Yes"},
            },
            "BadMessage",
        ),
        (
            {
                "type": "component.set",
                "entity": box["id"],
                "component": override,
                "properties": {"colour": 1},
            },
            "BadMessage",
        ),
        ({"type": "component.create", "entity": box["id"], "component": "Gravity"}, "BadMessage"),
        (
            {
                "type": "component.set",
                "entity": box["id"],
                "component": "SpotLight",
                "properties": {"innerConeAngle": 50},
            },
            "BadMessage",  # inner would exceed outer
        ),
        (
            {
                "type": "component.create",
                "entity": box["id"],
                "component": "PointLight",
                "properties": {"outerConeAngle": 5},
            },
            "BadMessage",
        ),
        (
            {
                "type": "component.create",
                "entity": box["id"],
                "component": "CutPlane",
                "properties": {"normal": [0, 0, 0]},
            },
            "BadMessage",
        ),
    ]:
        assert (await refused(conn, message)).code == code, message

    removed = await ask(conn, "component.destroy", entity=box["id"], component=override)
    assert removed["type"] == "ack"
    assert (
        await refused(conn, {"type": "component.get", "entity": box["id"], "component": override})
    ).code == "ComponentNotFound"

    # Eight enabled cut planes at most: the ninth is refused, disabled it is taken, enabling it is refused.
    planes = [(await ask(conn, "entity.create", name=f"plane{i}"))["entity"]["id"] for i in range(9)]
    for entity in planes[:8]:
        plane = await ask(
            conn, "component.create", entity=entity, component="CutPlane", properties={"normal": "-Y"}
        )
        assert plane["properties"]["normal"] == "-Y"
    ninth = {"type": "component.create", "entity": planes[8], "component": "CutPlane"}
    assert (await refused(conn, ninth)).code == "TooManyCutPlanes"
    await ask(conn, "component.create", entity=planes[8], component="CutPlane", properties={"enabled": False})
    enable = {
        "type": "component.set",
        "entity": planes[8],
        "component": "CutPlane",
        "properties": {"enabled": True},
    }
    assert (await refused(conn, enable)).code == "TooManyCutPlanes"
    await ask(conn, "component.destroy", entity=planes[0], component="CutPlane")
    # Eight enabled lights at most (the box's spot light is one).
    for entity in planes[:7]:
        await ask(conn, "component.create", entity=entity, component="PointLight", properties={"range": 5})
    ninth_light = {"type": "component.create", "entity": planes[7], "component": "DirectionalLight"}
    assert (await refused(conn, ninth_light)).code == "TooManyLights"
    assert (
        await ask(conn, "component.set", entity=planes[8], component="CutPlane", properties={"enabled": True})
    )["properties"]["enabled"] is True


async def test_materials_and_textures(conn: RenderConnection) -> None:
    box = await entity_named(conn, "RedBox")
    listed = await ask(conn, "material.list", entity=box["id"])
    assert listed["type"] == "materials"
    [part] = listed["parts"]
    [red] = listed["materials"]
    assert part == {"part": 0, "material": red["id"]}
    assert (red["kind"], red["albedoColor"], red["alphaMode"], red["albedoTexture"]) == (
        "pbr",
        [1, 0, 0, 1],
        "Opaque",
        None,
    )
    edited = await ask(
        conn,
        "material.set",
        material=red["id"],
        properties={"albedoColor": [0, 1, 0, 1], "roughness": 0.25, "alphaMode": "Blend"},
    )
    assert (edited["material"]["albedoColor"], edited["material"]["roughness"]) == ([0, 1, 0, 1], 0.25)
    got = (await ask(conn, "material.get", material=red["id"]))["material"]
    assert got == edited["material"]
    assert (got["alphaMode"], got["metalness"]) == ("Blend", red["metalness"])  # the rest as it was

    color = (
        await ask(
            conn, "material.create", kind="color", name="Marker", properties={"albedoColor": [1, 1, 0, 1]}
        )
    )["material"]
    assert (color["kind"], color["metalness"], color["roughness"], color["name"]) == ("color", 0, 1, "Marker")
    assert color["id"] != red["id"]
    chosen = await ask(conn, "mesh.setMaterial", entity=box["id"], part=0, material=color["id"])
    assert chosen["parts"] == [{"part": 0, "material": color["id"]}]
    assert chosen["materials"][0]["id"] == color["id"]

    texture = await ask(conn, "texture.load", url="stripes.png")
    assert (texture["width"], texture["height"], texture["url"]) == (16, 16, "stripes.png")
    textured = await ask(
        conn, "material.set", material=color["id"], properties={"albedoTexture": texture["texture"]}
    )
    assert textured["material"]["albedoTexture"] == texture["texture"]
    cleared = await ask(conn, "material.set", material=color["id"], properties={"albedoTexture": None})
    assert cleared["material"]["albedoTexture"] is None

    for message, code in [
        ({"type": "material.get", "material": 99999}, "MaterialNotFound"),
        (
            {"type": "mesh.setMaterial", "entity": box["id"], "part": 1, "material": color["id"]},
            "PartNotFound",
        ),
        ({"type": "mesh.setMaterial", "entity": box["id"], "part": 0, "material": 99999}, "MaterialNotFound"),
        (
            {"type": "material.set", "material": red["id"], "properties": {"albedoTexture": 99999}},
            "TextureNotFound",
        ),
        ({"type": "material.set", "material": red["id"], "properties": {"roughness": None}}, "BadMessage"),
        ({"type": "material.set", "material": red["id"], "properties": {"roughness": 2}}, "BadMessage"),
        ({"type": "material.create", "kind": "glass"}, "BadMessage"),
        ({"type": "texture.load", "url": "../../../etc/passwd"}, "ModelSourceRefused"),
        ({"type": "texture.load", "url": "http://127.0.0.1:9/a.png"}, "ModelSourceRefused"),
        ({"type": "texture.load", "url": "missing.png"}, "TextureLoadFailed"),
        ({"type": "texture.load", "url": "notes.png"}, "TextureLoadFailed"),
        (
            {"type": "texture.load", "url": "bomb.png"},
            "TextureLoadFailed",
        ),  # 400 Mpx, refused from its header
    ]:
        assert (await refused(conn, message)).code == code, message
    await conn.wait_frames(conn.frames_received + 2, timeout=20)  # still streaming


async def test_outline_and_shell(conn: RenderConnection) -> None:
    outline = await ask(conn, "outline.set", color=[0, 0, 1], pulseRate=2)
    assert (outline["color"], outline["pulseRate"], outline["pulseIntensity"]) == ([0, 0, 1], 2, 0.5)
    shell = await ask(conn, "shell.set", opacity=0.5)
    assert (shell["desaturation"], shell["opacity"]) == (0.5, 0.5)
    assert (await refused(conn, {"type": "shell.set", "opacity": 3})).code == "BadMessage"


async def test_skies(conn: RenderConnection) -> None:
    listed = await ask(conn, "sky.list")
    assert {"default", "studio", "sunset"} <= set(listed["skies"])
    assert listed["current"] == "default"
    assert (await ask(conn, "sky.set", url="builtin://studio"))["sky"] == "studio"
    assert (await ask(conn, "sky.list"))["current"] == "studio"
    assert (await ask(conn, "sky.set", url="panorama.png"))["sky"] == "panorama.png"
    assert (await ask(conn, "sky.set", faces=["face.png"] * 6))["sky"] == "face.png"
    assert (await ask(conn, "sky.list"))["current"] == "face.png"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "sky.set", "url": "builtin://nowhere"}, "SkyNotFound"),
        ({"type": "sky.set", "url": "stripes.png"}, "TextureLoadFailed"),  # square: no panorama or cube map
        ({"type": "sky.set", "faces": ["face.png"] * 5 + ["stripes.png"]}, "TextureLoadFailed"),  # sizes
        ({"type": "sky.set", "url": "bomb.png"}, "TextureLoadFailed"),
        ({"type": "sky.set", "faces": ["face.png"] * 5 + ["../../../etc/passwd"]}, "ModelSourceRefused"),
        ({"type": "sky.set", "url": "panorama.png", "faces": ["face.png"] * 6}, "BadMessage"),
        ({"type": "sky.set", "faces": ["face.png"] * 3}, "BadMessage"),
    ]
    for message, code in cases:
        assert (await refused(conn, message)).code == code, message
    assert (await ask(conn, "sky.list"))["current"] == "face.png"  # refusals change nothing
    await conn.wait_frames(conn.frames_received + 2, timeout=20)  # still streaming


async def test_raycast_and_volume_queries(conn: RenderConnection) -> None:
    box = await entity_named(conn, "RedBox")
    ray = await ask(conn, "raycast", origin=[RED_X, 0, 5], direction=[0, 0, -1])
    [hit] = ray["hits"]
    assert (ray["type"], hit["entity"], hit["part"]) == ("raycast.result", box["id"], 0)
    assert close(hit["position"], (RED_X, 0, 0.5))
    assert math.isclose(hit["distance"], 4.5, abs_tol=1e-5)
    found = await ask(conn, "query.box", min=[RED_X - 0.1, -0.1, -0.1], max=[RED_X + 0.1, 0.1, 0.1])
    assert found["type"] == "query.result"
    assert found["entities"] == []  # inside the cube: no triangle meets the box
    found = await ask(conn, "query.sphere", center=[RED_X, 0, 0], radius=1.0)
    assert found["entities"] == [box["id"]]
    await ask(conn, "entity.set", entity=box["id"], enabled=False)
    assert (await ask(conn, "raycast", origin=[RED_X, 0, 5], direction=[0, 0, -1]))["hits"] == []
    bad = {"type": "raycast", "origin": [0, 0, 0], "direction": [0, 0, 0]}
    assert (await refused(conn, bad)).code == "BadMessage"


async def test_bounds_per_connection_and_per_answer(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small bounds for this test (the server runs in this process): each client gets them afresh.
    monkeypatch.setattr(scene_entities, "MAX_CREATED_ENTITIES", 2)
    monkeypatch.setattr(scene_context, "MAX_TEXTURE_PIXELS", 300)  # stripes.png is 256 pixels
    for _ in range(2):
        await until(lambda: server.server.client is None, "the previous client to be gone")
        async with await connect("127.0.0.1", server.port, server.token()) as c:
            await ask(c, "entity.create")
            await ask(c, "entity.create")
            assert (await refused(c, {"type": "entity.create"})).code == "TooManyEntities"
            await ask(c, "texture.load", url="stripes.png")
            assert (
                await refused(c, {"type": "texture.load", "url": "stripes.png"})
            ).code == "TextureLoadFailed"
    monkeypatch.setattr(scene_api, "MAX_ANSWER_BYTES", 1000)
    await until(lambda: server.server.client is None, "the previous client to be gone")
    async with await connect("127.0.0.1", server.port, server.token()) as c:
        too_big = await refused(c, {"type": "scene.get"})
        assert (too_big.code, "offset and limit" in too_big.message) == ("BadMessage", True)
        assert len((await ask(c, "scene.get", limit=1))["entities"]) == 1


async def test_a_bug_costs_the_request_not_the_session(
    conn: RenderConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(ctx: Any, request: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setitem(HANDLERS, "sky.list", broken)
    failed = await refused(conn, {"type": "sky.list"})
    assert (failed.code, "a bug" in failed.message) == ("InternalError", True)
    assert (await ask(conn, "outline.set"))["type"] == "outline"
    await conn.wait_frames(conn.frames_received + 2, timeout=20)


async def test_the_next_client_starts_from_a_clean_slate(server: LiveServer) -> None:
    await until(lambda: server.server.client is None, "the previous client to be gone")
    async with await connect("127.0.0.1", server.port, server.token()) as first:
        box = await entity_named(first, "RedBox")
        await ask(first, "component.create", entity=box["id"], component="PointLight")
        red = (await ask(first, "material.list", entity=box["id"]))["materials"][0]
        await ask(first, "material.set", material=red["id"], properties={"albedoColor": [0, 0, 0, 1]})
        await ask(first, "entity.create", name="Extra")
        await ask(first, "texture.load", url="stripes.png")
        await ask(first, "sky.set", url="builtin://night")
    await until(lambda: server.server.client is None, "the client to be gone")
    async with await connect("127.0.0.1", server.port, server.token()) as second:
        entities = (await ask(second, "scene.get"))["entities"]
        assert all(e["components"] == [] for e in entities)
        assert "Extra" not in {e["name"] for e in entities}
        box = next(e for e in entities if e["name"] == "RedBox")
        original = (await ask(second, "material.list", entity=box["id"]))["materials"][0]
        assert original["albedoColor"] == [1, 0, 0, 1]
        assert (await ask(second, "outline.set"))["color"] == [1, 0.6, 0]
        assert (await ask(second, "sky.list"))["current"] == "default"
