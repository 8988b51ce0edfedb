"""A real file of every input format, converted by the converter and streamed by a real render server.

For each format one vendored file written by a real tool (tests/data/formats, each folder's SOURCE.md
says which; XYZ, a plain text format that tools write alike, is written here) is converted to an
``.arrAsset``, loaded over the data channel into one render server, and looked at from above and to the
side, framed. Checked:

* statistics: the ``model.loaded`` answer and the server's ``stats`` count the triangles or points the
  conversion reported;
* pixels: the streamed picture (H.264 at 320 x 180) matches the picture the renderer draws of the same
  asset from the same camera in this process (the model where it should be, in its colours): the
  covered area agrees and the mean colour difference over 8 x 8 blocks is small. The reference's
  covered area is itself asserted, so an empty picture cannot match an empty picture.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from numpy.typing import NDArray

from openrr.assets.convert import convert_model
from openrr.client.connection import connect
from openrr.model.loader import load_model
from openrr.render.camera import Camera
from openrr.render.renderer import Renderer
from tests.render.live import LiveServer, live_server

DATA = Path(__file__).resolve().parent.parent / "data" / "formats"
W, H = 320, 180  # live_server's video size
Frame = NDArray[np.uint8]


@dataclass(frozen=True)
class Case:
    format: str
    files: tuple[str, ...]  # under DATA; the first is the model
    min_cover: float  # the least share of the picture the framed model covers

    @property
    def model(self) -> str:
        return self.files[0]


CASES = (
    Case("glTF (GLB, Draco)", ("gltf/draco.glb",), 0.05),
    Case(
        "glTF (texture transform, unlit)",
        ("gltf/texture-transform-unlit.gltf", "gltf/texture-transform-unlit.bin", "gltf/baseColor.png"),
        0.05,
    ),
    Case(
        "FBX",
        (
            "fbx/spider.fbx",
            "fbx/SpiderTex.jpg",
            "fbx/drkwood2.jpg",
            "fbx/engineflare1.jpg",
            "fbx/wal67ar_small.jpg",
        ),
        0.01,  # a spider: thin legs
    ),
    Case(
        "OBJ",
        (
            "obj/spider.obj",
            "obj/spider.mtl",
            "obj/wal69ar_small.jpg",
            "fbx/SpiderTex.jpg",
            "fbx/drkwood2.jpg",
            "fbx/engineflare1.jpg",
            "fbx/wal67ar_small.jpg",
        ),
        0.01,  # a spider: thin legs
    ),
    Case("PLY (Blender)", ("ply/cube_uv.ply",), 0.05),
    Case("PLY (binary, MeshLab)", ("ply/cube_binary.ply",), 0.05),
    Case("E57", ("e57/bunnyFloat.e57",), 0.02),
    Case("LAS", ("las/simple.las",), 0.02),
    Case("LAZ", ("las/simple.laz",), 0.02),
    Case("STEP", ("step/red_cube_blue_cylinder.step",), 0.05),
    Case("IFC", ("ifc/WithArcBoundary.ifc",), 0.05),
    Case("OpenUSD (usdc)", ("usd/bear.usdc",), 0.05),
    Case("OpenUSD (usdz)", ("usd/RoughnessTest.usdz",), 0.05),
)


def write_xyz(path: Path) -> None:
    """A coloured 2 x 1 m wave of 20,000 points, ``x y z r g b`` per line as scanners' tools write it."""
    rng = np.random.default_rng(7)
    x, y = rng.uniform(0, 2, 20_000), rng.uniform(0, 1, 20_000)
    z = 0.1 * np.sin(6 * x)
    rgb = np.stack([x / 2 * 255, np.full_like(x, 60), (1 - x / 2) * 255], axis=1)
    np.savetxt(path, np.hstack([np.stack([x, y, z], axis=1), rgb]), fmt=["%.4f"] * 3 + ["%d"] * 3)


@dataclass(frozen=True)
class Converted:
    case: Case
    asset: str  # the asset's name in the model folder
    triangles: int
    points: int


