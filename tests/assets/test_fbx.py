"""The FBX reader on real files (tests/data/formats/fbx, SOURCE.md says where each came from).

Expected numbers were established apart from the reader: node, mesh and material names and triangle counts
with another FBX library (ufbx, from the files' own polygon data), format versions from the binary files'
headers, texture sizes from the image files (or the embedded image's own bytes, read from the ASCII file),
and classic material values from the files' ``Properties70`` (``DiffuseColor``, ``SpecularColor``...).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from numpy.typing import NDArray

from openrr.assets import ConversionFailed
from openrr.assets.convert import ConversionResult, convert_model
from openrr.assets.readers import formats
from openrr.assets.settings import ConversionSettings
from openrr.model.loader import load_model
from openrr.render.camera import Camera
from openrr.render.renderer import Background, Renderer
from tests.assets.test_render import draw

DATA = Path(__file__).resolve().parents[1] / "data" / "formats" / "fbx"
W, H = 160, 120
SPIDER_NODES = [
    "klZahn", "OK", "Bein3Li", "Auge", "Kopf2", "Zahn", "Bein3Re", "Bein4Re", "Bein4Li", "Brust",
    "klZahn2", "Bein2Li", "HLeib01", "Kopf", "Zahn2", "Bein1Re", "Bein1Li", "Bein2Re", "Duplicate05",
    "Lamp", "Camera",
]  # fmt: skip


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """The vendored files in a folder of the test's own (the tests add and remove files beside them)."""
    folder = tmp_path / "models"
    shutil.copytree(DATA, folder)
    return folder


def convert(source: Path, settings: ConversionSettings | None = None) -> ConversionResult:
    return convert_model(source, source.parent.parent / f"out-{source.stem}", source.stem, settings)


@pytest.mark.parametrize(
    ("name", "version", "generator", "nodes", "triangles", "materials"),
    [
        ("spider.fbx", "7400", "Blender (stable FBX IO) - 2.76", SPIDER_NODES, 1368, 4),
        ("phong_cube.fbx", "7400", "FBX SDK/FBX Plugins version 2017.0.1", ["pCube1"], 12, 1),
        ("box_orphant_embedded_texture.fbx", "7500", "FBX SDK/FBX Plugins version 2018.1.1", ["Box"], 12, 1),
        # binary 7500: 64-bit record offsets, zlib-compressed arrays; no material (one default is given)
        ("boxWithCompressedCTypeArray.FBX", "7500", "FBX SDK/FBX Plugins version 2018.1.1", ["Box"], 12, 1),
        ("maxPbrMaterial_metalRough.fbx", "7700", "FBX SDK/FBX Plugins version 2020.0.1", ["Box001"], 12, 1),
    ],
)
def test_real_files_convert_with_their_statistics(
    models: Path, name: str, version: str, generator: str, nodes: list[str], triangles: int, materials: int
) -> None:
    source = models / name
    head = source.read_bytes()[:27]
    if head.startswith(b"Kaydara FBX Binary"):  # binary: the version is in the header
        assert str(struct.unpack_from("<I", head, 23)[0]) == version
    result = convert(source)
    info = result.info["inputInfo"]
    assert info["sourceAssetFormat"] == "FBX"
    assert info["sourceAssetFormatVersion"] == version
    assert info["sourceAssetGenerator"].startswith(generator)
    statistics = result.info["inputStatistics"]
    assert statistics["numFaces"] == triangles
    assert statistics["numMaterial"] == materials
    assert statistics["numNodes"] == len(nodes)
    scene = load_model(result.asset_path)
    assert [n.name for n in scene.nodes()] == nodes
    assert all(n.parent is None for n in scene.nodes())  # each is a child of the file's root
    assert sum(m.triangle_count for m in scene.meshes()) == triangles


