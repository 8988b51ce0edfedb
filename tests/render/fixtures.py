"""Small glTF models for the render tests, built with trimesh or by hand, and a throwaway HTTP server.

The two-node model: a root "Scene" node (identity) holding "RedBox" (a unit cube, red, at x = -1.5) and
"BlueSphere" (radius 0.6, blue, at x = +1.5, y = 0.1). The cube has no normals (so it is shaded flat,
as glTF asks), the sphere has them.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import io
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

RED_X = -1.5
BLUE_X = 1.5
BLUE_Y = 0.1
YELLOW = (255, 230, 0, 255)
CYAN = (0, 200, 255, 255)


def _pbr(name: str, rgba: tuple[int, int, int, int]) -> trimesh.visual.material.PBRMaterial:
    return trimesh.visual.material.PBRMaterial(
        name=name, baseColorFactor=rgba, metallicFactor=0.0, roughnessFactor=0.6
    )


def two_node_glb(directory: Path) -> Path:
    """The red box / blue sphere model as ``two_nodes.glb``."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    box.visual = trimesh.visual.TextureVisuals(material=_pbr("Red", (255, 0, 0, 255)))
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.6)
    sphere.vertex_normals = sphere.vertices / 0.6  # exact for a sphere; set normals are exported as NORMAL
    sphere.visual = trimesh.visual.TextureVisuals(material=_pbr("Blue", (0, 0, 255, 255)))
    scene = trimesh.Scene()
    scene.graph.update(frame_from=scene.graph.base_frame, frame_to="Scene", matrix=np.eye(4))
    scene.add_geometry(
        box,
        node_name="RedBox",
        geom_name="BoxMesh",
        parent_node_name="Scene",
        transform=trimesh.transformations.translation_matrix([RED_X, 0.0, 0.0]),
    )
    scene.add_geometry(
        sphere,
        node_name="BlueSphere",
        geom_name="SphereMesh",
        parent_node_name="Scene",
        transform=trimesh.transformations.translation_matrix([BLUE_X, BLUE_Y, 0.0]),
    )
    path = directory / "two_nodes.glb"
    path.write_bytes(scene.export(file_type="glb"))
    return path


def textured_gltf(directory: Path) -> Path:
    """``quad.gltf`` + ``quad.bin`` + ``stripes.png``: a 2x2 quad facing +Z whose texture is yellow on
    its top half and cyan on its bottom half, so a renderer that flips v shows it upside down."""
    positions = np.array([[-1, 1, 0], [1, 1, 0], [1, -1, 0], [-1, -1, 0]], dtype=np.float32)
    normals = np.tile(np.array([0, 0, 1], dtype=np.float32), (4, 1))
    uvs = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float32)  # glTF: v = 0 is the image top
    indices = np.array([0, 2, 1, 0, 3, 2], dtype=np.uint32)  # counter-clockwise seen from +Z
    blobs = [positions.tobytes(), normals.tobytes(), uvs.tobytes(), indices.tobytes()]
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    (directory / "quad.bin").write_bytes(b"".join(blobs))
    image = np.zeros((16, 16, 4), dtype=np.uint8)
    image[:8], image[8:] = YELLOW, CYAN
    Image.fromarray(image).save(directory / "stripes.png")
    views = [{"buffer": 0, "byteOffset": int(offsets[i]), "byteLength": len(b)} for i, b in enumerate(blobs)]
    gltf = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "Quad", "mesh": 0, "translation": [0.0, 0.0, 0.0]}],
        "meshes": [
            {
                "name": "QuadMesh",
                "primitives": [
                    {
                        "attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2},
                        "indices": 3,
                        "material": 0,
                    }
                ],
            }
        ],
        "materials": [
            {
                "name": "Striped",
                "pbrMetallicRoughness": {
                    "baseColorTexture": {"index": 0},
                    "metallicFactor": 0.0,
                    "roughnessFactor": 1.0,
                },
                "emissiveFactor": [0.1, 0.1, 0.1],
                "doubleSided": True,
            }
        ],
        "textures": [{"source": 0}],
        "images": [{"uri": "stripes.png"}],
        "buffers": [{"uri": "quad.bin", "byteLength": int(offsets[-1])}],
        "bufferViews": views,
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 4, "type": "VEC3",
             "min": [-1, -1, 0], "max": [1, 1, 0]},
            {"bufferView": 1, "componentType": 5126, "count": 4, "type": "VEC3"},
            {"bufferView": 2, "componentType": 5126, "count": 4, "type": "VEC2"},
            {"bufferView": 3, "componentType": 5125, "count": 6, "type": "SCALAR"},
        ],
    }  # fmt: skip
    path = directory / "quad.gltf"
    path.write_text(json.dumps(gltf))
    return path


