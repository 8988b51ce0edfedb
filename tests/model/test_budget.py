"""The loader's allowance: a texture bomb is refused from its image header before any pixel is decoded,
a ceiling holds without an allowance (for every format trimesh reads too), and textures and geometry are
counted as the renderer holds them. The session's budgets built on it: ``tests/render/test_budget.py``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from openrr.model.budget import Allowance
from openrr.model.errors import ModelLoadError
from openrr.model.loader import load_model
from tests.render import fixtures


def test_a_texture_bomb_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    bomb = fixtures.texture_bomb_gltf(tmp_path)
    assert (tmp_path / "bomb.png").stat().st_size < 64 * 1024  # tiny on disk, 1.6 GB as pixels
    # In a process of its own, to see its peak memory: refused from the header, nothing decoded. The peak is
    # the process's VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child of a
    # big parent (pytest late in the suite holds 700 MiB) would report the parent's size.
    script = (
        "import sys\n"
        "from openrr.model.budget import Allowance\n"
        "from openrr.model.errors import ModelLoadError\n"
        "from openrr.model.loader import load_model\n"
        "try:\n"
        "    load_model(sys.argv[1], allowance=Allowance(64 << 20, 'the per-model limit'))\n"
        "except ModelLoadError as exc:\n"
        "    print(exc.message)\n"
        "status = open('/proc/self/status').read().splitlines()\n"
        "print(next(int(line.split()[1]) for line in status if line.startswith('VmHWM:')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, timeout=120, check=True
    )
    message, peak_kib = done.stdout.strip().splitlines()
    assert "20000x20000 (381.5 Mpx)" in message, message
    assert "more than the per-model limit" in message, message
    assert int(peak_kib) < 400 * 1024, f"peak {int(peak_kib) // 1024} MiB: the texture was decoded"


def test_without_an_allowance_the_loader_still_has_a_ceiling(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"20000x20000 .* more than the 256\.0 Mpx"):
        load_model(fixtures.texture_bomb_gltf(tmp_path))


def test_textures_and_geometry_within_the_allowance_are_counted(tmp_path: Path) -> None:
    allowance = Allowance(texture_pixels=256, texture_limit="256 px", geometry_bytes=10_000)
    load_model(fixtures.textured_gltf(tmp_path), allowance=allowance)
    assert allowance.used.texture_pixels == 16 * 16
    # 4 vertices (position, normal, uv: 32 bytes each) and 2 triangles (12 bytes each)
    assert allowance.used.geometry_bytes == 4 * 32 + 2 * 12
    with pytest.raises(ModelLoadError, match=r"geometry would take .* more than 1000 bytes"):
        load_model(
            fixtures.two_node_glb(tmp_path),
            allowance=Allowance(geometry_bytes=1000, geometry_limit="1000 bytes"),
        )


def test_other_formats_converted_through_trimesh_get_the_same_ceiling(tmp_path: Path) -> None:
    """An OBJ whose material names the bomb (the converter reads OBJ, FBX... through trimesh)."""
    import trimesh

    from openrr.model.trimesh_scene import scene_from_trimesh

    (tmp_path / "bomb.png").write_bytes(fixtures.png_bomb(20000))
    (tmp_path / "m.mtl").write_text("newmtl mat\nKd 1 1 1\nmap_Kd bomb.png\n")
    (tmp_path / "m.obj").write_text(
        "mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl mat\nf 1/1 2/2 3/3\n"
    )
    loaded = trimesh.load_scene(str(tmp_path / "m.obj"))
    with pytest.raises(ValueError, match=r"20000x20000 .* more than the 256\.0 Mpx any model may have"):
        scene_from_trimesh(loaded, "m.obj")
