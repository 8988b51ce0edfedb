"""Spatial queries on Embree BVHs: ray casts (closest, any, all), volume queries, states, and the pick.

Expected answers come from the geometry itself: slab arithmetic for boxes, and a brute-force numpy ray
caster over the mesh moved into world space for the sphere and the rotated, non-uniformly scaled
instance.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh

from openrr.model.components import CutPlane, StateFlag, StateOverride
from openrr.model.loader import load_model
from openrr.model.mesh import Mesh, Primitive
from openrr.model.scene import Scene
from openrr.protocol.scene_api import QueryBox, QueryOrientedBox, QuerySphere, RayCast
from openrr.render import spatial
from openrr.render.camera import Camera, quat_from_axis_angle, quat_to_matrix
from openrr.render.scene_queries import answer_query
from openrr.render.session_models import ModelError
from tests.render import fixtures

Hits = list[dict[str, Any]]


def mesh_of(shape: trimesh.Trimesh, name: str = "m") -> Mesh:
    return Mesh(name, (Primitive(shape.vertices, shape.faces),))


def cube() -> Mesh:
    return mesh_of(trimesh.creation.box(extents=(1.0, 1.0, 1.0)), "cube")


def moved(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = (x, y, z)
    return matrix


def cast(
    scene: Scene, origin: tuple[float, float, float], direction: tuple[float, float, float], **kw: object
) -> Hits:
    kind, answer = answer_query(scene, RayCast(type="raycast", origin=origin, direction=direction, **kw))
    assert kind == "raycast.result"
    hits: Hits = answer["hits"]
    return hits


def found(scene: Scene, request: QueryBox | QuerySphere | QueryOrientedBox) -> list[int]:
    kind, answer = answer_query(scene, request)
    assert kind == "query.result"
    entities: list[int] = answer["entities"]
    return entities


def reference_hit(
    shape: trimesh.Trimesh, world: np.ndarray, origin: np.ndarray, direction: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The nearest hit and its face normal, by brute force (Möller-Trumbore in float64 over every
    triangle of the mesh moved into world space, no Embree)."""
    corners = shape.vertices[shape.faces] @ world[:3, :3].T + world[:3, 3]  # (T, 3, 3)
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    p = np.cross(direction, e2)
    det = np.einsum("tk,tk->t", e1, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = origin - corners[:, 0]
        u = np.einsum("tk,tk->t", s, p) / det
        q = np.cross(s, e1)
        v = (q @ direction) / det
        t = np.einsum("tk,tk->t", e2, q) / det
    t = np.where((np.abs(det) > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0), t, np.inf)
    nearest = int(np.argmin(t))
    assert np.isfinite(t[nearest])
    normal = np.cross(e1[nearest], e2[nearest])
    normal /= np.linalg.norm(normal)
    return origin + t[nearest] * direction, normal * (-1.0 if normal @ direction > 0 else 1.0)


# -- ray casts ---------------------------------------------------------------------------------------------


def test_unit_cube_position_normal_distance() -> None:
    scene = Scene()
    box = scene.add_node("box", mesh=cube(), transform=moved(1.0, 2.0, 3.0))
    (hit,) = cast(scene, (1.2, 2.1, -2.0), (0.0, 0.0, 1.0))
    assert hit["entity"] == box.id
    assert hit["part"] == 0
    np.testing.assert_allclose(hit["position"], (1.2, 2.1, 2.5), atol=1e-4)
    np.testing.assert_allclose(hit["normal"], (0.0, 0.0, -1.0), atol=1e-4)
    assert hit["distance"] == pytest.approx(4.5, abs=1e-4)
    # From above at a slant: the top face, normal +Y; the direction need not be unit.
    (hit,) = cast(scene, (1.0, 5.0, 3.0), (0.3, -3.0, 0.0))
    length = math.sqrt(0.3**2 + 9.0)
    t = 2.5 / (3.0 / length)
    np.testing.assert_allclose(hit["position"], (1.0 + 0.3 / length * t, 2.5, 3.0), atol=1e-4)
    np.testing.assert_allclose(hit["normal"], (0.0, 1.0, 0.0), atol=1e-4)
    assert hit["distance"] == pytest.approx(t, abs=1e-4)
    # Missing it, pointing away, or too short.
    assert cast(scene, (1.2, 2.1, -2.0), (0.0, 0.0, -1.0)) == []
    assert cast(scene, (5.0, 2.1, -2.0), (0.0, 0.0, 1.0)) == []
    assert cast(scene, (1.2, 2.1, -2.0), (0.0, 0.0, 1.0), maxDistance=4.4) == []


def test_sphere_matches_a_reference_ray_caster() -> None:
    shape = trimesh.creation.icosphere(subdivisions=4, radius=2.0)
    scene = Scene()
    scene.add_node("sphere", mesh=mesh_of(shape), transform=moved(0.0, 1.0, 0.0))
    rng = np.random.default_rng(7)
    for _ in range(20):
        origin = rng.uniform(-6, 6, 3)
        origin *= 5.0 / np.linalg.norm(origin)
        target = rng.uniform(-1.0, 1.0, 3) + np.array([0.0, 1.0, 0.0])
        direction = target - origin
        (hit,) = cast(scene, tuple(origin), tuple(direction))
        position, normal = reference_hit(
            shape, moved(0.0, 1.0, 0.0), origin, direction / np.linalg.norm(direction)
        )
        np.testing.assert_allclose(hit["position"], position, atol=1e-4)
        np.testing.assert_allclose(hit["normal"], normal, atol=1e-4)
        assert hit["distance"] == pytest.approx(np.linalg.norm(position - origin), abs=1e-4)


def test_rotated_and_scaled_instance() -> None:
    shape = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    mesh = mesh_of(shape)
    world = moved(0.5, -1.0, 2.0)
    world[:3, :3] = quat_to_matrix(quat_from_axis_angle((0.3, 1.0, 0.2), 35.0)) @ np.diag([3.0, 1.0, 0.4])
    scene = Scene()
    plain = scene.add_node("plain", mesh=mesh, transform=moved(0.0, 0.0, -20.0))  # shares the BVH
    placed = scene.add_node("placed", mesh=mesh, transform=world)
    rng = np.random.default_rng(3)
    for _ in range(20):
        origin = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), 12.0])
        target = world[:3, 3] + rng.uniform(-0.3, 0.3, 3)
        direction = (target - origin) / np.linalg.norm(target - origin)
        (hit,) = cast(scene, tuple(origin), tuple(direction))
        assert hit["entity"] == placed.id
        position, normal = reference_hit(shape, world, origin, direction)
        np.testing.assert_allclose(hit["position"], position, atol=1e-4)
        np.testing.assert_allclose(hit["normal"], normal, atol=1e-4)
    assert spatial.prepare([plain.mesh])[0] is spatial.prepare([placed.mesh])[0]  # type: ignore[list-item]


