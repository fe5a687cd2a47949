"""2D+t crops and tiles keep the voxel budget of their configured 3-D shape."""

import numpy as np
import torch

from celltrack.nn import predict_tiled, sample_crop
from celltrack.nn.crops import PLANAR_MULTIPLE, planar_shape


def test_planar_shape_keeps_the_voxel_budget_in_plane():
    for configured in [(8, 64, 64), (16, 96, 96), (32, 128, 128), (4, 32, 64)]:
        z, y, x = planar_shape(configured, (1, 4096, 4096))
        assert z == 1 and y % PLANAR_MULTIPLE == 0 and x % PLANAR_MULTIPLE == 0
        budget = np.prod(configured)
        assert abs(y * x / budget - 1) < 0.15, (configured, (y, x))
        assert abs(y / x - configured[1] / configured[2]) < 0.1  # aspect kept
    # a side that leaves the frame is clipped and the other side takes the budget
    assert planar_shape((8, 64, 64), (1, 100, 4096)) == (1, 100, 320)
    assert planar_shape((8, 64, 64), (1, 40, 50)) == (1, 40, 50)
    # z = 1 configured, or 3D data: unchanged
    assert planar_shape((1, 64, 64), (1, 1024, 1024)) == (1, 64, 64)
    assert planar_shape((8, 64, 64), (24, 96, 96)) == (8, 64, 64)


def test_2d_crops_are_in_plane_crops_of_the_same_budget():
    rng = np.random.default_rng(0)
    flat = np.zeros((1, 1, 300, 300), np.float32)
    crop = sample_crop(rng, flat, (8, 64, 64))
    assert crop.image.shape == (1, 1, 176, 176)
    assert sample_crop(rng, flat, (1, 64, 64)).image.shape == (1, 1, 64, 64)
    volume = np.zeros((1, 12, 300, 300), np.float32)
    assert sample_crop(rng, volume, (8, 64, 64)).image.shape == (1, 8, 64, 64)


def test_2d_tiles_are_in_plane_tiles_of_the_same_budget():
    shapes = []

    def model(x: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(x.shape[2:]))
        return x

    volume = np.random.default_rng(0).random((1, 1, 200, 300), dtype=np.float32)
    out = predict_tiled(
        model, volume, 1, tile_shape=(4, 64, 64), overlap=(1, 8, 8), tile_mode="fixed"
    )
    np.testing.assert_allclose(out, volume, rtol=1e-6)
    # 4 × 64 × 64 → 1 × 128 × 128: 2 × 3 tiles instead of 4 × 6 of 1 × 64 × 64
    assert set(shapes) == {(1, 128, 128)} and len(shapes) == 6
    shapes.clear()
    predict_tiled(model, volume, 1, tile_shape=(1, 64, 64), overlap=(0, 8, 8), tile_mode="fixed")
    assert set(shapes) == {(1, 64, 64)}
