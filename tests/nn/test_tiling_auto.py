"""Automatic tile shapes of predict_tiled: one tile when the frame fits, else the fewest tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from celltrack.nn.tiling import _tiles, choose_tile_shape, network_divisor, predict_tiled


def _processed(shape, tile, overlap):
    return sum(
        int(np.prod([s.stop - s.start for s in sl])) for sl, _ in _tiles(shape, tile, overlap)
    )


@pytest.mark.parametrize(
    "shape, budget, overlap, divisor",
    [
        ((32, 256, 256), 32 * 128 * 128, (4, 16, 16), (2, 8, 8)),
        ((1, 1000, 300), 200 * 200, (0, 16, 16), (1, 16, 16)),
        ((64, 512, 512), 32 * 128 * 128, (4, 16, 16), (2, 8, 8)),
        ((7, 45, 300), 8 * 32 * 32, (2, 8, 8), (1, 4, 4)),
    ],
)
def test_chosen_tiles_fit_the_budget_and_process_fewer_voxels(shape, budget, overlap, divisor):
    tile = choose_tile_shape(shape, budget, overlap, divisor)
    assert int(np.prod(tile)) <= budget
    assert all(1 <= t <= s for t, s in zip(tile, shape))
    # sizes are multiples of the divisor unless the tile spans the axis
    assert all(t % d == 0 or t == s for t, d, s in zip(tile, divisor, shape))
    # no worse than the cube-ish configured tile of the same budget
    side = round((budget / shape[0]) ** 0.5) if shape[0] == 1 else None
    fixed = (1, side, side) if side else None
    if fixed is not None:
        fixed = tuple(min(f, s) for f, s in zip(fixed, shape))
        ov = [min(o, max(t - 1, 0)) for o, t in zip(overlap, fixed)]
        assert _processed(shape, list(tile), list(overlap)) <= _processed(shape, list(fixed), ov)
    # all tiles equal: one batch shape
    sizes = {
        tuple(s.stop - s.start for s in sl) for sl, _ in _tiles(shape, list(tile), list(overlap))
    }
    assert len(sizes) == 1


def test_a_frame_within_the_budget_is_one_tile():
    assert choose_tile_shape((1, 256, 256), 720 * 720, (4, 16, 16), (1, 8, 8)) == (1, 256, 256)
    assert choose_tile_shape((24, 96, 96), 32 * 128 * 128, (4, 16, 16), (2, 8, 8)) == (24, 96, 96)
    # the 3D case: 6 equal tiles (1.2x the voxels) instead of 9 (2.25x)
    tile = choose_tile_shape((32, 256, 256), 32 * 128 * 128, (4, 16, 16), (2, 8, 8))
    assert _processed((32, 256, 256), list(tile), [4, 16, 16]) / (32 * 256 * 256) < 1.25


class _Net(torch.nn.Module):
    divisor = (1, 4, 4)

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_auto_equals_fixed_where_the_frame_fits_the_tile():
    torch.manual_seed(0)
    net = _Net().eval()
    volume = np.random.default_rng(0).random((1, 3, 40, 50), dtype=np.float32)
    kw = {"tile_shape": (4, 64, 64), "overlap": (1, 8, 8)}
    a = predict_tiled(net, volume, 2, tile_mode="fixed", **kw)
    b = predict_tiled(net, volume, 2, tile_mode="auto", **kw)
    np.testing.assert_array_equal(a, b)


def test_auto_tiles_blend_a_pointwise_network_exactly_and_find_the_divisor():
    def double(x: torch.Tensor) -> torch.Tensor:
        return 2 * x

    net = _Net()

    def wrapped(x: torch.Tensor) -> torch.Tensor:
        return net(x)

    assert network_divisor(net) == (1, 4, 4)
    assert network_divisor(wrapped) == (1, 1, 1)  # a function: callers pass divisor=
    assert network_divisor(double) == (1, 1, 1)
    volume = np.random.default_rng(1).random((1, 5, 70, 90), dtype=np.float32)
    out = predict_tiled(double, volume, 1, tile_shape=(2, 32, 32), overlap=(1, 8, 8), batch_size=3)
    np.testing.assert_allclose(out, 2 * volume, rtol=1e-6)
    with pytest.raises(ValueError, match="tile_mode"):
        predict_tiled(double, volume, 1, tile_shape=(2, 32, 32), overlap=(1, 8, 8), tile_mode="big")  # type: ignore[arg-type]


class _ShapeRecorder(_Net):
    """Records the (Z, Y, X) of every tile it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape[2:]))
        return super().forward(x)


def test_auto_never_cuts_an_axis_that_fits_the_configured_tile():
    """A 5-slice 3D stack (Fluo-N3DH-CHO) larger than the budget in-plane: the cheapest
    tiles in voxels are 1-2 slices thick, which a 3D network trained on 5-slice crops
    cannot read; auto keeps all 5 slices and cuts only y and x."""
    net = _ShapeRecorder().eval()
    volume = np.random.default_rng(0).random((1, 5, 120, 128), dtype=np.float32)
    with torch.no_grad():
        predict_tiled(net, volume, 2, tile_shape=(5, 64, 64), overlap=(0, 8, 8),
                      divisor=(2, 4, 4))
    assert net.seen and all(shape[0] == 5 for shape in net.seen)
    assert choose_tile_shape((5, 120, 128), 5 * 64 * 64, (0, 8, 8), (2, 4, 4))[0] < 5
