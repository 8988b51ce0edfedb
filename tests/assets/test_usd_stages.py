"""The OpenUSD reader on stages written here, one feature each: primvar interpolations, polygons and
holes, winding, axis and units, subsets with materials, display colours, instancing and visibility, what
a hostile stage may not read (files outside the model's folder, value clips), and bad input.

Apart from ``test_usd.py`` (the real files and their pictures) to keep each file to one kind of input.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest

from openrr.assets import ConversionFailed
from openrr.assets.convert import convert_model
from openrr.assets.job import Job
from openrr.assets.readers import Source
from openrr.assets.settings import ConversionSettings
from openrr.model.metadata import MetadataKeeper
from tests.assets.test_usd import mesh_nodes, path_of, pxr_sdf, read, world_bounds

HEADER = '#usda 1.0\n(\n    defaultPrim = "World"\n    upAxis = "Y"\n    metersPerUnit = 1\n)\n'


def stage(tmp_path: Path, body: str, header: str = HEADER, name: str = "model.usda") -> Path:
    path = tmp_path / name
    path.write_text(header + body)
    return path


QUADS = """
def Xform "World"
{
    def Mesh "Quads"
    {
        int[] faceVertexCounts = [4, 4]
        int[] faceVertexIndices = [0, 1, 2, 3, 1, 4, 5, 2]
        point3f[] points = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (2, 0, 0), (2, 1, 0)]
        %s
    }
}
"""


def only_primitive(source: Source) -> Any:
    (node,) = mesh_nodes(source.scene)
    assert node.mesh is not None
    (primitive,) = node.mesh.primitives
    return primitive


def test_face_varying_uvs_unweld_the_corners(tmp_path: Path) -> None:
    uvs = "texCoord2f[] primvars:st = [(0, 0), (1, 0), (1, 1), (0, 1), (0, 0), (1, 0), (1, 1), (0, 1)] (\n"
    uvs += '            interpolation = "faceVarying"\n        )'
    primitive = only_primitive(read(stage(tmp_path, QUADS % uvs))[0])
    assert len(primitive.positions) == 8  # the shared edge's two points, once per face
    assert len(primitive.indices) == 4
    # each face's corners keep their own uv, v turned to glTF's top-left origin
    corners = {tuple(p[:2]) + tuple(uv) for p, uv in zip(primitive.positions, primitive.uvs, strict=True)}
    assert (1.0, 0.0, 1.0, 1.0) in corners
    assert (1.0, 0.0, 0.0, 1.0) in corners


def test_vertex_uvs_keep_the_points_welded(tmp_path: Path) -> None:
    uvs = "texCoord2f[] primvars:st = [(0, 0), (1, 0), (1, 1), (0, 1), (2, 0), (2, 1)] (\n"
    uvs += '            interpolation = "vertex"\n        )'
    primitive = only_primitive(read(stage(tmp_path, QUADS % uvs))[0])
    assert len(primitive.positions) == 6
    np.testing.assert_allclose(primitive.uvs[:, 1], 1.0 - primitive.positions[:, 1])


def test_polygons_are_fanned_and_holes_left_out(tmp_path: Path) -> None:
    body = """
def Xform "World"
{
    def Mesh "Polygons"
    {
        int[] faceVertexCounts = [5, 6, 3, 2]
        int[] faceVertexIndices = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 0, 1, 2, 0, 1]
        int[] holeIndices = [2]
        point3f[] points = [(0, 0, 0), (1, 0, 0), (2, 1, 0), (1, 2, 0), (0, 2, 0), (-1, 1, 0)]
    }
}
"""
    primitive = only_primitive(read(stage(tmp_path, body))[0])
    # pentagon: 3, hexagon: 4, the triangle is a hole, the two-corner face is no polygon
    assert len(primitive.indices) == 7
    np.testing.assert_array_equal(primitive.indices[:3], [[0, 1, 2], [0, 2, 3], [0, 3, 4]])


def test_left_handed_meshes_turn_their_winding(tmp_path: Path) -> None:
    right = only_primitive(read(stage(tmp_path, QUADS % ""))[0])
    left = only_primitive(read(stage(tmp_path, QUADS % 'uniform token orientation = "leftHanded"'))[0])
    np.testing.assert_array_equal(left.indices, right.indices[:, [0, 2, 1]])


def test_z_up_centimetres_become_y_up_metres(tmp_path: Path) -> None:
    header = '#usda 1.0\n(\n    defaultPrim = "World"\n    upAxis = "Z"\n    metersPerUnit = 0.01\n)\n'
    body = """
