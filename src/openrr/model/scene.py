"""The scene data model the renderer draws: a node hierarchy referencing meshes, in plain numpy.

Nothing here touches OpenGL, so scenes can be built, loaded and inspected on any thread. Contracts:

* A ``Mesh`` is a glTF mesh: one or more ``Primitive``\\ s, each with its own ``Material``. Meshes,
  primitives and materials are treated as immutable once built and compare by identity, so one mesh
  referenced by many nodes (instancing) is uploaded to the GPU once.
* A ``Node`` has a scene-unique integer ``id`` that is never reused, a ``name`` (not necessarily unique),
  a parent, a local 4x4 transform (column vectors: ``world = parent_world @ local``), an optional mesh,
  a ``visible`` flag and an optional RGBA colour override. Visibility and colour are hierarchical, as in
  ARR: hiding a node hides its subtree; a colour override applies to the subtree unless a descendant has
  its own.
* Changing ``transform``, ``visible`` or ``color`` bumps ``Scene.state_revision``; adding or removing
  nodes bumps ``Scene.structure_revision``. ``Scene.world()`` is cached on both revisions.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
RGBA = tuple[float, float, float, float]
AlphaMode = Literal["OPAQUE", "MASK", "BLEND"]
_IDENTITY = np.eye(4)
_IDENTITY.flags.writeable = False


@dataclass(eq=False)
class Material:
    """glTF metallic-roughness material. Factors are linear; textures are RGBA uint8 (H, W, 4), row 0 first.

    Colour textures (base colour, emissive) hold sRGB values as stored in the file; the renderer decodes.
    """

    name: str = ""
    base_color_factor: RGBA = (1.0, 1.0, 1.0, 1.0)
    base_color_texture: NDArray[np.uint8] | None = None
    metallic_factor: float = 1.0
    roughness_factor: float = 1.0
    metallic_roughness_texture: NDArray[np.uint8] | None = None
    normal_texture: NDArray[np.uint8] | None = None
    occlusion_texture: NDArray[np.uint8] | None = None
    emissive_factor: tuple[float, float, float] = (0.0, 0.0, 0.0)
    emissive_texture: NDArray[np.uint8] | None = None
    double_sided: bool = False
    alpha_mode: AlphaMode = "OPAQUE"
    alpha_cutoff: float = 0.5


@dataclass(eq=False)
class Primitive:
    """Indexed triangles with one material. Arrays are coerced to float32 / uint32 and validated.

    ``uvs`` use the glTF convention (origin at the top left of the image); ``colors`` are linear RGBA.
    ``normals`` may be None: the renderer then shades flat, as the glTF spec asks.
    """

    positions: F32
    indices: NDArray[np.uint32]
    material: Material = field(default_factory=Material)
    normals: F32 | None = None
    uvs: F32 | None = None
    colors: F32 | None = None
    bounds: F64 = field(init=False)

    def __post_init__(self) -> None:
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float32).reshape(-1, 3)
        self.indices = np.ascontiguousarray(self.indices, dtype=np.uint32).reshape(-1, 3)
        count = len(self.positions)
        if count == 0 or len(self.indices) == 0:
            raise ValueError("a primitive needs at least one vertex and one triangle")
        if int(self.indices.max()) >= count:
            raise ValueError(f"triangle index {int(self.indices.max())} out of range ({count} vertices)")
        if self.normals is not None:
            self.normals = _attribute(self.normals, count, 3, "normals")
        if self.uvs is not None:
            self.uvs = _attribute(self.uvs, count, 2, "uvs")
        if self.colors is not None:
            colors = np.asarray(self.colors, dtype=np.float32).reshape(count, -1)
            if colors.shape[1] == 3:
                colors = np.concatenate([colors, np.ones((count, 1), np.float32)], axis=1)
            self.colors = _attribute(colors, count, 4, "colors")
        if not np.isfinite(self.positions).all():
            raise ValueError("positions must be finite")
        # Column by column: numpy reduces a contiguous column ~9x faster than axis=0 of an (N, 3) array,
        # which is most of the load time of a converted asset.
        columns = [self.positions[:, k] for k in range(3)]
        self.bounds = np.array([[c.min() for c in columns], [c.max() for c in columns]], dtype=np.float64)

    @property
    def triangle_count(self) -> int:
        return len(self.indices)


def _attribute(values: NDArray[np.generic], count: int, width: int, what: str) -> F32:
    array = np.ascontiguousarray(values, dtype=np.float32)
    if array.shape != (count, width):
        raise ValueError(f"{what} must have shape ({count}, {width}), got {array.shape}")
    return array


@dataclass(eq=False)
class Mesh:
    """A glTF mesh: primitives drawn together under one node.

    ``lods``: coarser copies of the mesh, finest first (converted assets carry them for big meshes); the
    renderer draws the coarsest one whose error is below a pixel on screen.
    """

    name: str
    primitives: tuple[Primitive, ...]
    lods: tuple[LodLevel, ...] = ()
    bounds: F64 = field(init=False)
    triangle_count: int = field(init=False)

    def __post_init__(self) -> None:
        if not self.primitives:
            raise ValueError("a mesh needs at least one primitive")
        self.primitives = tuple(self.primitives)
        stacked = np.stack([p.bounds for p in self.primitives])
        self.bounds = np.stack([stacked[:, 0].min(axis=0), stacked[:, 1].max(axis=0)])
        self.triangle_count = sum(p.triangle_count for p in self.primitives)


@dataclass(frozen=True)
class LodLevel:
    """A coarser copy of a mesh. ``error``: the largest distance a vertex moved, in mesh units."""

    mesh: Mesh
    error: float


class Node:
    """A node of a ``Scene``; create it with ``Scene.add_node``. Setters validate and notify the scene.

    ``parent`` and ``children`` are read-only here: the hierarchy changes through ``Scene`` methods.
    """

    __slots__ = ("_color", "_mesh", "_scene", "_transform", "_visible", "children", "id", "name", "parent")

    def __init__(self, scene: Scene, node_id: int, name: str, parent: int | None, mesh: Mesh | None) -> None:
        self._scene = scene
        self.id = node_id
        self.name = name
        self.parent = parent
        self.children: list[int] = []
        self._mesh = mesh
        self._transform = _IDENTITY
        self._visible = True
        self._color: RGBA | None = None

    @property
    def transform(self) -> F64:
        """The local transform (read-only array; assign a new one to change it)."""
        return self._transform

    @transform.setter
    def transform(self, matrix: F64 | Sequence[Sequence[float]]) -> None:
        value = np.array(matrix, dtype=np.float64)
        if value.shape != (4, 4) or not np.isfinite(value).all():
            raise ValueError("a node transform must be a finite 4x4 matrix")
        value.flags.writeable = False
        self._transform = value
        self._scene.state_revision += 1

    @property
    def mesh(self) -> Mesh | None:
        return self._mesh

    @mesh.setter
    def mesh(self, mesh: Mesh | None) -> None:
        self._mesh = mesh
        self._scene.structure_revision += 1  # the renderer uploads and releases on structure changes

    @property
    def visible(self) -> bool:
        return self._visible

    @visible.setter
    def visible(self, value: bool) -> None:
        self._visible = bool(value)
        self._scene.state_revision += 1

    @property
    def color(self) -> RGBA | None:
        """RGBA override in 0..1 (linear) replacing the base colour of the subtree, or None."""
        return self._color

    @color.setter
    def color(self, value: Sequence[float] | None) -> None:
        if value is not None:
            rgba = tuple(float(c) for c in value)
            if len(rgba) != 4 or not all(0.0 <= c <= 1.0 for c in rgba):
                raise ValueError("a colour override is four values in 0..1")
            value = rgba
        self._color = (value[0], value[1], value[2], value[3]) if value is not None else None
        self._scene.state_revision += 1

    def __repr__(self) -> str:
        return f"Node(id={self.id}, name={self.name!r}, parent={self.parent}, mesh={self.mesh is not None})"


@dataclass(frozen=True)
class WorldState:
    """Per-node derived state, rows in hierarchy order (parents before children).

    ``bounds[i]`` is the world AABB (min, max) of row i's mesh, NaN for rows without a mesh.
    ``color[i]`` is the effective override, NaN where there is none.
    """

    ids: NDArray[np.int64]
    row: dict[int, int]
    world: F64
    visible: NDArray[np.bool_]
    color: F32
    has_mesh: NDArray[np.bool_]
    bounds: F64
    meshes: tuple[Mesh | None, ...]


class Scene:
    """A hierarchy of nodes. Node ids are assigned here, counting up from 0, and never reused."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._nodes: dict[int, Node] = {}  # insertion order keeps parents before children
        self._ids = itertools.count()
        self.structure_revision = 0
        self.state_revision = 0
        self._world: tuple[int, int, WorldState] | None = None
        self._polygons = (-1, 0)  # (structure_revision, count)

    def add_node(
        self,
        name: str,
        *,
        parent: int | None = None,
        transform: F64 | Sequence[Sequence[float]] | None = None,
        mesh: Mesh | None = None,
        visible: bool = True,
        color: Sequence[float] | None = None,
    ) -> Node:
        """Add a node under ``parent`` (a node id, None for a root). Raises KeyError for an unknown parent."""
        if parent is not None and parent not in self._nodes:
            raise KeyError(f"no node with id {parent}")
        node = Node(self, next(self._ids), name, parent, mesh)
        if transform is not None:
            node.transform = transform
        node.visible = visible
        node.color = color
        self._nodes[node.id] = node
        if parent is not None:
            self._nodes[parent].children.append(node.id)
        self.structure_revision += 1
        return node

    def remove_node(self, node_id: int) -> list[int]:
        """Remove a node and its subtree; returns the removed ids. Raises KeyError for an unknown id."""
        node = self._nodes[node_id]
        removed = [n.id for n in self.walk(node_id)]
        for nid in removed:
            del self._nodes[nid]
        if node.parent is not None:
            self._nodes[node.parent].children.remove(node_id)
        self.structure_revision += 1
        return removed

    def add_scene(self, other: Scene, parent: int | None = None) -> list[Node]:
        """Copy ``other``'s nodes (new ids, shared meshes) under ``parent``; returns the new roots."""
        mapping: dict[int, int] = {}
        roots: list[Node] = []
        for src in other.nodes():
            dst = self.add_node(
                src.name,
                parent=mapping[src.parent] if src.parent is not None else parent,
                transform=src.transform,
                mesh=src.mesh,
                visible=src.visible,
                color=src.color,
            )
            mapping[src.id] = dst.id
            if src.parent is None:
                roots.append(dst)
        return roots

    def node(self, key: int | str) -> Node:
        """The node with this id, or the first node with this name. Raises KeyError."""
        if isinstance(key, int):
            return self._nodes[key]
        for node in self._nodes.values():
            if node.name == key:
                return node
        raise KeyError(f"no node named {key!r}")

    def nodes(self) -> Iterator[Node]:
        """All nodes, parents before children."""
        return iter(list(self._nodes.values()))

    def walk(self, node_id: int) -> Iterator[Node]:
        """A node and its descendants, depth first."""
        stack = [node_id]
        while stack:
            node = self._nodes[stack.pop()]
            yield node
            stack.extend(reversed(node.children))

    @property
    def roots(self) -> list[Node]:
        return [n for n in self._nodes.values() if n.parent is None]

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def meshes(self) -> list[Mesh]:
        """The distinct meshes referenced by nodes."""
        unique = {id(n.mesh): n.mesh for n in self._nodes.values() if n.mesh is not None}
        return list(unique.values())

    @property
    def polygon_count(self) -> int:
        """Triangles over all mesh instances (a mesh on three nodes counts three times), hidden ones too."""
        if self._polygons[0] != self.structure_revision:  # asked every frame: cache it
            count = sum(n.mesh.triangle_count for n in self._nodes.values() if n.mesh is not None)
            self._polygons = (self.structure_revision, count)
        return self._polygons[1]

    def world(self) -> WorldState:
        """World transforms, effective visibility/colour and world bounds of every node (cached)."""
        key = (self.structure_revision, self.state_revision)
        if self._world is not None and self._world[:2] == key:
            return self._world[2]
        state = self._compute_world()
        self._world = (key[0], key[1], state)
        return state

    def world_transform(self, node_id: int) -> F64:
        state = self.world()
        matrix: F64 = state.world[state.row[node_id]]
        return matrix

    def world_bounds(self, node_id: int) -> F64 | None:
        """The world AABB (2, 3) of a node's own mesh, or None if it has no mesh."""
        state = self.world()
        row = state.row[node_id]
        return state.bounds[row] if state.has_mesh[row] else None

    def bounds(self, visible_only: bool = True) -> F64 | None:
        """The world AABB (2, 3) of all (visible) meshes, or None if there are none."""
        state = self.world()
        rows = state.has_mesh & state.visible if visible_only else state.has_mesh
        if not rows.any():
            return None
        boxes = state.bounds[rows]
        total: F64 = np.stack([boxes[:, 0].min(axis=0), boxes[:, 1].max(axis=0)])
        return total

    def _compute_world(self) -> WorldState:
        nodes = list(self._nodes.values())
        count = len(nodes)
        row = {n.id: i for i, n in enumerate(nodes)}
        parents = np.array([row[n.parent] if n.parent is not None else -1 for n in nodes], dtype=np.int64)
        depth = np.zeros(count, dtype=np.int64)
        for i in range(count):  # parents come first, so one pass suffices
            if parents[i] >= 0:
                depth[i] = depth[parents[i]] + 1
        world = np.stack([n.transform for n in nodes]) if nodes else np.zeros((0, 4, 4))
        visible = np.array([n.visible for n in nodes], dtype=bool)
        color = np.full((count, 4), np.nan, dtype=np.float32)
        for i, n in enumerate(nodes):
            if n.color is not None:
                color[i] = n.color
        # Level by level, so a scene with thousands of nodes costs a few batched matmuls, not a Python loop.
        for level in range(1, int(depth.max(initial=0)) + 1):
            rows = np.flatnonzero(depth == level)
            up = parents[rows]
            world[rows] = world[up] @ world[rows]
            visible[rows] &= visible[up]
            inherit = np.isnan(color[rows, 0])
            color[rows[inherit]] = color[up[inherit]]
        meshes = tuple(n.mesh for n in nodes)
        has_mesh = np.array([m is not None for m in meshes], dtype=bool)
        bounds = np.full((count, 2, 3), np.nan)
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
        return WorldState(
            ids=np.array([n.id for n in nodes], dtype=np.int64),
            row=row,
            world=world,
            visible=visible,
            color=color,
            has_mesh=has_mesh,
            bounds=bounds,
            meshes=meshes,
        )