def stacked() -> tuple[Scene, int, int]:
    """Two unit cubes on the z axis, at z = 0 and z = 3."""
    scene = Scene()
    near = scene.add_node("near", mesh=cube())
    far = scene.add_node("far", mesh=cube(), transform=moved(z=3.0))
    return scene, near.id, far.id


def test_closest_any_all_max_hits_max_distance() -> None:
    scene, near, far = stacked()
    ray = ((0.1, 0.2, -5.0), (0.0, 0.0, 1.0))
    everything = cast(scene, *ray, mode="all")
    assert [(h["entity"], h["distance"]) for h in everything] == [
        (near, 4.5),
        (near, 5.5),
        (far, 7.5),
        (far, 8.5),
    ]
    assert [h["normal"] for h in everything] == [[0.0, 0.0, -1.0]] * 4  # each facing the ray's origin
    assert [h["distance"] for h in cast(scene, *ray, mode="all", maxHits=3)] == [4.5, 5.5, 7.5]
    assert [h["distance"] for h in cast(scene, *ray, mode="all", maxDistance=6.0)] == [4.5, 5.5]
    assert [(h["entity"], h["distance"]) for h in cast(scene, *ray)] == [(near, 4.5)]
    (anything,) = cast(scene, *ray, mode="any")
    assert anything["entity"] in (near, far)
    # From the other side, the far cube is the closest.
    assert [h["entity"] for h in cast(scene, (0.1, 0.2, 9.0), (0.0, 0.0, -1.0))] == [far]
    assert [h["entity"] for h in cast(scene, (0.1, 0.2, 9.0), (0.0, 0.0, -1.0), mode="all", maxHits=2)] == [
        far,
        far,
    ]


