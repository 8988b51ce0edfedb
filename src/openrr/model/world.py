"""What a scene's hierarchy resolves to in world space, per node: transforms, bounds and effective states.

Apart from ``scene.py``, which holds the graph and its edits: this is the derivation the renderer and the
spatial queries read every frame, computed level by level with numpy (a scene with thousands of nodes
costs a few batched operations, not a Python loop per node), and cached by ``Scene.world()``.

Inheritance, as ARR documents it: visibility (``Enabled``) and every ``StateOverride`` flag go down the
hierarchy, and the nearest explicit setting on the way up wins (a node's own first); no setting at all
means off. The tint colour and the cut-plane filter mask travel with the tint and filter-mask settings
that are in effect. A colour override (protocol v1's ``node.set color``) applies to the subtree unless a
descendant has its own.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from openrr.model.components import (
    ALL_BITS,
    CUT_PLANE,
    LIGHT_KINDS,
    STATE_OVERRIDE,
    Component,
    CutPlane,
    Light,
    StateFlag,
    StateOverride,
    WorldCutPlane,
    WorldLight,
)
from openrr.model.mesh import F32, F64, RGBA, Mesh

Bools = NDArray[np.bool_]


class NodeLike(Protocol):
    """What ``compute_world`` reads of a node (``openrr.model.scene.Node``)."""

    id: int
    parent: int | None
    components: dict[str, Component]

    @property
    def transform(self) -> F64: ...
    @property
    def mesh(self) -> Mesh | None: ...
    @property
    def visible(self) -> bool: ...
    @property
    def color(self) -> RGBA | None: ...


@dataclass(frozen=True)
class WorldState:
    """Per-node derived state, rows in hierarchy order (parents before children).

    ``enabled``: the node and its ancestors are enabled (``Node.visible``). ``visible``: enabled and not
    hidden: what is drawn. ``collidable``: visible and collision not disabled: what spatial queries hit.
    ``bounds[i]`` is the world AABB (min, max) of row i's mesh, NaN for rows without a mesh.
    ``color[i]``: the effective colour override, NaN where there is none. ``tint[i]``: the effective tint
    (RGBA, alpha = strength), NaN where tint is off. ``cut_mask[i]``: the cut-plane filter mask in effect
    (all bits where the filter mask is not used). ``cut_planes``/``lights``: the enabled components on
    enabled nodes, in world space.
    """

    ids: NDArray[np.int64]
    row: dict[int, int]
    world: F64
    enabled: Bools
    visible: Bools
    see_through: Bools
    selected: Bools
    collidable: Bools
    color: F32
    tint: F32
    cut_mask: NDArray[np.uint32]
    has_mesh: Bools
    bounds: F64
    meshes: tuple[Mesh | None, ...]
    cut_planes: tuple[WorldCutPlane, ...] = ()
    lights: tuple[WorldLight, ...] = ()


def compute_world(nodes: Sequence[NodeLike]) -> WorldState:
    """Resolve ``nodes`` (parents before children) into a ``WorldState``."""
    count = len(nodes)
    row = {n.id: i for i, n in enumerate(nodes)}
    parents = np.array([row[n.parent] if n.parent is not None else -1 for n in nodes], dtype=np.int64)
    levels = _levels(parents)
    world = np.stack([n.transform for n in nodes]) if nodes else np.zeros((0, 4, 4))
    enabled = np.array([n.visible for n in nodes], dtype=bool)
    color = np.full((count, 4), np.nan, dtype=np.float32)
    for i, n in enumerate(nodes):
        if n.color is not None:
            color[i] = n.color
    states = _States(nodes)
    for rows in levels:
        up = parents[rows]
        world[rows] = world[up] @ world[rows]
        enabled[rows] &= enabled[up]
        inherit = np.isnan(color[rows, 0])
        color[rows[inherit]] = color[up[inherit]]
        states.inherit(rows, up)
    meshes = tuple(n.mesh for n in nodes)
    has_mesh = np.array([m is not None for m in meshes], dtype=bool)
    visible = enabled & ~states.on(StateFlag.HIDDEN)
    tint = np.where(states.on(StateFlag.TINT)[:, None], states.tint, np.float32(np.nan)).astype(np.float32)
    cut_mask = np.where(states.on(StateFlag.USE_CUT_PLANE_FILTER_MASK), states.mask, ALL_BITS)
    return WorldState(
        ids=np.array([n.id for n in nodes], dtype=np.int64),
        row=row,
        world=world,
        enabled=enabled,
        visible=visible,
        see_through=visible & states.on(StateFlag.SEE_THROUGH),
        selected=visible & states.on(StateFlag.SELECTED),
        collidable=visible & ~states.on(StateFlag.DISABLE_COLLISION),
        color=color,
        tint=tint,
        cut_mask=cut_mask.astype(np.uint32),
        has_mesh=has_mesh,
        bounds=_bounds(world, meshes, has_mesh),
        meshes=meshes,
        cut_planes=tuple(_cut_planes(nodes, world, enabled)),
        lights=tuple(_lights(nodes, world, enabled)),
    )


def _levels(parents: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """The rows of each depth below the roots, shallowest first."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for i in range(len(parents)):  # parents come first, so one pass suffices
        if parents[i] >= 0:
            depth[i] = depth[parents[i]] + 1
    return [np.flatnonzero(depth == level) for level in range(1, int(depth.max(initial=0)) + 1)]


