"""The scene API of ``openrr.client`` (``conn.scene``, protocol v2) against a real render server.

One server for the module (``tests.render.live``, the two-node model: "Scene" holding "RedBox", a unit
cube at x = -1.5, and "BlueSphere", radius 0.6 at x = 1.5, y = 0.1); each test connects its own client,
so each starts from the session's clean slate. What the mapping puts on the wire is
``test_scene_mapping.py``'s; here the server answers.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest
import pytest_asyncio

from openrr.client.connection import RenderConnection, connect
from openrr.client.entities import SCENE_PAGE, Entity
from openrr.client.errors import RenderRequestError
from openrr.client.scene import RemoteScene
from openrr.protocol.scene_api import MAX_CUT_PLANES
from tests.render import fixtures
from tests.render.live import LiveServer, live_server

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    models = tmp_path_factory.mktemp("scene-api")
    fixtures.two_node_glb(models)
    fixtures.textured_gltf(models)  # stripes.png, 16 x 16
    async with live_server(models, models=("two_nodes.glb",)) as server:
        yield server


async def until_free(live: LiveServer) -> None:
    """Wait until the server has reset after the previous client (it notices a departure on its own)."""
    for _ in range(400):  # up to 20 s on a loaded machine: a condition, not a timing
        if live.server.client is None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the previous client is still connected")


@pytest_asyncio.fixture(loop_scope="module")
async def conn(live: LiveServer) -> AsyncIterator[RenderConnection]:
    await until_free(live)
    async with await connect("127.0.0.1", live.port, live.token(), timeout=30.0) as connection:
        yield connection


async def by_name(scene: RemoteScene) -> dict[str, Entity]:
    return {e.name: e for e in await scene.entities()}


def close(actual: Sequence[float], expected: Sequence[float], tol: float = 1e-4) -> bool:
    return all(math.isclose(a, e, abs_tol=tol) for a, e in zip(actual, expected, strict=True))


async def test_entities_are_created_moved_reparented_and_destroyed(conn: RenderConnection) -> None:
    scene = conn.scene
    entities = await by_name(scene)
    assert {"Scene", "RedBox", "BlueSphere"} <= entities.keys()
    root, box = entities["Scene"], entities["RedBox"]
    assert box.parent == root.id
    assert box.state.mesh
    assert box.state.parts == 1
    assert close(box.world.position, (fixtures.RED_X, 0, 0))
    bounds = await box.query_world_bounds()
    assert bounds is not None
    assert close(bounds.min, (-2.0, -0.5, -0.5))
    assert close(bounds.max, (-1.0, 0.5, 0.5))
    assert await box.query_metadata() == {}  # the glb kept no object metadata
    assert box in await root.children()

    marker = await scene.create_entity("marker", parent=root, position=(0, 2, 0))
    assert (marker.name, marker.parent, marker.components) == ("marker", root.id, ())
    assert close(marker.world.position, (0, 2, 0))
    assert await marker.query_world_bounds() is None  # nothing under it has geometry
    assert marker.id not in {e.id for e in entities.values()}

    await box.set(parent=marker, position=(0, 0, 0), scale=(2, 2, 2))
    assert box.parent == marker.id
    assert close(box.world.position, (0, 2, 0))
    assert close(box.scale, (2, 2, 2))
    moved = await marker.query_world_bounds()
    assert moved is not None
    assert close(moved.min, (-1, 1, -1))
    assert close(moved.max, (1, 3, 1))
    local = await box.query_local_bounds()
    assert local is not None
    assert close(local.min, (-0.5, -0.5, -0.5))  # the box's own space: its scale not applied

    await marker.set(enabled=False)
    assert not marker.enabled
    assert (await scene.entity(box.id)) == box

    assert sorted(await marker.destroy()) == sorted([marker.id, box.id])
    with pytest.raises(RenderRequestError) as gone:
        await box.refresh()
    assert (gone.value.code, gone.value.request_type) == ("EntityNotFound", "entity.get")
    assert "RedBox" not in await by_name(scene)


async def test_a_cut_plane_component_round_trip(conn: RenderConnection) -> None:
    scene = conn.scene
    plane = await scene.create_entity("cut", position=(0, 0, 0))
    created = await plane.create_component(
        "CutPlane", normal="-X", fade_color=(1, 0, 0, 1), fade_length=0.1, object_filter_mask=3
    )
    assert (created.entity, created.type) == (plane.id, "CutPlane")
    assert created.properties["normal"] == "-X"
    assert close(created.properties["fade_color"], (1, 0, 0, 1))
    assert created.properties["object_filter_mask"] == 3

    changed = await plane.set_component("CutPlane", fade_length=0.25, normal=(0, 1, 0))
    read = await plane.get_component("CutPlane")
    assert read == changed
    assert math.isclose(read.properties["fade_length"], 0.25)
    assert close(read.properties["normal"], (0, 1, 0))
    assert close(read.properties["fade_color"], (1, 0, 0, 1))  # what was not given stays
    assert "CutPlane" in (await plane.refresh()).components

    with pytest.raises(RenderRequestError) as twice:
        await plane.create_component("CutPlane")
    assert twice.value.code == "ComponentExists"
    await plane.destroy_component("CutPlane")
    with pytest.raises(RenderRequestError) as missing:
        await plane.get_component("CutPlane")
    assert missing.value.code == "ComponentNotFound"


async def test_a_state_override_is_set_and_read_back(conn: RenderConnection) -> None:
    entities = await by_name(conn.scene)
    root, sphere = entities["Scene"], entities["BlueSphere"]
    state = await root.set_state(hidden=True, tint=True, tint_color=(0, 1, 0, 0.5))
    assert state.type == "HierarchicalStateOverride"
    assert state.properties["hidden"] == "ForceOn"
    assert close(state.properties["tint_color"], (0, 1, 0, 0.5))
    child = await sphere.set_state(hidden=False)
    assert child.properties["hidden"] == "ForceOff"
    again = await root.set_state(hidden=None)  # exists now: changed, not created again
    assert again.properties["hidden"] == "InheritFromParent"
    assert again.properties["tint"] == "ForceOn"


async def test_a_material_change_shows_in_the_video(conn: RenderConnection) -> None:
    scene = conn.scene
    box = (await by_name(scene))["RedBox"]
    await conn.wait_frames(3)
    red_before = _share(conn, red=True)
    assert red_before > 0.001, "the red box is in view"

    listed = await box.materials()
    assert list(listed.parts) == [0]
    red = listed.of(0)
    assert (red.name, red.kind) == ("Red", "pbr")
    assert red.albedo_color is not None
    assert close(red.albedo_color, (1, 0, 0, 1), 1e-3)
    green = await scene.set_material(red, albedo_color=(0, 1, 0, 1), roughness=0.3)
    assert (green.id, green.albedo_color, green.roughness) == (red.id, (0, 1, 0, 1), 0.3)
    assert await scene.material(red.id) == green

    async for _frame in conn.frames(90):  # frames encoded before the change may still be on their way
        if _share(conn, red=True) < red_before / 10:
            break
    assert _share(conn, red=True) < red_before / 10, "the red is gone"
    assert _share(conn, red=False) > red_before / 4, "the box is green where it was red"

    flat = await scene.create_material("color", "flat blue", albedo_color=(0, 0, 1, 1))
    assert (flat.kind, flat.name) == ("color", "flat blue")
    assigned = await box.set_material(0, flat)
    assert assigned.of(0).id == flat.id
    with pytest.raises(RenderRequestError) as no_part:
        await box.set_material(5, flat)
    assert no_part.value.code == "PartNotFound"
    with pytest.raises(RenderRequestError) as no_material:
        await scene.material(10_000)
    assert no_material.value.code == "MaterialNotFound"


async def test_a_texture_is_loaded_and_put_on_a_material(conn: RenderConnection) -> None:
    scene = conn.scene
    stripes = await scene.load_texture("stripes.png")
    assert (stripes.width, stripes.height) == (16, 16)
    material = await scene.create_material(albedo_texture=stripes.id, uv_scale=(2, 2))
    assert (material.kind, material.albedo_texture, material.uv_scale) == ("pbr", stripes.id, (2, 2))
    plain = await scene.set_material(material, albedo_texture=None)  # None removes the texture
    assert plain.albedo_texture is None
    with pytest.raises(RenderRequestError) as outside:
        await scene.load_texture("../../../etc/passwd")
    assert outside.value.code == "ModelSourceRefused"


def _share(conn: RenderConnection, red: bool) -> float:
    """The share of the newest frame's pixels that are clearly red (or clearly green)."""
    image = conn.latest_image()
    assert image is not None
    rgb = image.astype(np.int32)
    main, other = (rgb[..., 0], rgb[..., 1]) if red else (rgb[..., 1], rgb[..., 0])
    mask = (main > 120) & (other < 60) & (rgb[..., 2] < 60)
    return float(mask.mean())