def test_hits_name_the_mesh_part() -> None:
    """A mesh of two parts (a cube at z = 0, another at z = 3): each hit says which part it is on."""
    shape = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    upper = shape.vertices + np.array([0.0, 0.0, 3.0])
    parts = (Primitive(shape.vertices, shape.faces), Primitive(upper, shape.faces))
    scene = Scene()
    node = scene.add_node("two", mesh=Mesh("two", parts))
    hits = cast(scene, (0.1, 0.2, -5.0), (0.0, 0.0, 1.0), mode="all")
    assert [(h["entity"], h["part"], h["distance"]) for h in hits] == [
        (node.id, 0, 4.5),
        (node.id, 0, 5.5),
        (node.id, 1, 7.5),
        (node.id, 1, 8.5),
    ]
    assert [h["part"] for h in cast(scene, (0.1, 0.2, 9.0), (0.0, 0.0, -1.0))] == [1]
    assert found(scene, QueryBox(type="query.box", min=(-0.1, -0.1, 2.4), max=(0.1, 0.1, 2.6))) == [node.id]
    assert found(scene, QueryBox(type="query.box", min=(-0.1, -0.1, 1.0), max=(0.1, 0.1, 2.0))) == []


def override(**flags: bool) -> StateOverride:
    return StateOverride(flags={StateFlag(k): v for k, v in flags.items()})


def test_hidden_disabled_and_collision_disabled_are_not_hit() -> None:
    scene = Scene()
    ray = ((0.0, 0.0, -5.0), (0.0, 0.0, 1.0))
    parent = scene.add_node("parent", mesh=cube())
    child = scene.add_node("child", parent=parent.id, mesh=cube(), transform=moved(z=3.0))
    assert [h["entity"] for h in cast(scene, *ray, mode="all", maxHits=2)] == [parent.id, parent.id]
    scene.set_component(parent.id, "HierarchicalStateOverride", override(hidden=True))
    assert cast(scene, *ray) == []  # the child inherits hidden
    scene.set_component(child.id, "HierarchicalStateOverride", override(hidden=False))
    assert [h["entity"] for h in cast(scene, *ray)] == [child.id]
    scene.set_component(parent.id, "HierarchicalStateOverride", override(disableCollision=True))
    scene.remove_component(child.id, "HierarchicalStateOverride")
    assert cast(scene, *ray) == []
    assert found(scene, QueryBox(type="query.box", min=(-5, -5, -5), max=(5, 5, 5))) == []
    # A ForceOff child of a DisableCollision parent is hit again.
    scene.set_component(child.id, "HierarchicalStateOverride", override(disableCollision=False))
    assert [h["entity"] for h in cast(scene, *ray)] == [child.id]
    assert found(scene, QueryBox(type="query.box", min=(-5, -5, -5), max=(5, 5, 5))) == [child.id]
    scene.remove_component(parent.id, "HierarchicalStateOverride")
    parent.visible = False  # ARR's Enabled: the subtree goes, whatever its overrides say
    assert cast(scene, *ray) == []
    parent.visible = True
    assert [h["entity"] for h in cast(scene, *ray)] == [parent.id]


# -- volume queries -------------------------------------------------------------------------------------


def test_box_sphere_and_oriented_box_find_what_they_touch() -> None:
    scene, near, far = stacked()
    box = QueryBox(type="query.box", min=(-0.2, -0.2, 0.4), max=(0.2, 0.2, 2.6))
    assert found(scene, box) == [near, far]
    assert found(scene, box.model_copy(update={"maxResults": 1})) == [near]
    # Inside the near cube, touching no face: no triangle meets the box.
    assert found(scene, QueryBox(type="query.box", min=(-0.2, -0.2, -0.2), max=(0.2, 0.2, 0.2))) == []
    assert found(scene, QueryBox(type="query.box", min=(-0.2, -0.2, 0.6), max=(0.2, 0.2, 2.4))) == []
    sphere = QuerySphere(type="query.sphere", center=(0.0, 0.0, 1.5), radius=0.99)
    assert found(scene, sphere) == []
    assert found(scene, sphere.model_copy(update={"radius": 1.01})) == [near, far]
    assert found(scene, sphere.model_copy(update={"radius": 5.0})) == [near, far]  # wholly inside
    # Near the near cube's edge (0.5, 0.5, z): closer to the edge than to either face's plane distance.
    corner = QuerySphere(type="query.sphere", center=(0.8, 0.8, 0.0), radius=0.4)
    assert found(scene, corner) == []  # 0.424 from the edge
    assert found(scene, corner.model_copy(update={"radius": 0.43})) == [near]
    # A thin box turned 45° about z, 0.57 from the near cube's edge along the diagonal: its AABB overlaps
    # the cube, the box does not until it reaches 0.57 along its turned x axis.
    turned = QueryOrientedBox(
        type="query.orientedBox",
        center=(0.9, 0.9, 0.0),
        halfExtents=(0.05, 1.0, 0.1),
        rotation=tuple(quat_from_axis_angle((0, 0, 1), 45.0)),
    )
    assert found(scene, turned) == []
    assert found(scene, turned.model_copy(update={"halfExtents": (0.6, 1.0, 0.1)})) == [near]


