"""The E57 and LAS/LAZ readers on real files written by real tools (tests/data/formats, see SOURCE.md
there), on files laspy and pye57 write here (16-bit colours, intensity only, far-away coordinates, every
LAS point format, scan poses, invalid points) and on broken ones. Expected counts, bounds and colours
come from the files' own headers, or from what the test wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from openrr.assets import ConversionFailed
from openrr.assets.convert import convert_model
from openrr.assets.job import Job
from openrr.assets.readers import read_input, source
from openrr.assets.readers.e57 import _cartesian
from openrr.assets.readers.source import Source
from openrr.model.metadata import MetadataKeeper

laspy = pytest.importorskip("laspy")
pytest.importorskip("lazrs")
pye57 = pytest.importorskip("pye57")

DATA = Path(__file__).resolve().parents[1] / "data" / "formats"
LAS_FILES = sorted((DATA / "las").glob("*.la[sz]"))
E57_FILES = sorted((DATA / "e57").glob("*.e57"))


RGBA8 = 0.5 / 255 + 1e-9  # a cloud keeps its colours as 8-bit RGBA: half a step of rounding


def read(path: Path) -> Source:
    return read_input(Job(lambda line: None), path, path.suffix.lower(), MetadataKeeper(None))


def world_points(found: Source) -> tuple[np.ndarray, np.ndarray | None]:
    """Every cloud's points in world coordinates (float64), and their colours (linear, 0..1: a cloud keeps
    them as RGBA8)."""
    positions, colours = [], []
    for node_id, cloud in found.points.items():
        world = found.scene.world_transform(node_id)
        positions.append(cloud.positions.astype(np.float64) @ world[:3, :3].T + world[:3, 3])
        colours.append(None if cloud.colors is None else cloud.colors.astype(np.float64) / 255.0)
    known = [c for c in colours if c is not None]
    rgba: np.ndarray | None = np.concatenate(known) if len(known) == len(colours) else None
    return np.concatenate(positions), rgba


# -- real files ------------------------------------------------------------------------------------------


def test_the_vendored_files_are_there() -> None:
    assert {p.name for p in LAS_FILES} >= {"simple.las", "simple.laz", "simple1_1.las", "test1_4.las"}
    assert {p.name for p in E57_FILES} == {"bunnyFloat.e57", "pipeSpherical.e57"}


@pytest.mark.parametrize("path", LAS_FILES, ids=lambda p: p.name)
def test_real_las_files_match_their_headers(path: Path, tmp_path: Path) -> None:
    with laspy.open(path) as reader:
        header = reader.header
        count, low, high = int(header.point_count), header.mins, header.maxs
        has_rgb = "red" in header.point_format.dimension_names
    found = read(path)
    positions, colours = world_points(found)
    assert len(positions) == count
    # The header's bounds are the scaled extremes; a half unit of the scale is rounding.
    tolerance = np.asarray(header.scales) + 1e-6 * np.abs(high)
    np.testing.assert_array_less(np.abs(positions.min(axis=0) - low), tolerance)
    np.testing.assert_array_less(np.abs(positions.max(axis=0) - high), tolerance)
    assert colours is not None
    assert colours.shape == (count, 4)
    assert colours.min() >= 0.0
    assert colours.max() <= 1.0
    grey = np.allclose(colours[:, 0], colours[:, 1]) and np.allclose(colours[:, 1], colours[:, 2])
    assert grey is not has_rgb  # the RGB files are coloured, the others show intensity as grey

    result = convert_model(path, tmp_path, "cloud", None)
    info = json.loads(result.info_path.read_text())
    assert info["inputStatistics"]["numPoints"] == count


def test_las_rgb_is_the_files_colour() -> None:
    path = DATA / "las" / "simple.las"
    record = laspy.read(path)
    expected = np.stack([record.red, record.green, record.blue], axis=1) / 255.0  # 8-bit values here
    assert int(expected.max() * 255) <= 255
    _, colours = world_points(read(path))
    assert colours is not None
    np.testing.assert_allclose(colours[:, :3], expected, atol=RGBA8)


def test_las_intensity_is_grey_by_its_largest_value() -> None:
    path = DATA / "las" / "simple1_1.las"
    intensity = np.asarray(laspy.read(path).intensity, dtype=np.float64)
    _, colours = world_points(read(path))
    assert colours is not None
    np.testing.assert_allclose(colours[:, 0], intensity / intensity.max(), atol=RGBA8)


def test_las_far_from_zero_keeps_its_precision() -> None:
    # Global Mapper's file: 1.69 million metres with a micrometre scale. float32 alone would round to 0.125 m.
    path = DATA / "las" / "test1_4.las"
    record = laspy.read(path)
    expected = np.stack([record.x, record.y, record.z], axis=1)
    found = read(path)
    ((node_id, _cloud),) = found.points.items()
    assert np.abs(found.scene.world_transform(node_id)[:3, 3]).max() > 1e6  # the origin is in the node
    positions, _ = world_points(found)
    assert np.abs(positions - expected).max() < 1e-4


@pytest.mark.parametrize("path", E57_FILES, ids=lambda p: p.name)
def test_real_e57_files_match_their_headers(path: Path, tmp_path: Path) -> None:
    e57 = pye57.E57(str(path))
    header = e57.get_header(0)
    count = int(header.point_count)
    bounds = header.node["cartesianBounds"]
    low = np.array([bounds[f"{axis}Minimum"].value() for axis in "xyz"])
    high = np.array([bounds[f"{axis}Maximum"].value() for axis in "xyz"])
    e57.close()
    found = read(path)
    positions, _ = world_points(found)
    assert len(positions) == count
    np.testing.assert_allclose(positions.min(axis=0), low, atol=1e-6)
    np.testing.assert_allclose(positions.max(axis=0), high, atol=1e-6)
    assert next(iter(found.scene.nodes())).name == path.stem
    result = convert_model(path, tmp_path, "cloud", None)
    assert json.loads(result.info_path.read_text())["inputStatistics"]["numPoints"] == count


def test_e57_colours_follow_the_colour_limits() -> None:
    path = DATA / "e57" / "pipeSpherical.e57"
    e57 = pye57.E57(str(path))
    limits = e57.get_header(0).node["colorLimits"]
    top = limits["colorRedMaximum"].value()
    raw = e57.read_scan_raw(0)
    e57.close()
    expected = np.stack([raw["colorRed"], raw["colorGreen"], raw["colorBlue"]], axis=1) / top
    _, colours = world_points(read(path))
    assert colours is not None
    np.testing.assert_allclose(colours[:, :3], expected, atol=RGBA8)
    assert len(np.unique(colours[:, :3].round(2), axis=0)) > 50  # a real photo-coloured scan


def test_e57_without_colour_or_intensity_has_none() -> None:
    _, colours = world_points(read(DATA / "e57" / "bunnyFloat.e57"))
    assert colours is None


# -- generated LAS/LAZ -----------------------------------------------------------------------------------


def write_las(path: Path, point_format: int, xyz: np.ndarray, **fields: np.ndarray) -> None:
    header = laspy.LasHeader(point_format=point_format, version="1.4" if point_format > 3 else "1.2")
    header.offsets = np.floor(xyz.min(axis=0))
    header.scales = np.array([0.001, 0.001, 0.001])
    data = laspy.LasData(header)
    data.x, data.y, data.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    for name, values in fields.items():
        setattr(data, name, values)
    data.write(path)


@pytest.mark.parametrize("extension", [".las", ".laz"])
def test_16_bit_colours(tmp_path: Path, extension: str) -> None:
    rng = np.random.default_rng(1)
    xyz = rng.uniform(0, 10, (5000, 3))
    rgb = rng.integers(0, 65536, (5000, 3), dtype=np.uint16)
    rgb[0] = 65535
    path = tmp_path / f"colours{extension}"
    write_las(path, 3, xyz, red=rgb[:, 0], green=rgb[:, 1], blue=rgb[:, 2])
    positions, colours = world_points(read(path))
    np.testing.assert_allclose(positions, xyz, atol=6e-4)
    assert colours is not None
    np.testing.assert_allclose(colours[:, :3], rgb / 65535.0, atol=RGBA8)
    np.testing.assert_array_equal(colours[:, 3], 1.0)


def test_intensity_when_the_rgb_is_all_zero(tmp_path: Path) -> None:
    xyz = np.stack([np.arange(100.0), np.zeros(100), np.zeros(100)], axis=1)
    intensity = np.arange(100, dtype=np.uint16) * 10
    path = tmp_path / "blank.laz"
    write_las(path, 2, xyz, intensity=intensity)  # format 2 has RGB fields, every one 0
    _, colours = world_points(read(path))
    assert colours is not None
    np.testing.assert_allclose(colours[:, 1], intensity / 990.0, atol=RGBA8)


def test_no_colour_and_no_intensity_gives_none(tmp_path: Path) -> None:
    path = tmp_path / "plain.las"
    write_las(path, 0, np.eye(3))
    _, colours = world_points(read(path))
    assert colours is None


def test_far_offset_and_fine_scale(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    xyz = np.array([4.2e6, 5.3e6, 120.0]) + rng.uniform(0, 50, (2000, 3))
    header = laspy.LasHeader(point_format=1, version="1.2")
    header.offsets = [4.2e6, 5.3e6, 0.0]
    header.scales = [1e-4, 1e-4, 1e-4]
    data = laspy.LasData(header)
    data.x, data.y, data.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    path = tmp_path / "far.laz"
    data.write(path)
    written = laspy.read(path)
    expected = np.stack([written.x, written.y, written.z], axis=1)
    positions, _ = world_points(read(path))
    assert np.abs(positions - expected).max() < 1e-5


@pytest.mark.parametrize("point_format", range(11))
def test_every_point_format(tmp_path: Path, point_format: int) -> None:
    xyz = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [2.0, 1.0, 0.5]])
    path = tmp_path / f"format{point_format}.las"
    write_las(path, point_format, xyz, intensity=np.array([10, 20, 40], dtype=np.uint16))
    positions, colours = world_points(read(path))
    np.testing.assert_allclose(positions, xyz, atol=6e-4)
    assert colours is not None  # zero RGB where the format has it: the intensity shows
    np.testing.assert_allclose(colours[:, 0], [0.25, 0.5, 1.0], atol=RGBA8)


def test_chunks_add_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from openrr.assets.readers import las

    monkeypatch.setattr(las, "CHUNK_POINTS", 1000)
    monkeypatch.setattr(las, "LAZ_POINTS_PER_BYTE", 1)  # the arrays must grow past the first guess
    xyz = np.stack([np.arange(25_000.0), np.zeros(25_000), np.zeros(25_000)], axis=1)
    path = tmp_path / "many.laz"
    write_las(path, 0, xyz)
    positions, _ = world_points(read(path))
    np.testing.assert_allclose(positions[:, 0], np.arange(25_000.0), atol=6e-4)


# -- E57 written by pye57 --------------------------------------------------------------------------------


def test_e57_pose_invalid_points_and_intensity(tmp_path: Path) -> None:
    path = tmp_path / "posed.e57"
    local = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [9.0, 9.0, 9.0]])
    quarter = np.array([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)])  # 90 degrees about z
    with pye57.E57(str(path), mode="w") as e57:
        e57.write_scan_raw(
            {
                "cartesianX": local[:, 0],
                "cartesianY": local[:, 1],
                "cartesianZ": local[:, 2],
                "cartesianInvalidState": np.array([0, 0, 0, 2], dtype=np.int8),
                "intensity": np.array([0.0, 0.5, 1.0, 1.0], dtype=np.float32),
            },
            name="posed",
            rotation=quarter,
            translation=np.array([100.0, 0.0, 0.0]),
        )
    found = read(path)
    positions, colours = world_points(found)
    # 90 degrees about z: (x, y, z) -> (-y, x, z); then 100 along x. The fourth point is invalid.
    np.testing.assert_allclose(positions, [[100, 1, 0], [98, 0, 0], [100, 0, 3]], atol=1e-5)
    assert colours is not None
    np.testing.assert_allclose(colours[:, 0], [0.0, 0.5, 1.0], atol=RGBA8)
    assert [node.name for node in found.scene.nodes()] == ["posed", "posed"]


def test_spherical_coordinates_follow_e57() -> None:
    # E57: azimuth from +x towards +y, elevation up from the xy plane.
    chunk = {
        "sphericalRange": np.array([2.0, 3.0, 1.0]),
        "sphericalAzimuth": np.array([0.0, np.pi / 2, 0.0]),
        "sphericalElevation": np.array([0.0, 0.0, np.pi / 2]),
    }
    xyz = _cartesian(chunk, ("sphericalRange", "sphericalAzimuth", "sphericalElevation"))
    np.testing.assert_allclose(xyz, [[2, 0, 0], [0, 3, 0], [0, 0, 1]], atol=1e-12)


# -- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "cut"), [("simple.las", 0.5), ("simple.laz", 0.5), ("bunnyFloat.e57", 0.6)])
def test_truncated_files_fail_cleanly(tmp_path: Path, name: str, cut: float) -> None:
    original = (DATA / ("e57" if name.endswith(".e57") else "las") / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(original[: int(len(original) * cut)])
    with pytest.raises(ConversionFailed) as caught:
        read(path)
    assert name in caught.value.message
    assert str(tmp_path) not in caught.value.message


@pytest.mark.parametrize("name", ["noise.las", "noise.laz", "noise.e57", "empty.las", "empty.e57"])
def test_garbage_fails_cleanly(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"" if name.startswith("empty") else np.random.default_rng(3).bytes(4096))
    with pytest.raises(ConversionFailed, match="not a readable"):
        read(path)


@pytest.mark.parametrize("extension", [".las", ".laz"])
def test_zero_points(tmp_path: Path, extension: str) -> None:
    path = tmp_path / f"none{extension}"
    laspy.LasData(laspy.LasHeader(point_format=3, version="1.2")).write(path)
    with pytest.raises(ConversionFailed, match="holds no points") as caught:
        read(path)
    assert caught.value.code == "EmptyModel"


@pytest.mark.parametrize("name", ["las/simple.laz", "e57/bunnyFloat.e57"])
def test_the_point_limit(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(source, "MAX_POINTS", 1000)
    with pytest.raises(ConversionFailed, match="more than the 1000") as caught:
        read(DATA / name)
    assert caught.value.code == "TooManyPoints"