def multi_primitive_gltf(directory: Path) -> Path:
    """``multi.gltf``: node "Holder" (no mesh) over node "Pair", whose one mesh has two primitives (two
    triangles, materials "A" and "B"), with the buffer embedded as a data URI."""
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32).tobytes()
    indices = np.array([0, 1, 2], dtype=np.uint32).tobytes()
    blob = positions + indices
    uri = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    primitive = {"attributes": {"POSITION": 0}, "indices": 1}
    gltf = {
        "asset": {"version": "2.0"},
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "Holder", "children": [1]}, {"name": "Pair", "mesh": 0, "translation": [1, 2, 3]}],
        "meshes": [
            {"name": "PairMesh", "primitives": [{**primitive, "material": 0}, {**primitive, "material": 1}]}
        ],
        "materials": [
            {"name": "A"},
            {"name": "B", "pbrMetallicRoughness": {"baseColorFactor": [0, 1, 0, 1]}},
        ],
        "buffers": [{"byteLength": len(blob), "uri": uri}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": 36},
            {"buffer": 0, "byteOffset": 36, "byteLength": 12},
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": 3,
                "type": "VEC3",
                "min": [0, 0, 0],
                "max": [1, 1, 0],
            },
            {"bufferView": 1, "componentType": 5125, "count": 3, "type": "SCALAR"},
        ],
    }
    path = directory / "multi.gltf"
    path.write_text(json.dumps(gltf))
    return path


def bad_indices_gltf(directory: Path) -> Path:
    """The textured quad with a triangle index pointing past its 4 vertices."""
    path = textured_gltf(directory)
    blob = bytearray((directory / "quad.bin").read_bytes())
    blob[-4:] = (99).to_bytes(4, "little")
    (directory / "quad.bin").write_bytes(bytes(blob))
    return path


def broken_glb(directory: Path) -> Path:
    """A file that starts like a GLB but whose JSON chunk is cut off."""
    source = io.BytesIO()
    source.write(b"glTF" + (2).to_bytes(4, "little") + (200).to_bytes(4, "little"))
    source.write((150).to_bytes(4, "little") + b"JSON" + b'{"asset": {"version": "2.0"}, "nodes": [')
    path = directory / "broken.glb"
    path.write_bytes(source.getvalue())
    return path


def missing_buffer_gltf(directory: Path) -> Path:
    """Valid glTF JSON whose buffer file does not exist."""
    gltf = json.loads(textured_gltf(directory).read_text())
    gltf["buffers"][0]["uri"] = "absent.bin"
    path = directory / "missing_buffer.gltf"
    path.write_text(json.dumps(gltf))
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the test output stays readable
        pass


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port) for the duration; yields the base URL."""

    def handler(*args: object) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(directory))  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def model_root_for(models: Path, account: str) -> Path:
    """A model root in which ``account``'s folder is ``models`` (a symlink beside it): render servers read a
    session's models from ``ROOT/<accountId>/``, and the tests keep theirs in one folder.

    A path that is not a directory is returned as it is (unit tests that never touch the disk).
    """
    if not models.is_dir():
        return models
    root = models.parent / f"{models.name}.roots"
    (root).mkdir(exist_ok=True)
    link = root / account
    if not link.exists():
        link.symlink_to(models.resolve(), target_is_directory=True)
    return root


def png_bomb(side: int) -> bytes:
    """A black ``side`` x ``side`` PNG of one bit per pixel, written row by row without ever holding the
    image: 20000 x 20000 is about 48 KB on disk and 1.6 GB as RGBA pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)  # filter byte 0, then the row's bits
    idat = b"".join([packer.compress(row) for _ in range(side)] + [packer.flush()])
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def texture_bomb_gltf(directory: Path, side: int = 20000) -> Path:
    """``bomb.gltf``: the textured quad of ``textured_gltf`` with ``bomb.png``, a ``png_bomb(side)``."""
    textured_gltf(directory)
    (directory / "bomb.png").write_bytes(png_bomb(side))
    gltf = json.loads((directory / "quad.gltf").read_text())
    gltf["images"] = [{"uri": "bomb.png"}]
    path = directory / "bomb.gltf"
    path.write_text(json.dumps(gltf))
    return path