def test_a_big_triangle_crossing_a_small_box() -> None:
    triangle = Mesh("t", (Primitive(np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]]), np.array([[0, 1, 2]])),))
    scene = Scene()
    node = scene.add_node("t", mesh=triangle)
    # No vertex inside, the triangle passes through it.
    assert found(scene, QueryBox(type="query.box", min=(2, 2, -0.1), max=(3, 3, 0.1))) == [node.id]
    # Inside the triangle's bounds, beyond its hypotenuse (x + y > 10): missed.
    assert found(scene, QueryBox(type="query.box", min=(6, 6, -0.1), max=(7, 7, 0.1))) == []
    assert found(scene, QuerySphere(type="query.sphere", center=(6, 6, 0), radius=1.0)) == []
    assert found(scene, QuerySphere(type="query.sphere", center=(6, 6, 0), radius=1.5)) == [node.id]
    assert found(scene, QuerySphere(type="query.sphere", center=(3, 3, 2), radius=1.9)) == []
    assert found(scene, QuerySphere(type="query.sphere", center=(3, 3, 2), radius=2.1)) == [node.id]
    # Scaled along z: a box above the plane stays above it; stretched in x, the triangle reaches it.
    scene.node(node.id).transform = np.diag([2.0, 1.0, 5.0, 1.0])
    assert found(scene, QueryBox(type="query.box", min=(13, 2, -0.1), max=(14, 3, 0.1))) == [node.id]
    assert found(scene, QueryBox(type="query.box", min=(13, 2, 0.1), max=(14, 3, 0.3))) == []


def test_a_new_scene_reuses_the_bvhs_of_the_meshes_it_shares() -> None:
    """As after a reset: the fresh scene copies the preloaded one, meshes shared, and finds their BVHs."""
    first, _, _ = stacked()
    built = spatial.prepare(first.meshes())
    second = Scene()
    second.add_scene(first)
    assert set(map(id, spatial.prepare(second.meshes()))) == set(map(id, built))
    assert [h["entity"] for h in cast(second, (0.1, 0.2, -5.0), (0.0, 0.0, 1.0))] == [second.node("near").id]