def convert(case: Case, into: Path, models: Path, index: int) -> Converted:
    source = into / f"source-{index}"
    source.mkdir()
    for name in case.files:
        shutil.copy(DATA / name, source / Path(name).name)
    model = source / Path(case.model).name
    return converted(case, model, models, index)


def converted(case: Case, model: Path, models: Path, index: int) -> Converted:
    stem = f"model-{index}"
    result = convert_model(model, models / stem, stem)
    stats = result.info["inputStatistics"]
    asset = Path(result.asset_path)
    return Converted(case, f"{stem}/{asset.name}", int(stats["numFaces"]), int(stats.get("numPoints", 0)))


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Converted]]:
    work = tmp_path_factory.mktemp("formats")
    models = work / "models"
    models.mkdir()
    done = [convert(case, work, models, i) for i, case in enumerate(CASES)]
    xyz = work / "wave.xyz"
    write_xyz(xyz)
    done.append(converted(Case("XYZ", (), 0.05), xyz, models, len(done)))
    return models, done


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer(W, H) as r:
        yield r


@pytest_asyncio.fixture(loop_scope="module")
async def server(assets: tuple[Path, list[Converted]]) -> AsyncIterator[LiveServer]:
    async with live_server(assets[0]) as live:
        yield live


def covered(frame: Frame, background: Frame) -> NDArray[np.bool_]:
    """Pixels that differ from the empty picture's (the background is a gradient, not one colour)."""
    diff = np.abs(frame.astype(np.int16) - background.astype(np.int16)).max(axis=2)
    return np.asarray(diff > 24)


def blocks(frame: Frame) -> NDArray[np.float64]:
    h, w = frame.shape[0] // 8 * 8, frame.shape[1] // 8 * 8
    return np.asarray(frame[:h, :w].reshape(h // 8, 8, w // 8, 8, 3).mean(axis=(1, 3)))


@pytest.mark.asyncio(loop_scope="module")
async def test_every_format_converts_and_streams(
    assets: tuple[Path, list[Converted]], renderer: Renderer, server: LiveServer
) -> None:
    models, done = assets
    assert len(done) == len(CASES) + 1
    async with await connect("127.0.0.1", server.port, server.token()) as conn:
        await conn.wait_frames(conn.frames_received + 3, timeout=60)
        empty = renderer.render(Camera())
        for item in done:
            what = item.case.format
            scene = load_model(str(models / item.asset))
            camera = Camera()
            camera.frame_from_above(scene.bounds(), W / H)
            renderer.set_scene(scene)
            reference = renderer.render(camera)

            loaded = await conn.load_model(item.asset, "m")
            if item.triangles:
                assert loaded["polygons"] == item.triangles, what
            await conn.request(
                {
                    "type": "camera.set",
                    "position": camera.position.tolist(),
                    "orientation": camera.orientation.tolist(),
                    "fov": camera.fov,
                }
            )
            await conn.wait_frames(conn.frames_received + 8, timeout=60)
            stats = await conn.stats()
            assert stats["points"] == item.points, what
            if item.triangles:
                assert stats["polygons"] == item.triangles, what
            image = conn.latest_image()
            assert image is not None, what
            assert image.shape[:2] == (H, W), what
            await conn.unload_model("m")

            mine, theirs = covered(reference, empty), covered(image, empty)
            assert mine.mean() >= item.case.min_cover, (what, mine.mean())
            assert abs(theirs.mean() - mine.mean()) < 0.25 * mine.mean(), (what, mine.mean(), theirs.mean())
            overlap = (mine & theirs).sum() / (mine | theirs).sum()
            assert overlap > 0.6, (what, overlap)  # thin legs lose pixels to H.264; solid models are > 0.85
            # Colours: 8 x 8 block means of the blocks the model touches, the largest channel difference.
            touched = blocks(np.repeat(mine[..., None], 3, axis=2).astype(np.uint8))[..., 0] > 0
            difference = np.abs(blocks(reference) - blocks(image)).max(axis=2)[touched]
            assert difference.mean() < 8, (what, difference.mean())
            assert difference.max() < 48, (what, difference.max())