def Xform "World"
{
    def Mesh "Tall"
    {
        double3 xformOp:translate = (100, 0, 0)
        uniform token[] xformOpOrder = ["xformOp:translate"]
        int[] faceVertexCounts = [3]
        int[] faceVertexIndices = [0, 1, 2]
        point3f[] points = [(0, 0, 0), (50, 0, 0), (0, 0, 200)]
    }
}
"""
    scene = read(stage(tmp_path, body, header))[0].scene
    # x: 100 cm + 0..50 cm; z (up) 0..200 cm -> y 0..2 m
    np.testing.assert_allclose(world_bounds(scene), [[1.0, 0.0, 0.0], [1.5, 2.0, 0.0]], atol=1e-6)


def test_subsets_with_their_own_materials_become_parts(tmp_path: Path) -> None:
    body = """
def Xform "World"
{
    def Mesh "Split" (
        prepend apiSchemas = ["MaterialBindingAPI"]
    )
    {
        int[] faceVertexCounts = [4, 4]
        int[] faceVertexIndices = [0, 1, 2, 3, 1, 4, 5, 2]
        point3f[] points = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (2, 0, 0), (2, 1, 0)]
        rel material:binding = </World/Looks/Blue>
        uniform token subsetFamily:materialBind:familyType = "partition"

        def GeomSubset "Right" (
            prepend apiSchemas = ["MaterialBindingAPI"]
        )
        {
            uniform token elementType = "face"
            uniform token familyName = "materialBind"
            int[] indices = [1]
            rel material:binding = </World/Looks/Red>
        }
    }

    def Scope "Looks"
    {
        def Material "Red"
        {
            token outputs:surface.connect = </World/Looks/Red/Surface.outputs:surface>
            def Shader "Surface"
            {
                uniform token info:id = "UsdPreviewSurface"
                color3f inputs:diffuseColor = (1, 0, 0)
                float inputs:metallic = 0.25
                float inputs:roughness = 0.75
                color3f inputs:emissiveColor = (0, 0.5, 0)
                float inputs:opacity = 0.4
                float inputs:opacityThreshold = 0.3
                token outputs:surface
            }
        }
        def Material "Blue"
        {
            token outputs:surface.connect = </World/Looks/Blue/Surface.outputs:surface>
            def Shader "Surface"
            {
                uniform token info:id = "UsdPreviewSurface"
                color3f inputs:diffuseColor = (0, 0, 1)
                float inputs:opacity = 0.5
                token outputs:surface
            }
        }
    }
}
"""
    source, job = read(stage(tmp_path, body))
    (node,) = mesh_nodes(source.scene)
    assert node.mesh is not None
    red, blue = node.mesh.primitives
    assert (red.material.name, blue.material.name) == ("Red", "Blue")
    assert len(red.indices) == len(blue.indices) == 2
    assert red.positions[:, 0].min() == 1.0
    assert blue.positions[:, 0].max() == 1.0
    assert red.material.base_color_factor == pytest.approx((1, 0, 0, 0.4))
    assert (red.material.metallic_factor, red.material.roughness_factor) == pytest.approx((0.25, 0.75))
    assert red.material.emissive_factor == pytest.approx((0, 0.5, 0))
    assert red.material.alpha_mode == "MASK"
    assert red.material.alpha_cutoff == pytest.approx(0.3)
    assert blue.material.alpha_mode == "BLEND"
    assert not job.warnings


def test_display_colors_without_a_material(tmp_path: Path) -> None:
    uniform = 'color3f[] primvars:displayColor = [(1, 0, 0), (0, 1, 0)] (\n    interpolation = "uniform"\n)'
    primitive = only_primitive(read(stage(tmp_path, QUADS % uniform))[0])
    assert len(primitive.positions) == 8
    faces = {tuple(primitive.colors[i]) for i in primitive.indices[:, 0]}
    assert faces == {(1.0, 0.0, 0.0, 1.0), (0.0, 1.0, 0.0, 1.0)}
    constant = "color3f[] primvars:displayColor = [(0.2, 0.4, 0.6)]\nfloat[] primvars:displayOpacity = [0.5]"
    primitive = only_primitive(read(stage(tmp_path, QUADS % constant))[0])
    assert primitive.colors is None
    assert primitive.material.base_color_factor == pytest.approx((0.2, 0.4, 0.6, 0.5))


def test_instances_share_their_meshes_and_hidden_prims_are_left_out(tmp_path: Path) -> None:
    body = """
