"""The scene API's client side without a server: what each method puts on the wire (checked by the
server's own parser, ``protocol.datachannel.parse``), how answers become Python values, and how errors
reach the caller.

The connection is a fake that builds and matches requests with the client's real ``RequestTable`` and
answers each with the next scripted message; the live tests (``test_scene_api.py``) run the same API
against a render server.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from openrr.client.entities import SCENE_PAGE, Entity
from openrr.client.errors import RenderRequestError
from openrr.client.requests import RequestTable
from openrr.client.scene import RemoteScene
from openrr.client.scene_fields import camel, component_properties, material_properties, snake
from openrr.client.scene_types import Bounds, EntityMaterials, EntityState, Material, RayHit
from openrr.protocol import datachannel, scene_api

IDENTITY = {
    "position": [0, 0, 0],
    "rotation": [0, 0, 0, 1],
    "scale": [1, 1, 1],
    "matrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
}


def entity_json(entity: int, parent: int | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": entity,
        "name": f"e{entity}",
        "parent": parent,
        "enabled": True,
        "mesh": False,
        "parts": 0,
        "components": [],
        "local": IDENTITY,
        "world": IDENTITY,
        **fields,
    }


def state(entity: int, parent: int | None = None) -> EntityState:
    return EntityState.from_json(entity_json(entity, parent))


class ScriptedServer:
    """Answers each request with the next scripted message; keeps what was sent, as the server parsed it."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = deque(answers)
        self.sent: list[dict[str, Any]] = []
        self.parsed: list[Any] = []
        self._table = RequestTable()

    async def request(self, msg: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        request = self._table.build(msg)
        self.parsed.append(datachannel.parse(request.text))  # what the render server would read
        self.sent.append(request.body)
        answer = {"v": request.body["v"], **self.answers.popleft(), "re": request.id}

        def send(_text: str) -> None:
            self._table.deliver(answer, 0.0)

        reply, _ = await self._table.exchange(request, send, 1.0, None)
        return reply


def test_every_property_name_maps_both_ways() -> None:
    models: list[type[BaseModel]] = [*scene_api.COMPONENT_PROPERTIES.values(), scene_api.MaterialProperties]
    for model in models:
        for wire in model.model_fields:
            assert camel(snake(wire)) == wire
    assert camel("use_cut_plane_filter_mask") == "useCutPlaneFilterMask"
    assert snake("metallicRoughnessTexture") == "metallic_roughness_texture"


def test_state_overrides_take_booleans_and_none() -> None:
    wire = component_properties(
        "HierarchicalStateOverride",
        {
            "hidden": True,
            "see_through": False,
            "selected": None,
            "tint": "ForceOn",
            "tint_color": np.array([1.0, 0.0, 0.0, 0.5]),
            "cut_plane_filter_mask": 3,
        },
    )
    assert wire == {
        "hidden": "ForceOn",
        "seeThrough": "ForceOff",
        "selected": "InheritFromParent",
        "tint": "ForceOn",
        "tintColor": [1.0, 0.0, 0.0, 0.5],
        "cutPlaneFilterMask": 3,
    }
    with pytest.raises(ValueError, match="hidden must be 'ForceOn'"):
        component_properties("HierarchicalStateOverride", {"hidden": "yes"})


def test_unknown_names_are_refused_in_python_terms() -> None:
    with pytest.raises(ValueError, match=r"no property 'fade_colour'.*fade_color"):
        component_properties("CutPlane", {"fade_colour": (1, 0, 0, 1)})
    with pytest.raises(ValueError, match="unknown component type 'Cutplane'"):
        component_properties("Cutplane", {})
    with pytest.raises(ValueError, match="no property 'albedo'"):
        material_properties({"albedo": (1, 0, 0, 1)})
    # a texture given as None is sent as null: it removes the texture
    assert material_properties({"albedo_texture": None, "uv_scale": (2, 2)}) == {
        "albedoTexture": None,
        "uvScale": [2, 2],
    }


async def test_scene_requests_are_v2_and_v1_requests_stay_v1() -> None:
    server = ScriptedServer({"type": "entity", "entity": entity_json(7, parent=1)})
    scene = RemoteScene(server)
    marker = await scene.create_entity("marker", parent=1, position=(0, 1, 0), rotation=(0, 0, 0, 1))
    assert server.sent[0] == {
        "type": "entity.create",
        "name": "marker",
        "parent": 1,
        "position": [0.0, 1.0, 0.0],
        "rotation": [0.0, 0.0, 0.0, 1.0],
        "v": 2,
        "id": 1,
    }
    assert isinstance(server.parsed[0], scene_api.EntityCreate)
    assert (marker.id, marker.name, marker.parent, marker.position) == (7, "e7", 1, (0.0, 0.0, 0.0))
    assert RequestTable().build({"type": "camera.orbit", "yaw": 5}).body["v"] == 1


async def test_entity_set_keeps_the_parent_unless_told() -> None:
    server = ScriptedServer(
        {"type": "entity", "entity": entity_json(7, parent=1, enabled=False)},
        {"type": "entity", "entity": entity_json(7, parent=None)},
        {"type": "entity", "entity": entity_json(7, parent=2)},
        {"type": "entity", "entity": entity_json(7, parent=2)},
    )
    entity = Entity(server, state(7, parent=1))
    await entity.set(enabled=False, scale=(2, 2, 2))
    assert not entity.enabled
    await entity.set(parent=None)
    assert entity.parent is None
    await entity.set(parent=Entity(server, state(2)))
    assert entity.parent == 2
    matrix = np.eye(4)
    matrix[:3, 3] = (1, 2, 3)  # numpy's row-major 4x4: translation in the last column
    await entity.set(transform=matrix)
    assert server.sent[-1]["transform"][12:15] == [1.0, 2.0, 3.0]  # column-major on the wire
    first, root, moved, _placed = server.parsed
    assert not first.reparent
    assert first.scale == (2.0, 2.0, 2.0)
    assert root.reparent
    assert root.parent is None
    assert moved.parent == 2


async def test_bad_vectors_are_refused_before_anything_is_sent() -> None:
    server = ScriptedServer()
    scene = RemoteScene(server)
    with pytest.raises(ValueError, match="direction must have 3 components, not 2"):
        await scene.raycast((0, 0, 0), (0, 1))
    with pytest.raises(ValueError, match="origin must be finite"):
        await scene.raycast((0, float("nan"), 0), (0, 0, 1))
    with pytest.raises(ValueError, match="give either url or faces"):
        await scene.set_sky()
    # ranges are the protocol models' to check, still before sending
    with pytest.raises(ValueError, match="roughness"):
        await scene.set_material(0, roughness=2.0)
    with pytest.raises(ValueError, match="maxHits"):
        await scene.raycast((0, 0, 0), (0, 0, 1), mode="all", max_hits=1000)
    assert server.sent == []


async def test_server_errors_raise_with_their_code() -> None:
    server = ScriptedServer({"type": "error", "code": "EntityNotFound", "message": "no entity 99"})
    with pytest.raises(RenderRequestError) as refused:
        await RemoteScene(server).entity(99)
    assert (refused.value.code, refused.value.request_type) == ("EntityNotFound", "entity.get")
    assert "no entity 99" in str(refused.value)


async def test_an_answer_of_the_wrong_type_is_a_bad_answer() -> None:
    server = ScriptedServer({"type": "ack"}, {"type": "bounds", "entity": 1, "space": "world", "min": [0]})
    with pytest.raises(RenderRequestError, match="expected scene, got ack") as bad:
        await RemoteScene(server).entities()
    assert bad.value.code == "BadAnswer"
    with pytest.raises(RenderRequestError, match="not a valid bounds"):
        await Entity(server, state(1)).query_world_bounds()


async def test_set_state_creates_the_component_when_the_entity_has_none() -> None:
    component = {
        "type": "component",
        "entity": 3,
        "component": "HierarchicalStateOverride",
        "properties": {"hidden": "ForceOn", "tintColor": [1, 0, 0, 1]},
    }
    server = ScriptedServer(
        {"type": "error", "code": "ComponentNotFound", "message": "none"}, component, component
    )
    entity = Entity(server, state(3))
    created = await entity.set_state(hidden=True, tint_color=(1, 0, 0, 1))
    assert [m["type"] for m in server.sent] == ["component.set", "component.create"]
    assert server.sent[1]["properties"] == {"hidden": "ForceOn", "tintColor": [1.0, 0.0, 0.0, 1.0]}
    assert created.properties == {"hidden": "ForceOn", "tint_color": [1, 0, 0, 1]}
    await entity.set_state(hidden=False)  # the component exists now: one request
    assert [m["type"] for m in server.sent][2:] == ["component.set"]
    assert server.sent[2]["properties"] == {"hidden": "ForceOff"}


async def test_answers_read_as_python_values() -> None:
    hit = {"entity": 4, "part": 1, "position": [0, 0.5, 0], "normal": [0, 1, 0], "distance": 4.5}
    materials = {
        "type": "materials",
        "entity": 4,
        "parts": [{"part": 0, "material": 10}, {"part": 1, "material": 11}],
        "materials": [
            {"id": 10, "name": "red", "kind": "pbr", "albedoColor": [1, 0, 0, 1], "roughness": 0.5},
            {"id": 11, "name": "flat", "kind": "color", "albedoColor": [0, 0, 1, 1], "alphaMode": "Opaque"},
        ],
    }
    server = ScriptedServer(
        {"type": "raycast.result", "hits": [hit]},
        {"type": "bounds", "entity": 4, "space": "local", "min": None, "max": None},
        materials,
        {"type": "query.result", "entities": [4, 5]},
    )
    scene = RemoteScene(server)
    hits = await scene.raycast((0, 5, 0), (0, -1, 0), mode="all", max_hits=4, max_distance=10)
    assert hits == [RayHit(4, 1, (0.0, 0.5, 0.0), (0.0, 1.0, 0.0), 4.5)]
    assert server.sent[0]["maxHits"] == 4
    assert server.sent[0]["maxDistance"] == 10
    entity = Entity(server, state(4))
    assert await entity.query_local_bounds() is None
    listed = await entity.materials()
    assert isinstance(listed, EntityMaterials)
    assert listed.of(0) == Material(10, "red", "pbr", albedo_color=(1, 0, 0, 1), roughness=0.5)
    assert listed.of(1).alpha_mode == "Opaque"
    assert await scene.query_oriented_box((0, 0, 0), (1, 1, 1), max_results=2) == [4, 5]
    assert server.sent[-1]["halfExtents"] == [1.0, 1.0, 1.0]
    box = Bounds((0, 0, 0), (2, 4, 6))
    assert (box.center, box.size) == ((1, 2, 3), (2, 4, 6))


async def test_the_scene_is_read_page_by_page() -> None:
    def page(first: int, count: int) -> dict[str, Any]:
        entities = [entity_json(i) for i in range(first, first + count)]
        return {"type": "scene", "entities": entities, "total": 60, "offset": first}

    server = ScriptedServer(
        {"type": "error", "code": "BadMessage", "message": "the answer would take 300000 bytes"},
        page(0, 50),
        page(50, 10),
    )
    entities = await RemoteScene(server).entities()
    assert [e.id for e in entities] == list(range(60))
    assert [(m["offset"], m["limit"]) for m in server.sent] == [(0, SCENE_PAGE), (0, 50), (50, 50)]
