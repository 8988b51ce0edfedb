"""``lod.unique_inverse``: the GIL-releasing stand-in for ``np.unique(..., return_inverse=True)``."""

from __future__ import annotations

import numpy as np
import pytest

from openrr.model.lod import unique_inverse


@pytest.mark.parametrize("size", [0, 1, 2, 7, 10_000])
def test_unique_inverse_is_what_numpy_gives(size: int) -> None:
    values = np.random.default_rng(size).integers(-5, 60, size).astype(np.int64)
    expected, expected_inverse = np.unique(values, return_inverse=True)
    unique, inverse = unique_inverse(values)
    np.testing.assert_array_equal(unique, expected)
    np.testing.assert_array_equal(inverse, expected_inverse.reshape(-1))
    np.testing.assert_array_equal(unique[inverse], values)