class _States:
    """The state-override flags per row: -1 inherit, 0 ForceOff, 1 ForceOn; resolved level by level."""

    def __init__(self, nodes: Sequence[NodeLike]) -> None:
        count = len(nodes)
        self.flags = np.full((count, len(StateFlag)), -1, dtype=np.int8)
        self.tint = np.zeros((count, 4), dtype=np.float32)
        self.mask = np.full(count, ALL_BITS, dtype=np.int64)
        self._own_tint = np.zeros(count, dtype=bool)
        self._own_mask = np.zeros(count, dtype=bool)
        for i, node in enumerate(nodes):
            state = node.components.get(STATE_OVERRIDE)
            if isinstance(state, StateOverride):
                self._set(i, state)

    def _set(self, i: int, state: StateOverride) -> None:
        for k, flag in enumerate(StateFlag):
            if flag in state.flags:
                self.flags[i, k] = int(state.flags[flag])
        self.tint[i] = state.tint_color
        self.mask[i] = state.cut_plane_filter_mask
        self._own_tint[i] = StateFlag.TINT in state.flags
        self._own_mask[i] = StateFlag.USE_CUT_PLANE_FILTER_MASK in state.flags

    def inherit(self, rows: NDArray[np.int64], up: NDArray[np.int64]) -> None:
        """Rows without their own setting take their parent's (already resolved)."""
        unset = self.flags[rows] < 0
        self.flags[rows] = np.where(unset, self.flags[up], self.flags[rows])
        take_tint = ~self._own_tint[rows]
        self.tint[rows[take_tint]] = self.tint[up[take_tint]]
        take_mask = ~self._own_mask[rows]
        self.mask[rows[take_mask]] = self.mask[up[take_mask]]

    def on(self, flag: StateFlag) -> Bools:
        on: Bools = self.flags[:, list(StateFlag).index(flag)] == 1
        return on


def _bounds(world: F64, meshes: tuple[Mesh | None, ...], has_mesh: Bools) -> F64:
    bounds = np.full((len(meshes), 2, 3), np.nan)
    mesh_rows = np.flatnonzero(has_mesh)
    if len(mesh_rows):
        local = np.stack([m.bounds for m in meshes if m is not None])  # (K, 2, 3)
        # The 8 corners of each local box, transformed, then re-boxed.
        pick = np.array(list(itertools.product((0, 1), repeat=3)))  # (8, 3)
        corners = local[:, pick, [0, 1, 2]]  # (K, 8, 3)
        mats = world[mesh_rows]
        moved = np.einsum("kij,kcj->kci", mats[:, :3, :3], corners) + mats[:, None, :3, 3]
        bounds[mesh_rows, 0] = moved.min(axis=1)
        bounds[mesh_rows, 1] = moved.max(axis=1)
    return bounds


def _cut_planes(nodes: Sequence[NodeLike], world: F64, enabled: Bools) -> list[WorldCutPlane]:
    planes = []
    for i, node in enumerate(nodes):
        plane = node.components.get(CUT_PLANE)
        if not isinstance(plane, CutPlane) or not plane.enabled or not enabled[i]:
            continue
        matrix = world[i]
        # Normals transform by the inverse transpose; a degenerate entity has no plane.
        try:
            normal = np.linalg.inv(matrix[:3, :3]).T @ plane.local_normal()
        except np.linalg.LinAlgError:
            continue
        length = float(np.linalg.norm(normal))
        if not math.isfinite(length) or length < 1e-12:
            continue
        normal = normal / length
        origin = matrix[:3, 3]
        a, b, c = (float(v) for v in normal)
        planes.append(
            WorldCutPlane(
                node.id,
                (a, b, c, -float(normal @ origin)),
                plane.fade_color,
                plane.fade_length,
                plane.object_filter_mask,
            )
        )
    return planes


def _lights(nodes: Sequence[NodeLike], world: F64, enabled: Bools) -> list[WorldLight]:
    lights = []
    for i, node in enumerate(nodes):
        for kind in LIGHT_KINDS:
            light = node.components.get(kind)
            if isinstance(light, Light) and light.enabled and enabled[i]:
                lights.append(_world_light(node.id, light, world[i]))
    return lights


def _world_light(entity: int, light: Light, matrix: F64) -> WorldLight:
    forward = -matrix[:3, 2]  # the entity's -Z axis
    length = float(np.linalg.norm(forward))
    direction = forward / length if length > 1e-12 else np.array([0.0, 0.0, -1.0])
    inner = min(light.inner_cone_angle, light.outer_cone_angle)
    return WorldLight(
        entity=entity,
        kind=light.kind,
        position=_triple(matrix[:3, 3]),
        direction=_triple(direction),
        color=_triple(np.array(light.color) * light.intensity),
        range=light.range,
        cos_inner=math.cos(math.radians(inner)),
        cos_outer=math.cos(math.radians(light.outer_cone_angle)),
    )


def _triple(values: Any) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))
