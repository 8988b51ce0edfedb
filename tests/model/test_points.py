"""Point clouds in the model and the .arrAsset: the level-of-detail order (every prefix spread evenly over
the whole cloud), the native storage (views of the file, RGBA8 colours, levels), version 2 assets with
points still loading as points, and refusals of malformed clouds."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from openrr.model.arrasset.layout import ALIGN, HEADER, HEADER_CHECKED, HEADER_SIZE, MAGIC, Asset
from openrr.model.arrasset.reader import read_asset
from openrr.model.arrasset.writer import write_asset
from openrr.model.errors import ModelLoadError
from openrr.model.mesh import Mesh, Primitive
from openrr.model.point_order import finest_depth, level_order, with_levels
from openrr.model.points import PointCloud, PointLevel, points_for
from openrr.model.scene import Scene
from tests.model.test_arrasset import manifest_of, with_manifest


def surface_cloud(count: int, seed: int = 3) -> PointCloud:
    """Points spread evenly over a curved 4 x 2 sheet (a scan-like surface), coloured by position."""
    rng = np.random.default_rng(seed)
    x, y = rng.random(count) * 4.0 - 2.0, rng.random(count) * 2.0 - 1.0
    positions = np.stack([x, y, 0.3 * np.sin(x)], axis=1).astype(np.float32)
    colors = np.stack([(x + 2) / 4, (y + 1) / 2, np.full(count, 0.5), np.ones(count)], axis=1)
    return PointCloud(positions, colors, 0.01)


def octant_shares(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The share of ``points`` in each octant of the box (low, high)."""
    centre = (low + high) / 2
    octant = ((points > centre) * [1, 2, 4]).sum(axis=1)
    return np.bincount(octant, minlength=8) / len(points)


def test_every_prefix_spreads_over_the_whole_cloud() -> None:
    cloud = with_levels(surface_cloud(200_000))
    low, high = cloud.bounds
    whole = octant_shares(cloud.positions, low, high)
    assert (whole > 0.05).sum() >= 4  # the sheet's curve reaches several octants
    counts = {level.count for level in cloud.levels if level.count >= 500} | {777, 5_000, 33_333, 150_001}
    for count in sorted(counts):
        prefix = octant_shares(cloud.positions[:count], low, high)
        # Each octant gets its share of the prefix within a few points' worth of noise.
        assert np.abs(prefix - whole).max() <= 0.03 + 3 / np.sqrt(count), count


def cells_at(cells: np.ndarray, shift: int) -> set[tuple[int, ...]]:
    """The distinct cells of ``cells`` (finest-depth integer cells) ``shift`` depths coarser."""
    return set(map(tuple, (cells >> shift).tolist()))


def test_each_level_has_a_point_in_every_occupied_cell_of_its_depth() -> None:
    positions = surface_cloud(50_000).positions
    order, levels = level_order(positions, 0.01)
    assert np.array_equal(np.sort(order), np.arange(len(positions)))  # a permutation
    depth = finest_depth(len(positions))
    low = positions.min(axis=0).astype(np.float64)
    extent = float((positions.max(axis=0) - low).max())
    grid = np.clip((positions.astype(np.float64) - low) * ((1 << depth) / extent), 0, (1 << depth) - 1)
    cells = grid.astype(np.int64)
    ordered = cells[order]
    cell_levels = [level for level in levels if level.spacing > 0.01]  # not clamped to the point size
    assert len(cell_levels) >= 6
    for index, level in enumerate(cell_levels):
        cell_depth = round(np.log2(extent / level.spacing))
        shift = depth - cell_depth
        prefix_cells = cells_at(ordered[: level.count], shift)
        assert prefix_cells == cells_at(cells, shift), index  # every occupied cell, at once
        # ... and only one point per cell: a level adds a point to each cell it splits.
        assert len(prefix_cells) == level.count
    assert levels[-1].count == len(positions)
    assert [lv.spacing for lv in levels] == sorted((lv.spacing for lv in levels), reverse=True)


def test_the_prefix_drawn_follows_the_screen_density_and_the_budget() -> None:
    cloud = with_levels(surface_cloud(100_000))
    far, near = points_for(cloud, 10.0, 10**9), points_for(cloud, 1000.0, 10**9)
    assert 1 <= far < near <= cloud.count
    assert points_for(cloud, 1e9, 1234) == 1234
    assert cloud.spacing_at(far) * 10.0 <= 1.0
    assert cloud.spacing_at(cloud.count) == pytest.approx(cloud.point_size)
    assert cloud.spacing_at(10) > cloud.spacing_at(1000) > cloud.spacing_at(100_000)


