import numpy as np
import pytest

from celltrack.errors import InvalidInputError
from celltrack.geometry import (
    check_voxel_size,
    covariance_from_radii,
    ellipsoid_mask,
    radii_from_covariance,
)


def test_check_voxel_size():
    assert check_voxel_size([2, 0.5, 0.5]).tolist() == [2.0, 0.5, 0.5]
    for bad in ([1, 1], [1, -1, 1], [np.nan, 1, 1], [0, 1, 1]):
        with pytest.raises(InvalidInputError):
            check_voxel_size(bad)


def test_ellipsoid_mask_volume_matches_analytic_in_anisotropic_voxels():
    vs = np.array([2.0, 0.5, 0.5])
    radii = np.array([6.0, 4.0, 3.0])
    rot = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))[0]
    cov = covariance_from_radii(radii, rot)
    np.testing.assert_allclose(np.sort(radii_from_covariance(cov)), np.sort(radii))
    center = np.array([20.0, 20.0, 20.0])
    sl, mask = ellipsoid_mask(center, cov, vs, (40, 80, 80))
    volume_um3 = mask.sum() * vs.prod()
    assert volume_um3 == pytest.approx(4 / 3 * np.pi * radii.prod(), rel=0.05)
    zz, yy, xx = np.nonzero(mask)
    centroid = (
        np.array([zz.mean() + sl[0].start, yy.mean() + sl[1].start, xx.mean() + sl[2].start])
    ) * vs
    np.testing.assert_allclose(centroid, center, atol=0.1)


def test_min_voxels_and_clipping():
    vs = np.array([4.0, 1.0, 1.0])
    tiny = np.eye(3) * 0.3**2
    _, mask = ellipsoid_mask(np.array([8.0, 5.0, 5.0]), tiny, vs, (8, 10, 10), min_voxels=9)
    assert mask.sum() >= 9
    sl, mask = ellipsoid_mask(np.array([0.0, 0.0, 0.0]), np.eye(3) * 4, vs, (4, 10, 10))
    assert sl[1].start == 0 and mask.any()
    sl, mask = ellipsoid_mask(np.array([0.0, 100.0, 0.0]), np.eye(3), vs, (4, 10, 10))
    assert mask.size == 0
    with pytest.raises(InvalidInputError, match="not finite"):
        ellipsoid_mask(np.zeros(3), np.full((3, 3), np.nan), vs, (4, 10, 10))
    with pytest.raises(InvalidInputError, match="positive definite"):
        ellipsoid_mask(np.zeros(3), -np.eye(3), vs, (4, 10, 10))
