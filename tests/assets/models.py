"""Small source models for the conversion tests, written by hand or with trimesh, and scene helpers.

The glTF models are the render tests' (``tests.render.fixtures``); this adds OBJ (+ MTL + texture),
PLY (mesh and points) and XYZ files, and scenes built directly for the asset format's round trips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from openrr.model.mesh import Material, Mesh, Primitive
from openrr.model.scene import Scene
from tests.render.fixtures import CYAN, YELLOW


def textured_obj(directory: Path) -> Path:
    """``quad.obj`` + ``quad.mtl`` + ``stripes.png``: the render fixtures' 2x2 quad facing +Z, yellow on
    its top half and cyan on its bottom half (OBJ's v grows upwards, unlike glTF's)."""
    image = np.zeros((16, 16, 4), dtype=np.uint8)
    image[:8], image[8:] = YELLOW, CYAN
    Image.fromarray(image).save(directory / "stripes.png")
    (directory / "quad.mtl").write_text("newmtl Striped\nKd 1 1 1\nmap_Kd stripes.png\n")
    (directory / "quad.obj").write_text(
        "mtllib quad.mtl\n"
        "v -1 1 0\nv 1 1 0\nv 1 -1 0\nv -1 -1 0\n"
        "vt 0 1\nvt 1 1\nvt 1 0\nvt 0 0\n"
        "vn 0 0 1\n"
        "usemtl Striped\n"
        "f 1/1/1 3/3/1 2/2/1\nf 1/1/1 4/4/1 3/3/1\n"
    )
    return directory / "quad.obj"


def coloured_ply(directory: Path) -> tuple[Path, np.ndarray]:
    """``box.ply``: a unit box with one sRGB colour per vertex (binary PLY); returns the colours (uint8)."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    colours = np.zeros((len(box.vertices), 4), dtype=np.uint8)
    colours[:, 0] = np.linspace(0, 255, len(box.vertices)).astype(np.uint8)
    colours[:, 1] = 128
    colours[:, 3] = 255
    box.visual = trimesh.visual.ColorVisuals(box, vertex_colors=colours)
    path = directory / "box.ply"
    path.write_bytes(box.export(file_type="ply"))
    return path, colours


def point_ply(directory: Path, count: int = 500) -> tuple[Path, np.ndarray, np.ndarray]:
    """``points.ply``: random points in a 2 x 1 x 0.1 slab with sRGB colours; returns points and colours."""
    rng = np.random.default_rng(7)
    points = (rng.random((count, 3)) * [2.0, 1.0, 0.1]).astype(np.float32)
    colours = np.concatenate([rng.integers(0, 256, (count, 3)), np.full((count, 1), 255)], axis=1)
    cloud = trimesh.PointCloud(points, colors=colours.astype(np.uint8))
    path = directory / "points.ply"
    path.write_bytes(cloud.export(file_type="ply"))
    return path, points, colours.astype(np.uint8)


def xyz_file(directory: Path, text: str, name: str = "cloud.xyz") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def sphere_glb(directory: Path, subdivisions: int, name: str = "sphere.glb") -> Path:
    """An icosphere of radius 1 with exact normals and a grey PBR material."""
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    sphere.vertex_normals = sphere.vertices
    sphere.visual = trimesh.visual.TextureVisuals(
        material=trimesh.visual.material.PBRMaterial(
            name="Grey", baseColorFactor=(180, 180, 180, 255), metallicFactor=0.0, roughnessFactor=0.7
        )
    )
    scene = trimesh.Scene()
    scene.add_geometry(sphere, node_name="Sphere", geom_name="SphereMesh")
    path = directory / name
    path.write_bytes(scene.export(file_type="glb"))
    return path


def rich_scene() -> Scene:
    """A scene using every feature the format stores: hierarchy, transforms, hidden nodes, colour
    overrides, an instanced mesh, a mesh with two primitives, shared textures, normals, uvs, colours."""
    rng = np.random.default_rng(3)
    texture = rng.integers(0, 256, (8, 4, 4), dtype=np.uint8)
    flat = np.zeros((64, 64, 4), dtype=np.uint8)  # compresses well: stored with zlib
    flat[..., 1] = 200
    textured = Material(
        name="Textured",
        base_color_factor=(0.9, 0.8, 0.7, 1.0),
        base_color_texture=texture,
        metallic_factor=0.25,
        roughness_factor=0.5,
        emissive_texture=texture,
        emissive_factor=(0.1, 0.2, 0.3),
        occlusion_texture=flat,
        double_sided=True,
        alpha_mode="MASK",
        alpha_cutoff=0.3,
    )
    plain = Material(name="Plain", base_color_factor=(0.2, 0.4, 0.6, 0.5), alpha_mode="BLEND")
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 5), indexing="ij"), -1).reshape(
        -1, 2
    )
    positions = np.concatenate([grid, rng.random((25, 1)) * 0.2], axis=1).astype(np.float32)
    quads = np.array([[i * 5 + j, i * 5 + j + 5, i * 5 + j + 1] for i in range(4) for j in range(4)])
    indices = np.concatenate([quads, quads[:, [1, 2, 0]] + [0, 1, 0]])
    normals = rng.normal(size=(25, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    first = Primitive(
        positions,
        indices,
        textured,
        normals=normals,
        uvs=((grid + 1) / 2).astype(np.float32),
        colors=rng.random((25, 4)).astype(np.float32),
    )
    second = Primitive(positions[:3] + 5.0, np.array([[0, 1, 2]], np.uint32), plain)
    mesh = Mesh("Pair", (first, second))
    other = Mesh(
        "Other",
        (
            Primitive(
                np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32),
                np.array([[0, 1, 2]], np.uint32),
                textured,
            ),
        ),
    )
    scene = Scene("rich")
    root = scene.add_node("Root", transform=np.diag([2.0, 2.0, 2.0, 1.0]))
    scene.add_node(
        "A", parent=root.id, mesh=mesh, transform=[[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]]
    )
    scene.add_node("B", parent=root.id, mesh=mesh, visible=False, color=(0.5, 0.25, 1.0, 1.0))
    group = scene.add_node("Group", parent=root.id)
    scene.add_node("C", parent=group.id, mesh=other)
    return scene
