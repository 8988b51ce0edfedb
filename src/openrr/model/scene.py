"""The scene graph a connection edits and the renderer draws: a node hierarchy referencing meshes.

Nothing here touches OpenGL, so scenes can be built, loaded and inspected on any thread. Contracts:

* A ``Node`` (ARR's entity) has a scene-unique integer ``id`` that is never reused, a ``name`` (not
  necessarily unique), a parent, a local 4x4 transform (column vectors: ``world = parent_world @ local``),
  an optional ``Mesh`` (``openrr.model.mesh``) or ``PointCloud`` (``openrr.model.points``), a
  ``visible`` flag (ARR's ``Enabled``), an optional RGBA
  colour override, ``metadata`` kept by conversion, per-part material choices and components
  (``openrr.model.components``, at most one of each type). Visibility, colour and the state overrides are
  hierarchical, as in ARR; ``openrr.model.world`` resolves them.
* Changing a transform, ``visible``, ``color``, a component, a part's material or the scene's settings
  bumps ``Scene.state_revision``; adding, removing or reparenting nodes bumps
  ``Scene.structure_revision``. ``Scene.world()`` is cached on both revisions.
* The scene's materials and textures have ids (``Scene.materials``, ``Scene.textures``); edits replace a
  material rather than change it, so the meshes a scene shares with others stay as loaded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from openrr.model.components import Component, OutlineSettings, ShellSettings
from openrr.model.materials import MaterialTable, TextureTable
from openrr.model.mesh import F64, RGBA, Material, Mesh
from openrr.model.points import PointCloud, PointCloudSettings
from openrr.model.skies import Sky
from openrr.model.world import WorldState, compute_world

_IDENTITY = np.eye(4)
_IDENTITY.flags.writeable = False


class Node:
    """A node of a ``Scene``; create it with ``Scene.add_node``. Setters validate and notify the scene.

    ``parent`` and ``children`` are read-only here: the hierarchy changes through ``Scene`` methods.
    """

    __slots__ = (
        "_color",
        "_mesh",
        "_points",
        "_scene",
        "_transform",
        "_visible",
        "children",
        "components",
        "id",
        "metadata",
        "name",
        "parent",
        "part_materials",
    )

    def __init__(self, scene: Scene, node_id: int, name: str, parent: int | None, mesh: Mesh | None) -> None:
        self._scene = scene
        self.id = node_id
        self.name = name
        self.parent = parent
        self.children: list[int] = []
        self._mesh = mesh
        self._points: PointCloud | None = None
        self._transform = _IDENTITY
        self._visible = True
        self._color: RGBA | None = None
        # Change these through Scene.set_component / remove_component / set_part_material.
        self.components: dict[str, Component] = {}
        self.part_materials: dict[int, int] = {}  # mesh part -> material id (Scene.materials)
        self.metadata: dict[str, Any] = {}  # object metadata kept by conversion (metadataKeys)

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
        if mesh is not None and self._points is not None:
            raise ValueError(f"node {self.id} has points: a node has a mesh or a point cloud, not both")
        self._mesh = mesh
        self.part_materials = {}
        self._scene.register_materials(mesh)
        self._scene.structure_revision += 1  # the renderer uploads and releases on structure changes

    @property
    def points(self) -> PointCloud | None:
        """The point cloud drawn at this node (a node has a mesh or points, not both), or None."""
        return self._points

    @points.setter
    def points(self, cloud: PointCloud | None) -> None:
        if cloud is not None and self._mesh is not None:
            raise ValueError(f"node {self.id} has a mesh: a node has a mesh or a point cloud, not both")
        self._points = cloud
        self._scene.structure_revision += 1

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
        self._clouds: tuple[int, list[Node]] = (-1, [])  # (structure_revision, nodes with points)
        self.materials = MaterialTable()
        self.textures = TextureTable()
        self.outline = OutlineSettings()  # change with update_settings, so frames follow
        self.shell = ShellSettings()
        self.sky: Sky | None = None  # the background and ambient light; None: the default look
        self.point_cloud = PointCloudSettings()

    def add_node(
        self,
        name: str,
        *,
        parent: int | None = None,
        transform: F64 | Sequence[Sequence[float]] | None = None,
        mesh: Mesh | None = None,
        visible: bool = True,
        color: Sequence[float] | None = None,
        points: PointCloud | None = None,
    ) -> Node:
        """Add a node under ``parent`` (a node id, None for a root). Raises KeyError for an unknown parent,
        ValueError for both a mesh and points."""
        if parent is not None and parent not in self._nodes:
            raise KeyError(f"no node with id {parent}")
        node = Node(self, next(self._ids), name, parent, mesh)
        if points is not None:
            node.points = points
        self.register_materials(mesh)
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
                points=src.points,
            )
            dst.metadata = src.metadata  # read-only after loading: shared, not copied
            mapping[src.id] = dst.id
            if src.parent is None:
                roots.append(dst)
        return roots

    def reparent(self, node_id: int, parent: int | None) -> None:
        """Move a node (with its subtree) under ``parent`` (None: make it a root), keeping its local
        transform. Raises KeyError for an unknown id, ValueError for a parent inside the node's subtree."""
        node = self._nodes[node_id]
        if parent is not None and parent not in self._nodes:
            raise KeyError(f"no node with id {parent}")
        subtree = [n.id for n in self.walk(node_id)]
        if parent is not None and parent in subtree:
            raise ValueError("a node cannot become a child of itself or of its own descendants")
        if node.parent is not None:
            self._nodes[node.parent].children.remove(node_id)
        node.parent = parent
        if parent is not None:
            self._nodes[parent].children.append(node_id)
        for nid in subtree:  # to the end, in walk order: parents still come before children
            self._nodes[nid] = self._nodes.pop(nid)
        self.structure_revision += 1

    def set_component(self, node_id: int, kind: str, component: Component) -> None:
        """Attach (or replace) the node's component of type ``kind``. Raises KeyError for an unknown id."""
        self._nodes[node_id].components[kind] = component
        self.state_revision += 1

    def remove_component(self, node_id: int, kind: str) -> Component:
        """Detach the node's component of type ``kind`` and return it. Raises KeyError if it has none."""
        component = self._nodes[node_id].components.pop(kind)
        self.state_revision += 1
        return component

    def changed(self) -> None:
        """Something the picture depends on changed in place (a component's fields, a setting)."""
        self.state_revision += 1

    def register_materials(self, mesh: Mesh | None) -> None:
        if mesh is not None:
            self.materials.register(p.material for p in mesh.primitives)

    def set_part_material(self, node_id: int, part: int, material_id: int | None) -> None:
        """Draw ``part`` of the node's mesh with ``material_id`` (None: its own material again).
        Raises KeyError for an unknown node or material, IndexError for a part the mesh lacks."""
        node = self._nodes[node_id]
        parts = len(node.mesh.primitives) if node.mesh is not None else 0
        if not 0 <= part < parts:
            raise IndexError(f"node {node_id} has {parts} mesh parts")
        if material_id is None:
            node.part_materials.pop(part, None)
        else:
            if material_id not in self.materials:
                raise KeyError(f"no material with id {material_id}")
            node.part_materials[part] = material_id
        self.state_revision += 1

    def material_of(self, node: Node, part: int) -> Material:
        """What the renderer draws part ``part`` of ``node``'s mesh with: the node's choice for the part,
        else the current version of the part's own material."""
        chosen = node.part_materials.get(part)
        if chosen is not None:
            return self.materials.get(chosen)
        assert node.mesh is not None
        return self.materials.current(node.mesh.primitives[part].material)

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

    @property
    def point_count(self) -> int:
        """Points over all point clouds (hidden ones too)."""
        return sum(n.points.count for n in self.point_clouds() if n.points is not None)

    def point_clouds(self) -> list[Node]:
        """The nodes that have a point cloud, parents before children (cached: asked every frame)."""
        if self._clouds[0] != self.structure_revision:
            clouds = [n for n in self._nodes.values() if n.points is not None]
            self._clouds = (self.structure_revision, clouds)
        return list(self._clouds[1])

    def world(self) -> WorldState:
        """World transforms, effective visibility/colour and world bounds of every node (cached)."""
        key = (self.structure_revision, self.state_revision)
        if self._world is not None and self._world[:2] == key:
            return self._world[2]
        state = compute_world(list(self._nodes.values()))
        self._world = (key[0], key[1], state)
        return state

    def world_transform(self, node_id: int) -> F64:
        state = self.world()
        matrix: F64 = state.world[state.row[node_id]]
        return matrix

    def world_bounds(self, node_id: int) -> F64 | None:
        """The world AABB (2, 3) of a node's own mesh or point cloud, or None if it has neither."""
        state = self.world()
        row = state.row[node_id]
        cloud = self._nodes[node_id].points
        if cloud is not None:
            return _moved_box(cloud.bounds, state.world[row])
        return state.bounds[row] if state.has_mesh[row] else None

    def bounds(self, visible_only: bool = True) -> F64 | None:
        """The world AABB (2, 3) of all (visible) meshes and point clouds, or None if there are none."""
        state = self.world()
        rows = state.has_mesh & state.visible if visible_only else state.has_mesh
        boxes = list(state.bounds[rows])
        for node in self.point_clouds():
            row = state.row[node.id]
            if state.visible[row] or not visible_only:
                assert node.points is not None
                boxes.append(_moved_box(node.points.bounds, state.world[row]))
        if not boxes:
            return None
        stacked = np.stack(boxes)
        total: F64 = np.stack([stacked[:, 0].min(axis=0), stacked[:, 1].max(axis=0)])
        return total


def _moved_box(box: F64, world: F64) -> F64:
    """The AABB of ``box``'s 8 corners moved by ``world``."""
    corners = np.array([[box[i, 0], box[j, 1], box[k, 2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    moved = corners @ world[:3, :3].T + world[:3, 3]
    out: F64 = np.stack([moved.min(axis=0), moved.max(axis=0)])
    return out