def test_textures_beside_the_file_are_found_by_their_base_name(models: Path) -> None:
    """Blender wrote absolute Windows paths (D:\\projects\\...\\SpiderTex.jpg); the images lie beside the
    model, where they are found by base name: each material gets its image, at the image's size."""
    result = convert(models / "spider.fbx")
    assert result.warnings == []
    expected = {
        "BeinTex": "drkwood2.jpg",
        "Skin": "wal67ar_small.jpg",
        "Augentex": "engineflare1.jpg",
        "HLeibTex": "SpiderTex.jpg",
    }
    seen = {}
    for mesh in load_model(result.asset_path).meshes():
        for part in mesh.primitives:
            texture = part.material.base_color_texture
            assert texture is not None
            assert part.uvs is not None
            assert part.normals is not None
            seen[part.material.name] = texture.shape
    for material, image in expected.items():
        with PIL.Image.open(DATA / image) as file:
            assert seen[material] == (file.height, file.width, 4)


def test_a_texture_is_found_whatever_the_case_of_its_name(models: Path) -> None:
    (models / "SpiderTex.jpg").rename(models / "spidertex.JPG")
    result = convert(models / "spider.fbx")
    assert result.warnings == []
    materials = {
        p.material.name: p.material for m in load_model(result.asset_path).meshes() for p in m.primitives
    }
    assert materials["HLeibTex"].base_color_texture is not None


def test_embedded_texture_is_used(models: Path) -> None:
    """The ASCII file embeds a TGA (its Content, base64): the material's texture is that image."""
    text = (models / "box_orphant_embedded_texture.fbx").read_text(errors="replace")
    content = re.search(r'Content: ,\s*((?:"[A-Za-z0-9+/=]*",?\s*)+)', text)
    assert content is not None
    data = base64.b64decode("".join(re.findall(r'"([A-Za-z0-9+/=]*)"', content.group(1))))
    with PIL.Image.open(io.BytesIO(data)) as embedded:
        reference = np.asarray(embedded.convert("RGBA"))
    result = convert(models / "box_orphant_embedded_texture.fbx")
    assert result.warnings == []
    (material,) = {p.material for m in load_model(result.asset_path).meshes() for p in m.primitives}
    assert material.base_color_texture is not None
    np.testing.assert_array_equal(material.base_color_texture, reference)


def test_missing_textures_are_warnings(models: Path) -> None:
    """The 3ds Max PBR material names seven images in Textures\\, none of them shipped: the model converts
    with a warning for each map openrr uses, and keeps the material's own PBR factors."""
    result = convert(models / "maxPbrMaterial_metalRough.fbx")
    assert result.result[-1] == {"result": "succeeded with warnings"}
    codes = [entry["warning"] for entry in result.result[1:-1]]
    assert codes == ["TextureMissing"] * 6
    assert any("albedo.png" in w for w in result.warnings)
    assert all(str(models) not in w for w in result.warnings)
    (material,) = {p.material for m in load_model(result.asset_path).meshes() for p in m.primitives}
    assert material.base_color_texture is None
    assert material.metallic_factor == pytest.approx(0.25)  # 3dsMax|main|metalness
    assert material.roughness_factor == pytest.approx(0.5)  # 3dsMax|main|roughness


def test_a_texture_beside_the_file_is_used_and_one_outside_never(models: Path) -> None:
    image = PIL.Image.new("RGB", (8, 4), (200, 30, 30))
    outside = models.parent / "albedo.png"
    image.save(outside)
    source = models / "maxPbrMaterial_metalRough.fbx"
    (models / "Textures").mkdir()
    (models / "Textures" / "albedo.png").symlink_to(outside)  # a link leading out of the model's folder
    result = convert(source)
    assert any("albedo.png" in w for w in result.warnings)
    (models / "Textures" / "albedo.png").unlink()
    image.save(models / "Textures" / "albedo.png")
    result = convert(source)
    assert not any("albedo.png" in w for w in result.warnings)
    (material,) = {p.material for m in load_model(result.asset_path).meshes() for p in m.primitives}
    assert material.base_color_texture is not None
    assert material.base_color_texture.shape == (4, 8, 4)


def test_a_texture_past_the_pixel_allowance_fails_from_its_header(models: Path) -> None:
    """A PNG whose header says 30000 x 30000 (900 Mpx, past the 256 Mpx any model may have): refused
    before a pixel is decoded."""
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    (models / "Textures").mkdir()
    idat = b"IDAT" + bytes(16)
    png += struct.pack(">I", 16) + idat + struct.pack(">I", zlib.crc32(idat))
    (models / "Textures" / "albedo.png").write_bytes(png)
    with pytest.raises(ConversionFailed, match="30000x30000") as caught:
        convert(models / "maxPbrMaterial_metalRough.fbx")
    assert caught.value.code == "InputTooLarge"