async def test_a_ray_cast_hits_the_model(conn: RenderConnection) -> None:
    scene = conn.scene
    entities = await by_name(scene)
    box, sphere = entities["RedBox"], entities["BlueSphere"]
    hits = await scene.raycast((fixtures.RED_X, 0, 5), (0, 0, -1))
    assert len(hits) == 1
    hit = hits[0]
    assert (hit.entity, hit.part) == (box.id, 0)
    assert close(hit.position, (fixtures.RED_X, 0, 0.5))
    assert close(hit.normal, (0, 0, 1))
    assert math.isclose(hit.distance, 4.5, abs_tol=1e-4)

    along = await scene.raycast((-5, 0, 0), (1, 0, 0), mode="all", max_hits=8)
    assert along[0].entity == box.id
    assert math.isclose(along[0].distance, 3.0, abs_tol=1e-4)
    assert sphere.id in {h.entity for h in along}
    assert [h.distance for h in along] == sorted(h.distance for h in along)
    assert await scene.raycast((0, 5, 0), (0, 1, 0)) == []

    assert await scene.query_box((1, -1, -1), (2, 1, 1)) == [sphere.id]
    # volumes find the triangles they meet: a small sphere on the box's front face, not inside the box
    assert await scene.query_sphere((fixtures.RED_X, 0, 0.5), 0.1) == [box.id]
    assert await scene.query_sphere((fixtures.RED_X, 0, 0), 0.1) == []

    await box.set_state(hidden=True)
    hidden = await scene.raycast((fixtures.RED_X, 0, 5), (0, 0, -1))
    assert hidden == []