def test_points_are_stored_natively_and_read_as_views_of_the_file() -> None:
    scene = Scene("scan")
    cloud = with_levels(surface_cloud(10_000))
    node = scene.add_node("cloud", points=cloud)
    assert scene.point_count == 10_000
    assert scene.polygon_count == 0
    bounds = scene.bounds()
    assert bounds is not None
    np.testing.assert_allclose(bounds, cloud.bounds)
    data = write_asset(Asset(scene))
    manifest = manifest_of(data)
    (primitive,) = manifest["meshes"][0]["primitives"]
    assert primitive["mode"] == "points"
    assert primitive["levels"] == [{"count": v.count, "spacing": v.spacing} for v in cloud.levels]
    assert [manifest["buffers"][primitive[k]["buffer"]]["dtype"] for k in ("positions", "colors")] == [
        "<f4",
        "<u1",
    ]
    assert struct.unpack_from("<I", data, 8)[0] == 3

    asset = read_asset(data)
    loaded = asset.scene.node("cloud").points
    assert loaded is not None
    assert asset.scene.node("cloud").mesh is None
    np.testing.assert_array_equal(loaded.positions, cloud.positions)
    assert loaded.colors is not None
    assert cloud.colors is not None
    np.testing.assert_array_equal(loaded.colors, cloud.colors)
    assert loaded.levels == cloud.levels
    file_bytes = np.frombuffer(data, dtype=np.uint8)
    assert np.shares_memory(loaded.positions, file_bytes)  # no copy of the positions...
    assert np.shares_memory(loaded.colors, file_bytes)  # ... nor of the colours
    triangle = Primitive(np.eye(3, dtype=np.float32), np.array([[0, 1, 2]], np.uint32))
    with pytest.raises(ValueError, match="mesh or a point cloud"):
        node.mesh = Mesh("t", (triangle,))


def version_2(data: bytes) -> bytes:
    """``data`` as version 2 wrote it: the same buffers, no ``levels``, version 2 in the header."""
    manifest = manifest_of(data)
    for mesh in manifest["meshes"]:
        for primitive in mesh["primitives"]:
            primitive.pop("levels", None)
    text = json.dumps(manifest, separators=(",", ":")).encode()
    d_off = struct.unpack_from("<Q", data, 40)[0]
    body = data[d_off:]
    new_off = HEADER_SIZE + len(text) + (-(HEADER_SIZE + len(text)) % ALIGN)
    head = HEADER.pack(MAGIC, 2, 0, HEADER_SIZE, len(text), zlib.crc32(text), 0, new_off, len(body), 0, 0)
    head = head[:HEADER_CHECKED] + struct.pack("<II", zlib.crc32(head[:HEADER_CHECKED]), 0)
    return head + text + b"\0" * (new_off - HEADER_SIZE - len(text)) + body


def test_a_version_2_asset_with_points_loads_them_as_points() -> None:
    scene = Scene("old")
    cloud = surface_cloud(3_000)  # unordered, as version 2 stored them
    scene.add_node("cloud", points=cloud)
    old = version_2(write_asset(Asset(scene)))
    assert struct.unpack_from("<I", old, 8)[0] == 2
    loaded = read_asset(old).scene.node("cloud").points
    assert loaded is not None
    np.testing.assert_array_equal(loaded.positions, cloud.positions)
    assert loaded.levels == (PointLevel(3_000, cloud.point_size),)  # one level: every point


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(levels=[{"count": 10, "spacing": 1.0}]), "do not rise to the point count"),
        (
            lambda p: p.update(levels=[{"count": 2000, "spacing": 1.0}, {"count": 1000, "spacing": 0.1}]),
            "rise",
        ),
        (lambda p: p.update(levels=[{"count": 3000, "spacing": -1.0}]), "spacing"),
        (lambda p: p.update(pointCount=5), "point count"),
        (lambda p: p.update(pointSize=0), "pointSize"),
        (lambda p: p.update(levels="many"), "'levels' is not a list"),
    ],
)
def test_malformed_point_clouds_are_refused(change: Callable[[dict[str, Any]], None], message: str) -> None:
    scene = Scene("bad")
    scene.add_node("cloud", points=surface_cloud(3_000))
    data = write_asset(Asset(scene))
    manifest = manifest_of(data)
    change(manifest["meshes"][0]["primitives"][0])
    with pytest.raises(ModelLoadError, match=message):
        read_asset(with_manifest(data, manifest))


def test_clouds_refuse_malformed_input() -> None:
    with pytest.raises(ValueError, match="at least one point"):
        PointCloud(np.zeros((0, 3), np.float32), None, 1.0)
    with pytest.raises(ValueError, match="colours"):
        PointCloud(np.zeros((2, 3), np.float32), np.zeros((3, 4)), 1.0)
    with pytest.raises(ValueError, match="finite"):
        PointCloud(np.full((2, 3), np.nan, np.float32), None, 1.0)
    with pytest.raises(ValueError, match="point size"):
        PointCloud(np.zeros((2, 3), np.float32), None, float("inf"))
    rgb = PointCloud(np.zeros((2, 3), np.float32), np.array([[1.0, 0.5, 0.0], [0.0, 0.0, 1.0]]), 1.0)
    assert rgb.colors is not None
    np.testing.assert_array_equal(rgb.colors, [[255, 128, 0, 255], [0, 0, 255, 255]])