@pytest.mark.parametrize("assume_metallic", [True, False])
def test_classic_phong_material_follows_fbx_assume_metallic(models: Path, assume_metallic: bool) -> None:
    settings = ConversionSettings.from_json(
        {"fbxAssumeMetallic": assume_metallic, "gammaToLinearMaterial": False}
    )
    result = convert(models / "phong_cube.fbx", settings)
    (material,) = {p.material for m in load_model(result.asset_path).meshes() for p in m.primitives}
    # phong_cube.fbx: DiffuseColor (1, .5, .5) x DiffuseFactor .5, SpecularColor (.25, .25, .5) x
    # SpecularFactor .5, ShininessExponent 10; ARR: roughness = sqrt(2 / (exponent x intensity + 2)).
    specular = [0.25 * 0.5, 0.25 * 0.5, 0.5 * 0.5]
    intensity = 0.2125 * specular[0] + 0.7154 * specular[1] + 0.0721 * specular[2]
    roughness = math.sqrt(2.0 / (10.0 * intensity + 2.0))
    assert material.roughness_factor == pytest.approx(roughness, abs=1e-3)
    if assume_metallic:
        assert 0.05 < material.metallic_factor < 1.0  # the specular colour read as metalness
    else:
        assert material.metallic_factor == 0.0
        assert material.base_color_factor[:3] == pytest.approx((0.5, 0.25, 0.25), abs=1e-3)
    assert material.base_color_factor[3] < 1.0
    assert material.alpha_mode == "BLEND"


def test_units_become_metres(models: Path) -> None:
    """phong_cube.fbx is a 1-unit cube in a centimetre file (UnitScaleFactor 1): 1 cm across in openrr;
    box_orphant_embedded_texture.fbx says metres (UnitScaleFactor 100) for its 1-unit box."""
    cube = convert(models / "phong_cube.fbx").info["outputStatistics"]["boundingBox"]
    np.testing.assert_allclose(cube["min"], [-0.005] * 3, atol=1e-6)
    np.testing.assert_allclose(cube["max"], [0.005] * 3, atol=1e-6)
    box = convert(models / "box_orphant_embedded_texture.fbx").info["outputStatistics"]["boundingBox"]
    np.testing.assert_allclose(np.subtract(box["max"], box["min"]), [1.0, 1.0, 1.0], atol=1e-4)


# -- drawn by the real renderer -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def renderer() -> Iterator[Renderer]:
    with Renderer(W, H) as r:
        r.background = Background((0.0, 0.0, 1.0), None)
        yield r