async def test_settings_and_sky(conn: RenderConnection) -> None:
    scene = conn.scene
    outline = await scene.set_outline(color=(1, 1, 0), pulse_rate=2.0)
    assert close(outline.color, (1, 1, 0))
    assert outline.pulse_rate == 2.0
    assert 0 <= outline.pulse_intensity <= 1
    shell = await scene.set_shell(opacity=0.3)
    assert math.isclose(shell.opacity, 0.3)
    skies = await scene.skies()
    assert "default" in skies.skies
    other = next(name for name in skies.skies if name != "default")
    await scene.set_sky(f"builtin://{other}")
    assert (await scene.skies()).current == other
    with pytest.raises(RenderRequestError) as no_sky:
        await scene.set_sky("builtin://no-such-sky")
    assert no_sky.value.code == "SkyNotFound"


async def test_errors_carry_the_servers_codes(conn: RenderConnection) -> None:
    scene = conn.scene
    with pytest.raises(RenderRequestError) as missing:
        await scene.entity(10_000)
    assert (missing.value.code, missing.value.request_type) == ("EntityNotFound", "entity.get")
    root = (await by_name(scene))["Scene"]
    with pytest.raises(RenderRequestError) as cycle:
        await root.set(parent=(await by_name(scene))["RedBox"])
    assert cycle.value.code == "BadMessage"

    planes = [await scene.create_entity(f"plane{i}") for i in range(MAX_CUT_PLANES + 1)]
    for plane in planes[:MAX_CUT_PLANES]:
        await plane.create_component("CutPlane", normal="Y")
    with pytest.raises(RenderRequestError) as too_many:
        await planes[-1].create_component("CutPlane", normal="Y")
    assert too_many.value.code == "TooManyCutPlanes"
    # a disabled plane does not count
    await planes[-1].create_component("CutPlane", normal="Y", enabled=False)
    assert (await conn.stats())["type"] == "stats"  # and the server keeps serving


async def test_a_scene_larger_than_one_answer_is_read_page_by_page(conn: RenderConnection) -> None:
    scene = conn.scene
    before = await scene.entities()
    holder = await scene.create_entity("holder")
    names = [f"{'n' * 200}{i}" for i in range(2 * SCENE_PAGE)]  # long names: about 1.2 KB an entity
    for name in names:
        await scene.create_entity(name, parent=holder)
    entities = await scene.entities()
    assert len(entities) == len(before) + 1 + len(names)
    assert [e.name for e in entities if e.parent == holder.id] == names
    assert len(await holder.children()) == len(names)
