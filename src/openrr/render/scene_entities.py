"""Entities in protocol v2: their JSON (hierarchy, TRS and matrix transforms) and the requests that read and
edit them (``scene.get``, ``entity.*``).

Transforms: a local matrix is decomposed as translation · rotation · scale (TRS, glTF's order), scale
from the lengths of the matrix's columns (x negated for a mirroring matrix) and rotation the nearest
rotation to what is left. A matrix with shear has no exact TRS: its ``matrix`` is exact, the TRS parts
approximate it, and an ``entity.set`` of ``rotation`` or ``scale`` recomposes the matrix from TRS (the
shear is dropped); one of ``position`` only changes the translation and keeps the rest as it was.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np

from openrr.model.mesh import F64
from openrr.model.scene import Node, Scene
from openrr.model.world import WorldState
from openrr.protocol import scene_api as api
from openrr.render.camera import quat_from_matrix, quat_to_matrix
from openrr.render.pipeline import RenderPipeline
from openrr.render.scene_context import MAX_CREATED_ENTITIES, SceneContext, SceneError

Answer = tuple[str, dict[str, Any]]


# -- transforms -------------------------------------------------------------------------------------------


def decompose(matrix: F64) -> tuple[F64, F64, F64]:
    """Translation, rotation (quaternion x, y, z, w) and scale of a 4x4 matrix (see the module doc)."""
    linear = matrix[:3, :3]
    scale = np.linalg.norm(linear, axis=0)
    if np.linalg.det(linear) < 0:
        scale[0] = -scale[0]
    if np.any(np.abs(scale) < 1e-12):
        return matrix[:3, 3].copy(), np.array([0.0, 0.0, 0.0, 1.0]), scale
    u, _, vt = np.linalg.svd(linear / scale)
    rotation = u @ vt  # the nearest rotation: exact without shear
    return matrix[:3, 3].copy(), quat_from_matrix(rotation), scale


def compose(position: Any, rotation: Any, scale: Any) -> F64:
    """The 4x4 matrix of translation · rotation · scale (``rotation``: a non-zero quaternion x, y, z, w)."""
    matrix = np.eye(4)
    matrix[:3, :3] = quat_to_matrix(rotation) * np.asarray(scale, dtype=np.float64)
    matrix[:3, 3] = position
    return matrix


def transform_json(matrix: F64) -> dict[str, Any]:
    position, rotation, scale = decompose(matrix)
    return {
        "position": [float(v) for v in position],
        "rotation": [float(v) for v in rotation],
        "scale": [float(v) for v in scale],
        "matrix": [float(v) for v in matrix.T.reshape(-1)],  # column-major, as glTF
    }


def _check_rotation(rotation: tuple[float, ...] | None) -> None:
    if rotation is not None and sum(c * c for c in rotation) < 1e-12:
        raise SceneError("BadMessage", "rotation: a quaternion must not be zero")


def entity_json(node: Node, world: WorldState) -> dict[str, Any]:
    return {
        "id": node.id,
        "name": node.name,
        "parent": node.parent,
        "enabled": node.visible,
        "mesh": node.mesh is not None,
        "parts": len(node.mesh.primitives) if node.mesh is not None else 0,
        "components": sorted(node.components),
        "local": transform_json(node.transform),
        "world": transform_json(world.world[world.row[node.id]]),
    }


# -- requests ---------------------------------------------------------------------------------------------


async def scene_get(ctx: SceneContext, request: api.SceneGet) -> Answer:
    end = None if request.limit is None else request.offset + request.limit

    def read() -> dict[str, Any]:
        scene = ctx.scene
        world = scene.world()
        page = itertools.islice(scene.nodes(), request.offset, end)
        return {"entities": [entity_json(node, world) for node in page], "total": len(scene)}

    return "scene", {**await ctx.gl(read, changes=False), "offset": request.offset}


async def entity_get(ctx: SceneContext, request: api.EntityGet) -> Answer:
    def read() -> dict[str, Any]:
        node = ctx.node(request.entity)
        return entity_json(node, ctx.scene.world())

    return "entity", {"entity": await ctx.gl(read, changes=False)}


async def entity_create(ctx: SceneContext, request: api.EntityCreate) -> Answer:
    _check_rotation(request.rotation)
    if ctx.entities_created >= MAX_CREATED_ENTITIES:
        raise SceneError(
            "TooManyEntities", f"a connection may create at most {MAX_CREATED_ENTITIES} entities"
        )

    def create() -> dict[str, Any]:
        scene = ctx.scene
        if request.parent is not None:
            ctx.node(request.parent)
        transform = compose(
            request.position or (0.0, 0.0, 0.0),
            request.rotation or (0.0, 0.0, 0.0, 1.0),
            request.scale or (1.0, 1.0, 1.0),
        )
        node = scene.add_node(request.name, parent=request.parent, transform=transform)
        return entity_json(node, scene.world())

    ctx.entities_created += 1  # counted before the GL thread's turn: requests run concurrently
    try:
        entity = await ctx.gl(create)
    except BaseException:
        ctx.entities_created -= 1
        raise
    return "entity", {"entity": entity}


def _new_transform(node: Node, request: api.EntitySet) -> F64 | None:
    """The local matrix ``entity.set`` asks for, or None when it leaves the transform alone."""
    if request.transform is not None:
        matrix: F64 = np.array(request.transform, dtype=np.float64).reshape(4, 4).T
        return matrix
    if request.rotation is None and request.scale is None:
        if request.position is None:
            return None
        moved = np.array(node.transform)
        moved[:3, 3] = request.position  # a move keeps the rest exactly, shear included
        return moved
    position, rotation, scale = decompose(node.transform)
    return compose(
        request.position if request.position is not None else position,
        request.rotation if request.rotation is not None else rotation,
        request.scale if request.scale is not None else scale,
    )


async def entity_set(ctx: SceneContext, request: api.EntitySet) -> Answer:
    _check_rotation(request.rotation)

    def edit() -> dict[str, Any]:
        scene = ctx.scene
        node = ctx.node(request.entity)
        if request.reparent and request.parent is not None:
            ctx.node(request.parent)
            if any(n.id == request.parent for n in scene.walk(node.id)):
                raise SceneError("BadMessage", "parent: an entity cannot go under itself or its descendants")
        transform = _new_transform(node, request)  # everything checked before anything changes
        if request.reparent and request.parent != node.parent:
            scene.reparent(node.id, request.parent)
        if transform is not None:
            node.transform = transform
        if request.name is not None:
            node.name = request.name
        if request.enabled is not None:
            node.visible = request.enabled
        return entity_json(node, scene.world())

    return "entity", {"entity": await ctx.gl(edit)}


async def entity_destroy(ctx: SceneContext, request: api.EntityDestroy) -> Answer:
    pipeline = ctx.pipeline

    def destroy() -> list[int]:
        ctx.node(request.entity)
        removed = ctx.scene.remove_node(request.entity)
        pipeline.polygons = ctx.scene.polygon_count
        return removed

    removed = await ctx.gl(destroy)
    forget_models(pipeline, set(removed))
    # The ids, parents first, as many as one answer holds; the count says when the list was cut short.
    return "ack", {"destroyed": removed[: api.MAX_DESTROYED_LISTED], "destroyedCount": len(removed)}


def forget_models(pipeline: RenderPipeline, removed: set[int]) -> None:
    """Keep ``pipeline.models`` true to the scene after entities were destroyed (on the event loop): a model
    keeps its roots still in the scene, and one whose roots are all gone is unloaded (no longer listed)."""
    for model_id, model in list(pipeline.models.items()):
        roots = [r for r in model.roots if r not in removed]
        if not roots:
            del pipeline.models[model_id]
        elif len(roots) != len(model.roots):
            pipeline.models[model_id] = dataclasses.replace(model, roots=roots)


async def entity_bounds(ctx: SceneContext, request: api.EntityBounds) -> Answer:
    def measure() -> F64 | None:
        node = ctx.node(request.entity)
        return subtree_bounds(ctx.scene, node, request.space)

    box = await ctx.gl(measure, changes=False)
    return "bounds", {
        "entity": request.entity,
        "space": request.space,
        "min": None if box is None else [float(v) for v in box[0]],
        "max": None if box is None else [float(v) for v in box[1]],
    }


def subtree_bounds(scene: Scene, node: Node, space: str) -> F64 | None:
    """The box (2, 3) around the meshes of ``node``'s subtree, hidden ones included: axis-aligned in world
    space (``"world"``) or in the node's own space (``"local"``); None when the subtree has no mesh."""
    relative: dict[int, F64] = {node.id: np.eye(4) if space == "local" else scene.world_transform(node.id)}
    corners: list[F64] = []
    for item in scene.walk(node.id):
        if item.id != node.id:
            assert item.parent is not None
            relative[item.id] = relative[item.parent] @ item.transform
        if item.mesh is not None:
            corners.append(_box_corners(item.mesh.bounds, relative[item.id]))
    if not corners:
        return None
    points = np.concatenate(corners)
    box: F64 = np.stack([points.min(axis=0), points.max(axis=0)])
    return box


def _box_corners(bounds: F64, matrix: F64) -> F64:
    lo, hi = bounds
    corners = np.array(
        [[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    moved: F64 = (corners @ matrix.T)[:, :3]
    return moved


async def entity_metadata(ctx: SceneContext, request: api.EntityMetadata) -> Answer:
    def read() -> dict[str, Any]:
        return dict(ctx.node(request.entity).metadata)

    return "metadata", {"entity": request.entity, "metadata": await ctx.gl(read, changes=False)}