def test_a_query_before_its_bvh_is_built_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The builder is held up by a task of the test's own, so the BVH cannot be ready: Busy, then the
    answer once the build ran."""
    scene, near, _ = stacked()
    spatial.index_of(cube())  # the builder thread exists from here on
    builder = spatial._builder
    assert builder is not None
    release = threading.Event()
    builder.submit(release.wait)
    monkeypatch.setattr(spatial, "BUILD_WAIT_S", 0.0)
    ray = RayCast(type="raycast", origin=(0.0, 0.0, -5.0), direction=(0.0, 0.0, 1.0))
    with pytest.raises(ModelError) as err:
        answer_query(scene, ray)
    assert err.value.code == "Busy"
    release.set()
    monkeypatch.setattr(spatial, "BUILD_WAIT_S", 30.0)
    assert [h["entity"] for h in answer_query(scene, ray)[1]["hits"]] == [near]


def test_a_degenerate_orientation_is_a_bad_message() -> None:
    scene, _, _ = stacked()
    request = QueryOrientedBox(
        type="query.orientedBox", center=(0, 0, 0), halfExtents=(1, 1, 1), rotation=(0, 0, 0, 0)
    )
    with pytest.raises(ModelError) as err:
        answer_query(scene, request)
    assert err.value.code == "BadMessage"


def test_many_chunks_of_one_mesh() -> None:
    """A mesh of many chunks: the volume queries cull and batch them, the ray casts find the right one."""
    shape = trimesh.creation.icosphere(subdivisions=6, radius=1.0)  # 81,920 triangles: 3 blocks, 320 chunks
    scene = Scene()
    node = scene.add_node("s", mesh=mesh_of(shape))
    index = spatial.index_of(mesh_of(shape))
    # Every triangle is in exactly one chunk, and inside that chunk's bounds.
    chunks = [index.order[0][a:b] for a, b in zip(index.chunk_start, index.chunk_stop, strict=True)]
    assert sorted(np.concatenate(chunks).tolist()) == list(range(len(shape.faces)))
    for triangles, bounds in zip(chunks, index.chunk_bounds, strict=True):
        corners = shape.vertices[shape.faces[triangles]].reshape(-1, 3)
        assert (corners >= bounds[0] - 1e-6).all()
        assert (corners <= bounds[1] + 1e-6).all()
    assert found(scene, QuerySphere(type="query.sphere", center=(0, 0, 0), radius=0.98)) == []
    assert found(scene, QuerySphere(type="query.sphere", center=(0, 0, 1.2), radius=0.21)) == [node.id]
    assert found(scene, QueryBox(type="query.box", min=(-0.5, -0.5, -0.5), max=(0.5, 0.5, 0.5))) == []
    (hit,) = cast(scene, (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))  # from inside: the far wall, facing in
    assert hit["distance"] == pytest.approx(1.0, abs=2e-3)
    assert hit["normal"][1] == pytest.approx(-1.0, abs=1e-3)


# -- the pick ---------------------------------------------------------------------------------------------

W, H = 160, 120


def to_view(camera: Camera, point: tuple[float, float, float]) -> tuple[float, float]:
    clip = camera.projection_matrix(W / H, 0.1, 100) @ camera.view_matrix() @ np.array([*point, 1.0])
    ndc = clip[:3] / clip[3]
    return (ndc[0] + 1) / 2, (1 - ndc[1]) / 2


def test_pick_hits_what_is_on_screen_and_skips_what_is_cut_away(tmp_path: Path) -> None:
    scene = load_model(fixtures.two_node_glb(tmp_path))
    camera = Camera.look_at((0, 0, 6), (0, 0, 0), fov=50)
    box = scene.node("RedBox")

    def pick(point: tuple[float, float, float]) -> spatial.RayHit | None:
        return spatial.pick(scene.world(), camera, *to_view(camera, point), W / H)

    hit = pick((fixtures.RED_X, 0, 0))
    assert hit is not None
    assert hit.entity == box.id
    assert hit.position[2] == pytest.approx(0.5, abs=1e-4)
    hit = pick((fixtures.BLUE_X, fixtures.BLUE_Y, 0))
    assert hit is not None
    assert hit.entity == scene.node("BlueSphere").id
    assert spatial.pick(scene.world(), camera, 2 / W, 2 / H, W / H) is None  # background
    assert spatial.pick(scene.world(), camera, 1.2, 0.5, W / H) is None  # outside the view
    # A plane through the box's centre cutting away z > 0: the pick goes through to the back face.
    cutter = scene.add_node("cutter", transform=moved(fixtures.RED_X))
    scene.set_component(cutter.id, "CutPlane", CutPlane(normal="Z"))
    hit = pick((fixtures.RED_X, 0, 0))
    assert hit is not None
    assert hit.entity == box.id
    assert hit.position[2] == pytest.approx(-0.5, abs=1e-4)
    assert hit.normal[2] == pytest.approx(1.0, abs=1e-4)  # the inside of the back face, facing the camera
    # The box's filter mask shares no bit with the plane's: the plane does not cut it.
    state = StateOverride({StateFlag.USE_CUT_PLANE_FILTER_MASK: True}, cut_plane_filter_mask=0b10)
    scene.set_component(box.id, "HierarchicalStateOverride", state)
    scene.set_component(cutter.id, "CutPlane", CutPlane(normal="Z", object_filter_mask=0b01))
    hit = pick((fixtures.RED_X, 0, 0))
    assert hit is not None
    assert hit.position[2] == pytest.approx(0.5, abs=1e-4)
    # A plane cutting the whole box away (normal -X through x = 0 keeps x > 0 only).
    scene.remove_component(box.id, "HierarchicalStateOverride")
    scene.set_component(cutter.id, "CutPlane", CutPlane(normal="-X"))
    scene.node(cutter.id).transform = moved(0.0)
    assert pick((fixtures.RED_X, 0, 0)) is None
    box.visible = False
    scene.remove_component(cutter.id, "CutPlane")
    assert pick((fixtures.RED_X, 0, 0)) is None
