"""Skies from builtin names, panoramas, cube-map crosses, strips and faces (no GL)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from openrr.model.skies import (
    BUILTIN_SKIES,
    MAX_SKY_WIDTH,
    Sky,
    builtin_sky,
    direction_to_uv,
    is_default_sky,
    panorama_directions,
    sky_from_faces,
    sky_from_image,
)

RED = (255, 0, 0, 255)
BLUE = (0, 0, 255, 255)
GREEN = (0, 255, 0, 255)
BLACK = (0, 0, 0, 255)
Image = NDArray[np.uint8]


def _face(size: int, colour: tuple[int, ...], top: tuple[int, ...] | None = None) -> Image:
    """A square face of ``colour``; its top half (image rows first) ``top`` when given."""
    face = np.empty((size, size, 4), np.uint8)
    face[:] = colour
    if top is not None:
        face[: size // 2] = top
    return face


def _faces(size: int = 16) -> list[Image]:
    """+X red with a green top half, +Y black with a green half towards -Z, the others blue."""
    faces = [_face(size, BLUE) for _ in range(6)]
    faces[0] = _face(size, RED, top=GREEN)
    faces[2] = _face(size, BLACK, top=GREEN)  # +Y: image rows grow towards +Z (t = z / |y|)
    return faces


def _colour(sky: Sky, direction: tuple[float, float, float]) -> str:
    r, g, b = sky.radiance(np.array(direction) / np.linalg.norm(direction))
    if r > 0.9 and g < 0.1 and b < 0.1:
        return "red"
    if g > 0.9 and r < 0.1 and b < 0.1:
        return "green"
    if b > 0.9 and r < 0.1 and g < 0.1:
        return "blue"
    return "black" if max(r, g, b) < 0.01 else f"{(r, g, b)}"


def _assert_cube_orientation(sky: Sky) -> None:
    assert _colour(sky, (1, -0.3, 0)) == "red"  # +X face, lower half
    assert _colour(sky, (1, 0.3, 0)) == "green"  # +X face, upper half: faces are upright
    assert _colour(sky, (-1, 0.2, 0.1)) == "blue"
    assert _colour(sky, (0, 1, -0.3)) == "green"  # +Y face, the half towards -Z
    assert _colour(sky, (0, 1, 0.3)) == "black"
    for direction in ((0, -1, 0), (0, 0, 1), (0, 0, -1)):
        assert _colour(sky, direction) == "blue"


def test_builtin_skies_are_named_cached_and_distinct() -> None:
    assert len(BUILTIN_SKIES) >= 6
    assert "default" in BUILTIN_SKIES
    means = []
    for name in BUILTIN_SKIES:
        sky = builtin_sky(name)
        assert sky is builtin_sky(name)  # generated once
        assert sky.name == name
        assert sky.image.dtype == np.float32
        height, width, channels = sky.image.shape
        assert width == 2 * height
        assert channels == 3
        assert np.isfinite(sky.image).all()
        assert sky.image.min() >= 0
        means.append(tuple(np.round(sky.image.mean(axis=(0, 1)), 3)))
    assert len(set(means)) == len(BUILTIN_SKIES)
    assert is_default_sky(None)
    assert is_default_sky(builtin_sky("default"))
    assert not is_default_sky(builtin_sky("sunset"))
    with pytest.raises(KeyError, match="no builtin sky"):
        builtin_sky("mars")


def test_builtin_sky_looks_like_a_sky() -> None:
    sky = builtin_sky("desert")
    up, down = sky.radiance((0, 1, 0)), sky.radiance((0, -1, 0))
    assert up[2] > up[0]  # blue above
    assert down[0] > down[2]  # sand below


def test_directions_and_uvs_are_inverse() -> None:
    d = panorama_directions(8, 16)
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0)
    u, v = direction_to_uv(d)
    np.testing.assert_allclose(u[0], (np.arange(16) + 0.5) / 16)
    np.testing.assert_allclose(v[:, 0], (np.arange(8) + 0.5) / 8)
    # Row 0 of a 2x4 panorama is 45 degrees up; column 2 is 45 degrees from -Z towards +X.
    np.testing.assert_allclose(panorama_directions(2, 4)[0, 2], [0.5, np.sqrt(0.5), -0.5], atol=1e-9)


def test_panorama_is_decoded_from_srgb_and_kept_oriented() -> None:
    image = np.zeros((32, 64, 4), np.uint8)
    image[:16] = (188, 188, 188, 255)  # upper half: sRGB 188 is linear 0.5
    image[16:, 32:] = RED  # lower right quarter: below the horizon, from -Z round to +X
    sky = sky_from_image("pano", image)
    np.testing.assert_allclose(sky.radiance((0, 1, 0)), 0.5, atol=0.01)
    assert _colour(sky, (1, -0.5, 0)) == "red"
    assert _colour(sky, (-1, -0.5, 0)) == "black"


def test_large_panoramas_are_reduced() -> None:
    sky = sky_from_image("big", np.full((1250, 2500, 4), 200, np.uint8))
    assert sky.image.shape[1] <= MAX_SKY_WIDTH
    assert sky.image.shape[1] == 2 * sky.image.shape[0]
    odd = sky_from_image("odd", np.full((1027, 2054, 3), 200, np.uint8))
    assert odd.image.shape == (MAX_SKY_WIDTH // 2, MAX_SKY_WIDTH, 3)


def test_cube_faces_cross_and_strip_agree() -> None:
    faces = _faces()
    size = faces[0].shape[0]
    _assert_cube_orientation(sky_from_faces("faces", faces))
    strip = np.concatenate(faces, axis=1)
    _assert_cube_orientation(sky_from_image("strip", strip))
    cross = np.zeros((3 * size, 4 * size, 4), np.uint8)
    for face, (col, row) in zip(faces, [(2, 1), (0, 1), (1, 0), (1, 2), (1, 1), (3, 1)], strict=True):
        cross[row * size : (row + 1) * size, col * size : (col + 1) * size] = face
    _assert_cube_orientation(sky_from_image("cross", cross))


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((30, 90, 4), "2:1"),  # 3:1
        ((64, 64, 4), "2:1"),
        ((32, 64), "shape"),
        ((32, 64, 2), "shape"),
        ((0, 0, 4), "2:1"),
    ],
)
def test_bad_images_are_refused(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sky_from_image("bad", np.zeros(shape, np.uint8))


def test_bad_faces_are_refused() -> None:
    with pytest.raises(ValueError, match="6 faces"):
        sky_from_faces("five", _faces()[:5])
    uneven = _faces()
    uneven[3] = _face(8, BLUE)
    with pytest.raises(ValueError, match="square and of one size"):
        sky_from_faces("uneven", uneven)
    oblong = [np.zeros((8, 16, 4), np.uint8)] * 6
    with pytest.raises(ValueError, match="square"):
        sky_from_faces("oblong", oblong)
    with pytest.raises(ValueError, match="uint8"):
        sky_from_faces("floats", [np.zeros((8, 8, 4), np.float32)] * 6)
    with pytest.raises(ValueError, match="float32"):
        Sky("raw", np.zeros((8, 16, 3), np.float64))
