"""The scene API through a real render server, checked on the decoded video: each feature changes the
pixels it should, and the next client starts from a clean slate.

The model is ``fixtures.two_node_glb``: a root "Scene" holding "RedBox" (unit cube at x = -1.5) and
"BlueSphere" (radius 0.6 at x = +1.5). The camera looks down -Z from z = 6 with a 60° vertical field of
view, at 320x180: ``project`` turns a world point into a pixel. The video is H.264, so colours are
compared by which channel dominates and by coarse brightness, never exactly.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from numpy.typing import NDArray

from openrr.client.connection import RenderConnection, connect
from openrr.client.errors import RenderRequestError
from tests.render import fixtures
from tests.render.live import LiveServer, live_server

EYE_Z = 6.0
FOCAL = 90.0 / math.tan(math.radians(30.0))  # pixels per unit at distance 1 (180 px tall, 60° fov)


def project(x: float, y: float, z: float = 0.5) -> tuple[int, int]:
    """The pixel (column, row) of a world point, for the camera of ``look_front``."""
    depth = EYE_Z - z
    return round(160 + FOCAL * x / depth), round(90 - FOCAL * y / depth)


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """One server for the module: each test's client starts from the clean slate the last one left."""
    root = tmp_path_factory.mktemp("models")
    fixtures.two_node_glb(root)
    async with live_server(root, models=("two_nodes.glb",)) as live:
        yield live


@pytest_asyncio.fixture(loop_scope="module")
async def conn(server: LiveServer) -> AsyncIterator[RenderConnection]:
    async with await connect_next(server) as c:
        await look_front(c)
        yield c


async def connect_next(server: LiveServer) -> RenderConnection:
    """A client, once the server has seen the previous one leave (it serves one client at a time)."""
    for _ in range(400):  # up to 20 s on a loaded machine: a condition, not a timing
        if server.server.client is None:
            break
        await asyncio.sleep(0.05)
    return await connect("127.0.0.1", server.port, server.token())


async def look_front(conn: RenderConnection) -> None:
    await conn.request(
        {"type": "camera.set", "position": [0, 0, EYE_Z], "orientation": [0, 0, 0, 1], "fov": 60}
    )
    await settle(conn)


async def settle(conn: RenderConnection) -> NDArray[np.uint8]:
    """The picture once every change acknowledged so far is in it: the server renders at most one frame
    ahead, so a few frames decoded after the acknowledgement all show the change."""
    await conn.wait_frames(conn.frames_received + 6, timeout=20)
    image = conn.latest_image()
    assert image is not None
    return image


async def v2(conn: RenderConnection, kind: str, **fields: Any) -> dict[str, Any]:
    return await conn.request({"v": 2, "type": kind, **fields}, timeout=20)


async def override(conn: RenderConnection, entity: int, **flags: str) -> None:
    """Give ``entity`` a state override with ``flags`` (``hidden="ForceOn"``, ...)."""
    await v2(conn, "component.create", entity=entity, component="HierarchicalStateOverride", properties=flags)


async def entity_id(conn: RenderConnection, name: str) -> int:
    scene = await v2(conn, "scene.get")
    return next(int(e["id"]) for e in scene["entities"] if e["name"] == name)


def at(image: NDArray[np.uint8], point: tuple[int, int], radius: int = 1) -> NDArray[np.float64]:
    """The mean colour of a small square around a pixel."""
    col, row = point
    patch = image[row - radius : row + radius + 1, col - radius : col + radius + 1]
    return np.asarray(patch.reshape(-1, 3).mean(axis=0), dtype=np.float64)


def dominant(colour: NDArray[np.float64]) -> str:
    return "rgb"[int(np.argmax(colour))] if colour.max() - np.sort(colour)[1] > 30 else "none"


RED_CENTRE = project(fixtures.RED_X, 0.0)
BLUE_CENTRE = project(fixtures.BLUE_X, fixtures.BLUE_Y, 0.6)


async def test_the_model_shows_before_any_change(conn: RenderConnection) -> None:
    image = await settle(conn)
    assert dominant(at(image, RED_CENTRE)) == "r"
    assert dominant(at(image, BLUE_CENTRE)) == "b"


async def test_a_cut_plane_removes_its_positive_side_and_fades_at_the_cut(conn: RenderConnection) -> None:
    root = await entity_id(conn, "Scene")
    # A plane through the origin with normal +X: the sphere (x > 0) is cut away, the box stays.
    await v2(conn, "component.create", entity=root, component="CutPlane", properties={"normal": "X"})
    image = await settle(conn)
    background = at(image, project(0.0, 1.5))
    assert dominant(at(image, RED_CENTRE)) == "r"
    assert np.abs(at(image, BLUE_CENTRE) - background).max() < 25, "the sphere is gone"
    # A second plane through the box's centre, its fade green: the front face turns green at the cut.
    box = await entity_id(conn, "RedBox")
    await v2(
        conn,
        "component.create",
        entity=box,
        component="CutPlane",
        properties={"normal": "X", "fadeColor": [0, 1, 0, 1], "fadeLength": 0.25},
    )
    image = await settle(conn)
    near_cut = at(image, project(fixtures.RED_X - 0.05, 0.0))
    assert dominant(near_cut) == "g"
    assert dominant(at(image, project(fixtures.RED_X - 0.4, 0.0))) == "r"  # beyond the fade length


