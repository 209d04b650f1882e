"""train.augment.AffineAugment: identity at probability 0, shapes kept, plausible warps, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from train.augment import AffineAugment


def _blobs(n: int, h: int = 32, w: int = 32, c: int = 1, seed: int = 0) -> np.ndarray:
    """Float32 batch: a bright Gaussian blob near the centre of each image on a dark background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, c), np.float32)
    for i in range(n):
        cy, cx = h / 2 + rng.uniform(-2, 2), w / 2 + rng.uniform(-2, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 4.0**2))
        for k in range(c):
            out[i, :, :, k] = blob * (0.5 + 0.5 * (k + 1) / c)
    return out


@pytest.mark.parametrize("c", [1, 3])
def test_probability_zero_is_exactly_the_identity(c: int) -> None:
    x = np.random.default_rng(1).random((4, 20, 24, c), dtype=np.float32)
    aug = AffineAugment(probability=0.0)
    y = aug(x, np.random.default_rng(0))
    assert y is not x
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(aug.matrix(20, 24, np.random.default_rng(0)), [[1, 0, 0], [0, 1, 0]])


@pytest.mark.parametrize("c", [1, 3])
def test_shape_and_dtype_are_kept(c: int) -> None:
    x = _blobs(5, 28, 30, c)
    y = AffineAugment(probability=1.0)(x, np.random.default_rng(2))
    assert y.shape == x.shape and y.dtype == np.float32
    assert not np.shares_memory(x, y)


def test_input_is_not_modified() -> None:
    x = _blobs(3)
    before = x.copy()
    AffineAugment(probability=1.0)(x, np.random.default_rng(3))
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("c", [1, 3])
def test_transform_changes_pixels_but_keeps_the_content_plausible(c: int) -> None:
    x = _blobs(8, c=c)
    y = AffineAugment(probability=1.0)(x, np.random.default_rng(4))
    for i in range(len(x)):
        assert np.abs(y[i] - x[i]).max() > 0.01  # every image really moved
        # bilinear interpolation with replicated borders cannot leave the input's range
        assert y[i].min() >= x[i].min() - 1e-6 and y[i].max() <= x[i].max() + 1e-6
        # mass changes at most by the area change of scale (0.8..1.2)^2 and the shear, not wildly
        ratio = y[i].sum() / x[i].sum()
        assert 0.4 < ratio < 2.0, ratio
        # the blob stays near the centre: shifts are 2 px at most, rotation/scale/shear are about the centre
        m = y[i].sum(axis=2)
        yy, xx = np.mgrid[0 : m.shape[0], 0 : m.shape[1]]
        cy, cx = (m * yy).sum() / m.sum(), (m * xx).sum() / m.sum()
        assert abs(cy - 15.5) < 6 and abs(cx - 15.5) < 6
    # channels move together: the per-channel pattern is the same warp scaled
    if c == 3:
        np.testing.assert_allclose(y[..., 0] / x[..., 0].max(), y[..., 2] / x[..., 2].max(), atol=1e-5)


def test_batch_items_get_different_transforms() -> None:
    x = np.repeat(_blobs(1), 6, axis=0)
    y = AffineAugment(probability=1.0)(x, np.random.default_rng(5))
    assert len({y[i].tobytes() for i in range(6)}) == 6


def test_seeded_reproducibility() -> None:
    x = _blobs(4, c=3)
    aug = AffineAugment()
    a = aug(x, np.random.default_rng(6))
    b = aug(x, np.random.default_rng(6))
    c = aug(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_matrix_keeps_the_centre_fixed_without_shift() -> None:
    aug = AffineAugment(rotation_deg=30.0, shear=0.2, scale=(0.7, 1.3), shift_px=0.0, probability=1.0)
    h, w = 21, 33
    centre = np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
    rng = np.random.default_rng(8)
    for _ in range(20):
        m = aug.matrix(h, w, rng).astype(np.float64)
        assert m.shape == (2, 3)
        np.testing.assert_allclose(m @ centre, centre[:2], atol=1e-4)


def test_rotation_only_matrix_is_a_rotation_within_range() -> None:
    aug = AffineAugment(rotation_deg=10.0, shear=0.0, scale=(1.0, 1.0), shift_px=0.0, probability=1.0)
    rng = np.random.default_rng(9)
    for _ in range(20):
        a = aug.matrix(16, 16, rng)[:, :2].astype(np.float64)
        np.testing.assert_allclose(a @ a.T, np.eye(2), atol=1e-6)
        angle = np.degrees(np.arctan2(a[1, 0], a[0, 0]))
        assert abs(angle) <= 10.0 + 1e-4


def test_shift_only_moves_by_at_most_shift_px() -> None:
    aug = AffineAugment(rotation_deg=0.0, shear=0.0, scale=(1.0, 1.0), shift_px=2.0, probability=1.0)
    rng = np.random.default_rng(10)
    shifts = np.array([aug.matrix(16, 16, rng)[:, 2] for _ in range(50)])
    assert np.abs(shifts).max() <= 2.0 + 1e-6
    assert np.abs(shifts).max() > 1.0  # the range is used