def Xform "Proto" (
    active = true
)
{
    def Mesh "Tri"
    {
        int[] faceVertexCounts = [3]
        int[] faceVertexIndices = [0, 1, 2]
        point3f[] points = [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
    }
    def Mesh "Guide"
    {
        uniform token purpose = "guide"
        int[] faceVertexCounts = [3]
        int[] faceVertexIndices = [0, 1, 2]
        point3f[] points = [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
    }
}

def Xform "World"
{
    def "A" (
        instanceable = true
        references = </Proto>
    )
    {
        double3 xformOp:translate = (5, 0, 0)
        uniform token[] xformOpOrder = ["xformOp:translate"]
    }
    def "B" (
        instanceable = true
        references = </Proto>
    )
    {
    }
    def Xform "Hidden"
    {
        token visibility = "invisible"
        def Mesh "Inside"
        {
            int[] faceVertexCounts = [3]
            int[] faceVertexIndices = [0, 1, 2]
            point3f[] points = [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
        }
    }
}
"""
    source, job = read(stage(tmp_path, body))
    scene = source.scene
    assert not job.warnings  # internal references are no files: nothing refused
    meshes = mesh_nodes(scene)
    assert [path_of(scene, n) for n in meshes] == [["World", "A", "Tri"], ["World", "B", "Tri"]]
    assert meshes[0].mesh is meshes[1].mesh  # one mesh for both instances
    assert "Hidden" not in {n.name for n in scene.nodes()}
    np.testing.assert_allclose(scene.world_transform(scene.node("A").id)[:3, 3], [5, 0, 0])


TRIANGLE = """
def Mesh "{name}"
{{
    int[] faceVertexCounts = [3]
    int[] faceVertexIndices = [0, 1, 2]
    point3f[] points = [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
}}
"""


def test_references_outside_the_models_folder_are_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "secret.usda"
    secret.write_text('#usda 1.0\n(\n    defaultPrim = "Secret"\n)\n' + TRIANGLE.format(name="Secret"))
    PIL.Image.new("RGB", (4, 4), (255, 0, 0)).save(outside / "secret.png")
    model = tmp_path / "model"
    model.mkdir()
    (model / "link.usda").symlink_to(secret)  # inside by its name, outside by what it is
    (model / "part.usda").write_text(
        '#usda 1.0\n(\n    defaultPrim = "Part"\n)\n' + TRIANGLE.format(name="Part")
    )
    body = f"""
def Xform "World"
{{
    def "Inside" (references = @./part.usda@) {{ }}
    def "Absolute" (references = @{secret}@) {{ }}
    def "Parent" (references = @../elsewhere/secret.usda@) {{ }}
    def "Remote" (payload = @http://example.invalid/secret.usda@) {{ }}
    def "Linked" (references = @./link.usda@) {{ }}
    def "Expression" (references = @`"{secret}"`@) {{ }}
    def Mesh "Textured" (prepend apiSchemas = ["MaterialBindingAPI"])
    {{
        int[] faceVertexCounts = [3]
        int[] faceVertexIndices = [0, 1, 2]
        point3f[] points = [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
        rel material:binding = </World/Look>
    }}
    def Material "Look"
    {{
        token outputs:surface.connect = </World/Look/Surface.outputs:surface>
        def Shader "Surface"
        {{
            uniform token info:id = "UsdPreviewSurface"
            color3f inputs:diffuseColor.connect = </World/Look/Image.outputs:rgb>
            token outputs:surface
        }}
        def Shader "Image"
        {{
            uniform token info:id = "UsdUVTexture"
            asset inputs:file = @{outside / "secret.png"}@
            float3 outputs:rgb
        }}
    }}
}}
"""
    source, job = read(stage(model, body))
    names = {n.name for n in source.scene.nodes()}
    assert "Part" in names or {"Inside"} <= names
    assert "Secret" not in names
    meshes = {path_of(source.scene, n)[1] for n in mesh_nodes(source.scene)}
    assert meshes == {"Inside", "Textured"}
    textured = source.scene.node("Textured").mesh
    assert textured is not None
    assert textured.primitives[0].material.base_color_texture is None
    codes = [w["warning"] for w in job.warnings]
    assert codes.count("ExternalReference") == 5
    assert codes.count("TextureNotLoaded") == 1
    # the file on disk is untouched, and read again whole by the next conversion
    assert "@./part.usda@" in (model / "model.usda").read_text()
    source, _ = read(model / "model.usda")
    assert "Secret" not in {n.name for n in source.scene.nodes()}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("junk.usda", b"#usda 1.0\n(\n def Mesh {{{{ ]]] \n"),
        ("junk.usda", b"this is not a stage at all"),
        ("junk.usdc", b"PXR-USDC" + bytes(range(256)) * 8),
        ("junk.usdz", b"PK\x03\x04" + b"\x00" * 200),
        ("junk.usd", b"\x00\x01\x02 not usd"),
    ],
)
def test_garbage_is_a_clear_conversion_failure(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConversionFailed, match="not a valid USD"):
        read(path)


def test_a_mesh_with_impossible_indices_is_left_out_with_a_warning(tmp_path: Path) -> None:
    body = """
def Xform "World"
{
    def Mesh "Broken"
    {
        int[] faceVertexCounts = [3, 3]
        int[] faceVertexIndices = [0, 1, 2, 0, 1, 99]
        point3f[] points = [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
    }
}
"""
    path = stage(tmp_path, body)
    source, job = read(path)
    assert source.scene.polygon_count == 0
    assert [w["warning"] for w in job.warnings] == ["InvalidMesh"]
    with pytest.raises(ConversionFailed) as failure:
        convert_model(path, tmp_path / "out", "model", None)
    assert failure.value.code == "EmptyModel"


def test_usd_colours_are_linear_by_default() -> None:
    for extension in (".usd", ".usda", ".usdc", ".usdz"):
        settings = ConversionSettings().for_format(extension)
        assert settings.gamma_to_linear_material is False
        assert settings.gamma_to_linear_vertex is False


def test_value_clips_outside_the_folder_are_never_opened(tmp_path: Path) -> None:
    """Clips give time samples; the reader reads the default time only, so their layers stay closed."""
    from openrr.assets.readers.usd.stage import open_stage
    from openrr.assets.readers.usd.walk import build_scene

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "clip.usda"
    secret.write_text('#usda 1.0\n(\n    defaultPrim = "Secret"\n)\n' + TRIANGLE.format(name="Secret"))
    model = tmp_path / "model"
    model.mkdir()
    body = f"""
def Xform "World"
{{
    def Mesh "Clipped" (
        clips = {{
            dictionary default = {{
                asset[] assetPaths = [@{secret}@]
                asset manifestAssetPath = @{secret}@
                string primPath = "/Secret"
                double2[] active = [(0, 0)]
                double2[] times = [(0, 0)]
            }}
        }}
    )
    {{
        int[] faceVertexCounts = [3]
        int[] faceVertexIndices = [0, 1, 2]
        point3f[] points = [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
    }}
}}
"""
    path = stage(model, body)
    job = Job(log=lambda line: None)
    with open_stage(job, path) as opened:
        scene = build_scene(job, opened, path.name, MetadataKeeper())
        assert pxr_sdf.Layer.Find(str(secret)) is None
    assert scene.polygon_count == 1


def test_implicit_shapes_are_tessellated_at_their_size(tmp_path: Path) -> None:
    body = """
def Xform "World"
{
    def Cube "Box"
    {
        double size = 2
        color3f[] primvars:displayColor = [(1, 0.5, 0)]
    }
    def Sphere "Ball"
    {
        double radius = 0.5
    }
    def Cylinder "Rod"
    {
        uniform token axis = "X"
        double height = 4
        double radius = 0.25
    }
    def Cone "Spike"
    {
        uniform token axis = "Y"
        double height = 3
        double radius = 1
    }
    def Capsule "Pill"
    {
        double height = 1
        double radius = 0.5
    }
    def Plane "Floor"
    {
        uniform token axis = "Y"
        double width = 6
        double length = 2
    }
    def Sphere "Broken"
    {
        double radius = -1
    }
}
"""
    source, job = read(stage(tmp_path, body))
    scene = source.scene
    sizes = {n.name: world_bounds_of(scene, n.id) for n in mesh_nodes(scene)}
    np.testing.assert_allclose(sizes["Box"], [[-1, -1, -1], [1, 1, 1]], atol=1e-6)
    np.testing.assert_allclose(sizes["Ball"], [[-0.5] * 3, [0.5] * 3], atol=5e-3)  # 32 sides round
    np.testing.assert_allclose(sizes["Rod"][:, 0], [-2, 2], atol=1e-6)  # along X
    np.testing.assert_allclose(sizes["Spike"][:, 1], [-1.5, 1.5], atol=1e-6)  # along Y, centred
    np.testing.assert_allclose(sizes["Pill"][:, 2], [-1, 1], atol=1e-6)  # height + 2 radii along Z
    np.testing.assert_allclose(sizes["Floor"], [[-3, 0, -1], [3, 0, 1]], atol=1e-6)  # normal along Y
    box = scene.node("Box").mesh
    assert box is not None
    assert box.triangle_count == 12
    assert box.primitives[0].material.base_color_factor == pytest.approx((1, 0.5, 0, 1))
    assert [w["warning"] for w in job.warnings] == ["InvalidMesh"]  # the negative radius
    assert "Broken" in job.warnings[0]["details"]


def world_bounds_of(scene: Any, node_id: int) -> Any:
    bounds = scene.world_bounds(node_id)
    assert bounds is not None
    return bounds


def test_point_instancers_and_points_are_counted_not_converted(tmp_path: Path) -> None:
    body = """
def Xform "World"
{
    def Points "Dust"
    {
        point3f[] points = [(0, 0, 0)]
    }
    def PointInstancer "Scatter"
    {
        rel prototypes = </World/Scatter/Prototypes/Tri>
        int[] protoIndices = [0, 0]
        point3f[] positions = [(0, 0, 0), (3, 0, 0)]
        def Scope "Prototypes"
        {
            def Mesh "Tri"
            {
                int[] faceVertexCounts = [3]
                int[] faceVertexIndices = [0, 1, 2]
                point3f[] points = [(0, 0, 0), (1, 0, 0), (0, 1, 0)]
            }
        }
    }
"""
    body += TRIANGLE.format(name="Kept") + "}\n"
    source, job = read(stage(tmp_path, body))
    assert [n.name for n in mesh_nodes(source.scene)] == ["Kept"]
    (warning,) = job.warnings
    assert warning["warning"] == "UnsupportedPrims"
    assert "left out: 1 PointInstancer, 1 Points" in warning["details"]


def test_a_package_cannot_reach_out_of_itself(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "secret.usda"
    secret.write_text('#usda 1.0\n(\n    defaultPrim = "Secret"\n)\n' + TRIANGLE.format(name="Secret"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "beside.usda").write_text(secret.read_text())
    inner = (
        HEADER
        + f"""
def Xform "World"
{{
    def "Absolute" (
        references = @{secret}@
    ) {{ }}
    def "Up" (
        references = @../beside.usda@
    ) {{ }}
}}
"""
    )
    package = model / "model.usdz"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("model.usda", inner)
    source, job = read(package)
    assert {n.name for n in source.scene.nodes()} == {"World", "Absolute", "Up"}
    codes = [w["warning"] for w in job.warnings]
    assert codes == ["ExternalReference", "CompositionError"]  # ".." stays inside the package: not found
    assert "elsewhere" not in job.warnings[1]["details"]
    assert str(tmp_path) not in job.warnings[1]["details"]  # no folder of this machine in the message


def test_absurd_counts_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The limits, made small here so that a small stage passes them: a stage of more prims fails, a mesh
    of more points is left out."""
    from openrr.assets.readers.usd import geometry, walk

    path = stage(tmp_path, QUADS % "")
    monkeypatch.setattr(geometry, "MAX_POINTS", 5)
    source, job = read(path)
    assert source.scene.polygon_count == 0
    assert "6 points" in job.warnings[0]["details"]
    monkeypatch.setattr(walk, "MAX_PRIMS", 1)
    with pytest.raises(ConversionFailed, match="more than 1 prims"):
        read(path)