async def test_hidden_is_inherited_and_a_child_can_force_itself_visible(conn: RenderConnection) -> None:
    root, sphere = await entity_id(conn, "Scene"), await entity_id(conn, "BlueSphere")
    await override(conn, root, hidden="ForceOn")
    await override(conn, sphere, hidden="ForceOff")
    image = await settle(conn)
    background = at(image, project(0.0, 1.5))
    assert np.abs(at(image, RED_CENTRE) - background).max() < 25, "the box inherits hidden"
    assert dominant(at(image, BLUE_CENTRE)) == "b"


async def test_the_outline_lines_the_selected_entity_only(conn: RenderConnection) -> None:
    box = await entity_id(conn, "RedBox")
    await v2(conn, "outline.set", color=[0, 1, 0], pulseRate=0, pulseIntensity=0)
    await override(conn, box, selected="ForceOn")
    image = await settle(conn)
    left_edge_col, _ = project(fixtures.RED_X - 0.5, 0.0)
    outside = at(image, (left_edge_col - 2, RED_CENTRE[1]), radius=0)
    assert dominant(outside) == "g", outside
    assert dominant(at(image, RED_CENTRE)) == "r"
    assert dominant(at(image, project(0.0, 1.5))) != "g"
    sphere_left, _ = project(fixtures.BLUE_X - 0.6, fixtures.BLUE_Y, 0.0)
    assert dominant(at(image, (sphere_left - 2, BLUE_CENTRE[1]), radius=0)) != "g"


async def test_see_through_shows_what_is_behind(conn: RenderConnection) -> None:
    box = await entity_id(conn, "RedBox")
    # Move the box in front of the sphere, three times its size.
    transform = [3, 0, 0, 0, 0, 3, 0, 0, 0, 0, 3, 0, fixtures.BLUE_X, fixtures.BLUE_Y, 2.0, 1]
    await v2(conn, "entity.set", entity=box, transform=transform)
    image = await settle(conn)
    assert dominant(at(image, BLUE_CENTRE)) == "r", "the box hides the sphere"
    await override(conn, box, seeThrough="ForceOn")
    image = await settle(conn)
    assert dominant(at(image, BLUE_CENTRE)) == "b", "the sphere shows through"


async def test_a_material_change_turns_the_right_part_the_right_colour(conn: RenderConnection) -> None:
    box = await entity_id(conn, "RedBox")
    listing = await v2(conn, "material.list", entity=box)
    material = listing["parts"][0]["material"]
    await v2(conn, "material.set", material=material, properties={"albedoColor": [0, 1, 0, 1]})
    image = await settle(conn)
    assert dominant(at(image, RED_CENTRE)) == "g"
    assert dominant(at(image, BLUE_CENTRE)) == "b"


async def test_a_point_light_brightens_the_side_it_faces(conn: RenderConnection) -> None:
    # A lamp to the right of the sphere: its right side gains much more light than its left.
    right = project(fixtures.BLUE_X + 0.45, fixtures.BLUE_Y, 0.3)
    left = project(fixtures.BLUE_X - 0.45, fixtures.BLUE_Y, 0.3)
    image = await settle(conn)
    before = at(image, right).sum(), at(image, left).sum()
    lamp = await v2(
        conn, "entity.create", name="lamp", position=[fixtures.BLUE_X + 1.2, fixtures.BLUE_Y, 0.3]
    )
    await v2(
        conn,
        "component.create",
        entity=lamp["entity"]["id"],
        component="PointLight",
        properties={"color": [1, 1, 1], "intensity": 2, "range": 0},
    )
    image = await settle(conn)
    gain_right, gain_left = at(image, right).sum() - before[0], at(image, left).sum() - before[1]
    assert gain_right > 60, (before, gain_right)
    assert gain_right > gain_left + 40, (gain_right, gain_left)


async def test_a_sky_changes_the_background_and_the_reflections(conn: RenderConnection) -> None:
    skies = (await v2(conn, "sky.list"))["skies"]
    assert len(skies) >= 6
    first, second = [name for name in skies if name != "default"][:2]
    await v2(conn, "sky.set", url=f"builtin://{first}")
    image_a = await settle(conn)
    await v2(conn, "sky.set", url=f"builtin://{second}")
    image_b = await settle(conn)
    corner = (10, 10)
    assert np.abs(at(image_a, corner) - at(image_b, corner)).max() > 20, "the background"
    assert np.abs(at(image_a, BLUE_CENTRE) - at(image_b, BLUE_CENTRE)).max() > 8, "the sphere's lighting"
    with pytest.raises(RenderRequestError) as refused:
        await v2(conn, "sky.set", url="builtin://no-such-sky")
    assert refused.value.code == "SkyNotFound"


async def test_the_next_client_starts_from_a_clean_slate(server: LiveServer) -> None:
    async with await connect_next(server) as first:
        await look_front(first)
        box = await entity_id(first, "RedBox")
        await override(first, box, hidden="ForceOn")
        await v2(first, "entity.create", name="extra")
    async with await connect_next(server) as second:
        await look_front(second)
        image = await settle(second)
        assert dominant(at(image, RED_CENTRE)) == "r"
        names = {e["name"] for e in (await v2(second, "scene.get"))["entities"]}
        assert "extra" not in names
        box = await entity_id(second, "RedBox")
        assert (await v2(second, "entity.get", entity=box))["entity"]["components"] == []
