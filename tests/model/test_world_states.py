"""The scene's hierarchical state overrides, components, reparenting and material edits, resolved per node."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from openrr.model.components import (
    ALL_BITS,
    CUT_PLANE,
    STATE_OVERRIDE,
    CutPlane,
    Light,
    StateFlag,
    StateOverride,
)
from openrr.model.mesh import Material, Mesh, Primitive
from openrr.model.scene import Scene


def _box() -> Mesh:
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    indices = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.uint32)
    red = Material("red", base_color_factor=(1.0, 0.0, 0.0, 1.0))
    blue = Material("blue", base_color_factor=(0.0, 0.0, 1.0, 1.0))
    return Mesh("box", (Primitive(positions, indices, red), Primitive(positions, indices, blue)))


def _tree() -> tuple[Scene, dict[str, int]]:
    """root → a → (a1, a2 → a21), root → b"""
    scene = Scene()
    mesh = _box()
    ids: dict[str, int] = {}
    ids["root"] = scene.add_node("root").id
    ids["a"] = scene.add_node("a", parent=ids["root"], mesh=mesh).id
    ids["a1"] = scene.add_node("a1", parent=ids["a"], mesh=mesh).id
    ids["a2"] = scene.add_node("a2", parent=ids["a"], mesh=mesh).id
    ids["a21"] = scene.add_node("a21", parent=ids["a2"], mesh=mesh).id
    ids["b"] = scene.add_node("b", parent=ids["root"], mesh=mesh).id
    return scene, ids


def _flags(scene: Scene, field: str) -> dict[int, bool]:
    state = scene.world()
    values = getattr(state, field)
    return {int(i): bool(values[state.row[int(i)]]) for i in state.ids}


def test_hidden_inherits_down_and_a_child_force_off_stays_visible() -> None:
    scene, ids = _tree()
    scene.set_component(ids["a"], STATE_OVERRIDE, StateOverride({StateFlag.HIDDEN: True}))
    scene.set_component(ids["a2"], STATE_OVERRIDE, StateOverride({StateFlag.HIDDEN: False}))
    visible = _flags(scene, "visible")
    assert not visible[ids["a"]]
    assert not visible[ids["a1"]]  # inherits ForceOn from a
    assert visible[ids["a2"]]  # its own ForceOff wins over the parent's ForceOn
    assert visible[ids["a21"]]  # inherits a2's ForceOff, the nearest explicit setting
    assert visible[ids["b"]]
    assert visible[ids["root"]]
    # Hidden nodes are left out of the scene's visible bounds and of collisions.
    assert not _flags(scene, "collidable")[ids["a1"]]


def test_disabled_entity_hides_its_subtree_whatever_the_state_says() -> None:
    scene, ids = _tree()
    scene.node(ids["a"]).visible = False
    scene.set_component(ids["a2"], STATE_OVERRIDE, StateOverride({StateFlag.HIDDEN: False}))
    visible = _flags(scene, "visible")
    assert not visible[ids["a2"]]
    assert not visible[ids["a21"]]
    assert not _flags(scene, "enabled")[ids["a21"]]


def test_tint_colour_and_filter_mask_travel_with_the_setting_in_effect() -> None:
    scene, ids = _tree()
    scene.set_component(
        ids["a"],
        STATE_OVERRIDE,
        StateOverride(
            {StateFlag.TINT: True, StateFlag.USE_CUT_PLANE_FILTER_MASK: True},
            tint_color=(0.0, 1.0, 0.0, 0.5),
            cut_plane_filter_mask=0b10,
        ),
    )
    # a2 has a component that says nothing about tint: its colour is not used.
    scene.set_component(
        ids["a2"], STATE_OVERRIDE, StateOverride({StateFlag.SELECTED: True}, tint_color=(1, 0, 0, 1))
    )
    scene.set_component(ids["a21"], STATE_OVERRIDE, StateOverride({StateFlag.TINT: False}))
    state = scene.world()
    tint = {name: state.tint[state.row[node]] for name, node in ids.items()}
    np.testing.assert_allclose(tint["a1"], (0.0, 1.0, 0.0, 0.5))
    np.testing.assert_allclose(tint["a2"], (0.0, 1.0, 0.0, 0.5))
    assert np.isnan(tint["a21"]).all()  # ForceOff
    assert np.isnan(tint["b"]).all()  # never set
    assert state.cut_mask[state.row[ids["a21"]]] == 0b10
    assert state.cut_mask[state.row[ids["b"]]] == ALL_BITS
    selected = _flags(scene, "selected")
    assert selected[ids["a2"]]
    assert selected[ids["a21"]]
    assert not selected[ids["a1"]]


def test_see_through_and_collision_flags() -> None:
    scene, ids = _tree()
    scene.set_component(
        ids["a"],
        STATE_OVERRIDE,
        StateOverride({StateFlag.SEE_THROUGH: True, StateFlag.DISABLE_COLLISION: True}),
    )
    scene.set_component(ids["a2"], STATE_OVERRIDE, StateOverride({StateFlag.DISABLE_COLLISION: False}))
    see_through, collidable = _flags(scene, "see_through"), _flags(scene, "collidable")
    assert see_through[ids["a1"]]
    assert see_through[ids["a21"]]
    assert not see_through[ids["b"]]
    assert not collidable[ids["a1"]]
    assert collidable[ids["a2"]]
    assert collidable[ids["a21"]]


def test_component_changes_bump_the_state_revision_and_removal_restores() -> None:
    scene, ids = _tree()
    before = scene.state_revision
    scene.set_component(ids["a"], STATE_OVERRIDE, StateOverride({StateFlag.HIDDEN: True}))
    assert scene.state_revision > before
    assert not _flags(scene, "visible")[ids["a1"]]
    scene.remove_component(ids["a"], STATE_OVERRIDE)
    assert _flags(scene, "visible")[ids["a1"]]
    with pytest.raises(KeyError):
        scene.remove_component(ids["a"], STATE_OVERRIDE)


def test_cut_planes_follow_their_entity_in_world_space() -> None:
    scene, ids = _tree()
    matrix = np.eye(4)
    matrix[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90° about Z: local X becomes world Y
    matrix[:3, 3] = (0.0, 2.0, 0.0)
    scene.node(ids["b"]).transform = matrix
    scene.set_component(ids["b"], CUT_PLANE, CutPlane(normal="X", fade_length=0.1, object_filter_mask=4))
    (plane,) = scene.world().cut_planes
    np.testing.assert_allclose(plane.plane, (0.0, 1.0, 0.0, -2.0), atol=1e-12)
    assert plane.entity == ids["b"]
    assert plane.object_filter_mask == 4
    assert plane.fade_length == 0.1
    # Disabled components and components of disabled entities are not active.
    scene.set_component(ids["a"], CUT_PLANE, CutPlane(normal=(0.0, 0.0, 2.0), enabled=False))
    assert len(scene.world().cut_planes) == 1
    scene.node(ids["root"]).visible = False
    assert scene.world().cut_planes == ()


def test_lights_shine_along_their_entity_minus_z() -> None:
    scene, ids = _tree()
    matrix = np.eye(4)
    matrix[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]  # 90° about X: local -Z becomes world +Y
    matrix[:3, 3] = (1.0, 2.0, 3.0)
    scene.node(ids["b"]).transform = matrix
    scene.set_component(
        ids["b"], "SpotLight", Light("SpotLight", color=(1, 0.5, 0), intensity=2, outer_cone_angle=60)
    )
    scene.set_component(ids["b"], "PointLight", Light("PointLight", range=5))
    lights = {light.kind: light for light in scene.world().lights}
    spot = lights["SpotLight"]
    np.testing.assert_allclose(spot.position, (1.0, 2.0, 3.0))
    np.testing.assert_allclose(spot.direction, (0.0, 1.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(spot.color, (2.0, 1.0, 0.0))
    assert spot.cos_outer == pytest.approx(0.5)
    assert lights["PointLight"].range == 5


def test_reparent_keeps_parents_before_children_and_refuses_cycles() -> None:
    scene, ids = _tree()
    offset = np.eye(4)
    offset[:3, 3] = (10.0, 0.0, 0.0)
    scene.node(ids["b"]).transform = offset
    scene.reparent(ids["a"], ids["b"])  # a (with a1, a2, a21) moves under b
    assert scene.node(ids["a"]).parent == ids["b"]
    assert ids["a"] in scene.node(ids["b"]).children
    assert ids["a"] not in scene.node(ids["root"]).children
    np.testing.assert_allclose(scene.world_transform(ids["a21"])[:3, 3], (10.0, 0.0, 0.0))
    order = [n.id for n in scene.nodes()]
    for node in scene.nodes():
        if node.parent is not None:
            assert order.index(node.parent) < order.index(node.id)
    with pytest.raises(ValueError, match="descendants"):
        scene.reparent(ids["b"], ids["a21"])
    with pytest.raises(KeyError):
        scene.reparent(ids["a"], 999)
    scene.reparent(ids["a2"], None)
    assert scene.node(ids["a2"]).parent is None
    assert ids["a2"] in [n.id for n in scene.roots]


def test_material_edits_replace_and_never_change_the_loaded_material() -> None:
    scene, ids = _tree()
    mesh = scene.node(ids["a"]).mesh
    assert mesh is not None
    red, blue = (p.material for p in mesh.primitives)
    red_id = scene.materials.id_of(red)
    green = dataclasses.replace(red, base_color_factor=(0.0, 1.0, 0.0, 1.0))
    scene.materials.replace(red_id, green)
    assert red.base_color_factor == (1.0, 0.0, 0.0, 1.0)  # the shared original is untouched
    assert scene.material_of(scene.node(ids["a1"]), 0) is green  # every user of the material
    assert scene.material_of(scene.node(ids["a1"]), 1) is blue
    # A part choice affects one node only.
    created = scene.materials.create(Material("white", unlit=True))
    scene.set_part_material(ids["b"], 1, created)
    assert scene.material_of(scene.node(ids["b"]), 1).name == "white"
    assert scene.material_of(scene.node(ids["a1"]), 1) is blue
    with pytest.raises(IndexError):
        scene.set_part_material(ids["b"], 2, created)
    with pytest.raises(KeyError):
        scene.set_part_material(ids["b"], 0, 999)
    scene.set_part_material(ids["b"], 1, None)
    assert scene.material_of(scene.node(ids["b"]), 1) is blue
    # A fresh scene with the same meshes starts from the originals.
    fresh = Scene()
    fresh.add_scene(scene)
    assert fresh.material_of(next(n for n in fresh.nodes() if n.name == "a1"), 0) is red


def test_texture_ids_are_stable_per_image() -> None:
    scene = Scene()
    image = np.zeros((2, 2, 4), dtype=np.uint8)
    first = scene.textures.id_of(image, "a.png")
    assert scene.textures.id_of(image) == first
    assert scene.textures.get(first) is image
    assert scene.textures.names[first] == "a.png"
    assert scene.textures.id_of(np.zeros((2, 2, 4), dtype=np.uint8)) != first