def model_pixels(frame: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Pixels that are not the pure blue background."""
    return (frame[..., 2] < 200) | (frame[..., 0] > 40) | (frame[..., 1] > 40)


def test_textured_box_draws_where_it_is_in_its_grey(models: Path, renderer: Renderer) -> None:
    """The box spans y 0..1 and x, z -0.5..0.5 (metres); seen from the front it fills the middle of the
    frame, symmetric left to right, in the grey of its embedded grid texture."""
    scene = load_model(convert(models / "box_orphant_embedded_texture.fbx").asset_path)
    frame = draw(renderer, scene, Camera.look_at((0, 0.5, 3), (0, 0.5, 0), fov=50))
    mask = model_pixels(frame)
    assert mask[H // 2 - 10 : H // 2 + 10, W // 2 - 10 : W // 2 + 10].all()
    assert not mask[:, :10].any()
    assert not mask[:, -10:].any()
    columns = np.flatnonzero(mask[H // 2])
    assert abs((columns[0] + columns[-1]) / 2 - W / 2) < 3
    rows = np.flatnonzero(mask[:, W // 2])
    assert abs((rows[0] + rows[-1]) / 2 - H / 2) < 3
    face = frame[H // 2 - 10 : H // 2 + 10, W // 2 - 10 : W // 2 + 10].reshape(-1, 3)
    spread = face.max(axis=1) - face.min(axis=1)
    assert np.median(spread) < 25  # grey: red, green and blue alike
    assert np.median(face.mean(axis=1)) > 40


def test_spider_draws_around_its_centre(models: Path, renderer: Renderer) -> None:
    result = convert(models / "spider.fbx")
    box = result.info["outputStatistics"]["boundingBox"]
    low, high = np.array(box["min"]), np.array(box["max"])
    centre, size = (low + high) / 2, float(np.max(high - low))
    camera = Camera.look_at(centre + np.array([0.0, size * 0.8, size * 1.2]), centre, fov=60)
    camera.far = size * 10
    frame = draw(renderer, load_model(result.asset_path), camera)
    mask = model_pixels(frame)
    assert 0.02 < mask.mean() < 0.9
    rows, columns = np.nonzero(mask)
    assert abs(columns.mean() - W / 2) < W * 0.15
    assert abs(rows.mean() - H / 2) < H * 0.15
    colours = frame[mask]
    assert colours[:, 0].mean() > colours[:, 2].mean()  # wood and skin textures: warm, not the blue sky


# -- bad input ----------------------------------------------------------------------------------------------


def test_fbx_is_a_supported_format() -> None:
    assert formats()[".fbx"] == "FBX"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda d: (d / "spider.fbx").read_bytes()[:60000], "invalid FBX data", id="truncated-binary"
        ),
        pytest.param(
            lambda d: (d / "box_orphant_embedded_texture.fbx").read_bytes()[:9000],
            "invalid FBX data|holds no triangles",
            id="truncated-ascii",
        ),
        pytest.param(
            lambda d: b"Kaydara FBX Binary  \x00\x1a\x00" + b"\xff" * 200, "invalid FBX data", id="garbage"
        ),
        pytest.param(lambda d: b"", "invalid FBX data", id="empty"),
        pytest.param(lambda d: b"solid cube\nendsolid\n", "invalid FBX data", id="not-fbx"),
        # assimp would hand an OBJ to its OBJ importer, which opens the .mtl it names
        pytest.param(
            lambda d: b"mtllib ../secret.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n",
            "invalid FBX data",
            id="obj",
        ),
    ],
)
def test_bad_fbx_fails_cleanly(models: Path, make: Callable[[Path], bytes], message: str) -> None:
    source = models / "bad.fbx"
    source.write_bytes(make(models))
    with pytest.raises(ConversionFailed, match=message) as caught:
        convert(source)
    assert caught.value.code in ("InvalidInput", "EmptyModel")
    assert str(models) not in caught.value.message
    result = json.loads((models.parent / "out-bad" / "bad.result.json").read_text())
    assert result[-1] == {"result": "failed"}


# -- features the vendored files lack, added to a copy of one of them ------------------------------------

BOX = "box_orphant_embedded_texture.fbx"
BOX_MODEL = 2957618625584
BOX_GEOMETRY = 2957764348544
BOX_MATERIAL = 2957776713840


def _edited(models: Path, name: str, edit: Callable[[str], str]) -> Path:
    """A copy of the ASCII box with ``edit`` applied to its text (the embedded texture goes along)."""
    text = (models / BOX).read_text(encoding="utf-8", errors="surrogateescape")
    path = models / name
    path.write_text(edit(text), encoding="utf-8", errors="surrogateescape")
    return path


def _second_instance(text: str) -> str:
    """A second model, 'Box2', 3 m to the right, using the box's geometry and material."""
    start = text.index(f'\tModel: {BOX_MODEL}, "Model::Box", "Mesh" {{')
    end = text.index("\n\t}\n", start) + 4
    model = text[start:end].replace(str(BOX_MODEL), "1000001").replace("Model::Box", "Model::Box2")
    model = re.sub(r'P: "Lcl Translation", "Lcl Translation", "", "A",[^\n]*', 'P: "Lcl Translation", '
                   '"Lcl Translation", "", "A",3,0.5,0', model)  # fmt: skip
    links = f'\tC: "OO",1000001,0\n\tC: "OO",{BOX_GEOMETRY},1000001\n\tC: "OO",{BOX_MATERIAL},1000001\n'
    text = text[:end] + model + text[end:]
    at = text.index("Connections:  {\n") + len("Connections:  {\n")
    return text[:at] + links + text[at:]


def _vertex_colours(text: str) -> str:
    """Red vertex colours, one per polygon corner (24), in layer 0."""
    element = (
        '\t\tLayerElementColor: 0 {\n\t\t\tVersion: 101\n\t\t\tName: "colours"\n'
        '\t\t\tMappingInformationType: "ByPolygonVertex"\n\t\t\tReferenceInformationType: "Direct"\n'
        "\t\t\tColors: *96 {\n\t\t\t\ta: " + ",".join(["1,0,0,1"] * 24) + "\n\t\t\t}\n\t\t}\n"
    )
    text = text.replace("\t\tGeometryVersion: 124\n", "\t\tGeometryVersion: 124\n" + element, 1)
    layer = '\t\t\tLayerElement:  {\n\t\t\t\tType: "LayerElementColor"\n\t\t\t\tTypedIndex: 0\n\t\t\t}\n'
    return text.replace(
        "\t\tLayer: 0 {\n\t\t\tVersion: 100\n", "\t\tLayer: 0 {\n\t\t\tVersion: 100\n" + layer, 1
    )


def test_instances_share_one_mesh(models: Path) -> None:
    result = convert(_edited(models, "two_boxes.fbx", _second_instance))
    scene = load_model(result.asset_path)
    boxes = {n.name: n for n in scene.nodes()}
    assert set(boxes) == {"Box", "Box2"}
    assert boxes["Box"].mesh is boxes["Box2"].mesh is not None
    assert result.info["inputStatistics"]["numMeshUsagesInScene"] == 2
    assert result.info["inputStatistics"]["numMeshes"] == 1
    assert boxes["Box2"].transform[:3, 3] == pytest.approx([3.0, 0.5, 0.0], abs=1e-5)  # the file is in metres


def test_vertex_colours_are_read(models: Path) -> None:
    scene = load_model(convert(_edited(models, "red_box.fbx", _vertex_colours)).asset_path)
    (part,) = scene.meshes()[0].primitives
    assert part.colors is not None
    np.testing.assert_allclose(part.colors, np.tile([1.0, 0.0, 0.0, 1.0], (len(part.colors), 1)), atol=0.01)


def test_user_properties_are_node_metadata(models: Path) -> None:
    """3ds Max wrote user properties ("A+U") on the box; metadataKeys selects which are kept."""
    settings = ConversionSettings.from_json({"metadataKeys": ["mr displacement m*"]})
    (box,) = load_model(convert(models / BOX, settings).asset_path).nodes()
    assert box.metadata == {"mr displacement method": 6, "mr displacement max displace": 20.0}
    (box,) = load_model(convert(models / BOX).asset_path).nodes()
    assert box.metadata == {}  # ARR's default: no metadataKeys, no metadata


@pytest.mark.parametrize("damage", ["truncated", "embedded-not-base64"])
def test_damaged_fbx_fails_in_the_converter_process(models: Path, damage: str) -> None:
    """Through ``python -m openrr.assets.worker``, under a memory ceiling, as the service runs it: a clean
    failure in the result file. The second file once corrupted assimp 5.2's memory (a byte of its embedded
    image's base64 changed): the reader refuses it before assimp sees it."""
    data = bytearray((models / BOX).read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        at = data.index(b"AAAKAAAA")  # the start of the embedded TGA's base64
        data[at + 40 : at + 44] = b"\xff\xff\xff\x7f"
    source = models / "damaged.fbx"
    source.write_bytes(bytes(data))
    job = {
        "input": str(source),
        "outputDir": str(models.parent / "out"),
        "outputName": "damaged",
        "resultFile": str(models.parent / "result.json"),
        "memoryBytes": 2 << 30,
    }
    done = subprocess.run(
        [sys.executable, "-m", "openrr.assets.worker"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    result = json.loads((models.parent / "result.json").read_text())
    assert result["ok"] is False
    assert result["code"] == "InvalidInput"
    assert "invalid FBX data" in result["message"]
