"""Block-wise indicator maxima equal the whole-frame ones (celltrack.scale.indicator_spots)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from celltrack.config.indicator import IndicatorNMSConfig
from celltrack.detect.api import collect_spots
from celltrack.detect.indicator_predict import indicator_spots
from celltrack.errors import CheckpointError, InvalidInputError, ShapeError
from celltrack.graph import TrackGraph
from celltrack.scale.indicator_spots import extract_indicator_spots_blockwise, indicator_halo

VS_3D = (2.0, 0.8, 0.8)
VS_2D = (1.0, 0.8, 0.8)
NMS = IndicatorNMSConfig(window_um=(4.0, 3.2, 3.2), threshold=0.3)  # (3, 5, 5) voxels


def _smooth(shape, seed, *, sigma=(1.0, 2.0, 2.0), levels=None, gain=1.0):
    """A (T, 1, Z, Y, X) float32 map in [0, 1] of smoothed noise; ``levels`` quantises it
    (equal-valued plateaus), ``gain`` > 1 saturates it at 1."""
    rng = np.random.default_rng(seed)
    out = np.empty((shape[0], 1, *shape[1:]), np.float32)
    for t in range(shape[0]):
        m = ndimage.gaussian_filter(rng.normal(size=shape[1:]), sigma, mode="nearest")
        m = (m - m.min()) / (m.max() - m.min())
        out[t, 0] = np.clip(m * gain, 0, 1)
    if levels:
        out = np.round(out * levels) / levels
    return out


def _whole(ind, vs, nms, frames=None):
    frames = range(ind.shape[0]) if frames is None else frames
    return collect_spots([indicator_spots(np.asarray(ind[t, 0]), vs, nms, t=t) for t in frames])


def _assert_same(got: TrackGraph, want: TrackGraph) -> None:
    assert got.num_nodes == want.num_nodes
    for name in ("id", "t", "z", "y", "x", "covariance", "score", "tag"):
        np.testing.assert_array_equal(
            np.asarray(got.nodes[name]), np.asarray(want.nodes[name]), err_msg=name
        )


@pytest.fixture(scope="module")
def ind3d():
    return _smooth((2, 9, 23, 26), seed=3, levels=24)


@pytest.mark.parametrize(
    ("block", "halo"),
    [((9, 23, 26), None), ((4, 7, 8), None), ((1, 3, 2), None), ((2, 5, 5), None),
     ((2, 5, 5), (1, 2, 2)), ((3, 4, 6), (1, 2, 2))],  # the least halo: the half-window
)
def test_equals_whole_frame_3d(ind3d, block, halo):
    want = _whole(ind3d, VS_3D, NMS)
    assert want.num_nodes > 10
    got = extract_indicator_spots_blockwise(ind3d, VS_3D, NMS, block_shape=block, halo=halo)
    _assert_same(got, want)


@pytest.mark.parametrize("block", [(1, 31, 29), (1, 6, 7), (1, 2, 3)])
def test_equals_whole_frame_2d(block):
    ind = _smooth((3, 1, 31, 29), seed=5, sigma=(0, 1.5, 1.5), levels=16)
    want = _whole(ind, VS_2D, NMS)
    assert want.num_nodes > 10 and len(np.unique(want.t)) == 3
    got = extract_indicator_spots_blockwise(ind, VS_2D, NMS, block_shape=block, frames=[2, 0, 1])
    _assert_same(got, _whole(ind, VS_2D, NMS, frames=[2, 0, 1]))


def test_plateau_across_four_blocks_is_one_spot():
    ind = np.zeros((1, 1, 1, 16, 16), np.float32)
    ind[0, 0, 0, 3:9, 2:11] = 0.8  # crosses the 4 blocks of (1, 6, 6) cores
    ind[0, 0, 0, 12, 14] = 0.5  # a lone maximum
    want = _whole(ind, VS_2D, NMS)
    assert want.num_nodes == 2
    got = extract_indicator_spots_blockwise(ind, VS_2D, NMS, block_shape=(1, 6, 6))
    _assert_same(got, want)
    assert got.attrs["blockwise_spots"]["grown"] > 0
    # rows 3..8 tie between 5 and 6 for the centroid 5.5: the first in C order
    np.testing.assert_array_equal(got.positions, np.array([[0, 5, 6], [0, 12, 14]]) * 0.8)


def test_plateau_seen_twice_by_one_block_and_l_shapes():
    """A U-shaped plateau enters one core by two arms (two parts, one spot); an L-shaped
    one has its centroid off the plateau."""
    ind = np.zeros((1, 1, 1, 20, 20), np.float32)
    ind[0, 0, 0, 2:16, 2:4] = 0.9
    ind[0, 0, 0, 2:16, 10:12] = 0.9
    ind[0, 0, 0, 14:16, 2:12] = 0.9
    ind[0, 0, 0, 2:4, 14:19] = 0.7
    ind[0, 0, 0, 2:12, 17:19] = 0.7
    want = _whole(ind, VS_2D, NMS)
    assert want.num_nodes == 2
    for block, halo in [((1, 11, 14), (0, 2, 2)), ((1, 3, 3), None), ((1, 7, 5), (0, 5, 5))]:
        got = extract_indicator_spots_blockwise(ind, VS_2D, NMS, block_shape=block, halo=halo)
        _assert_same(got, want)


def test_halo_voxels_whose_window_is_cut_are_not_maxima():
    """(2, 4..5) is a plateau; (2, 6) ties with it but sees 0.9 at (2, 8), outside the
    box read for the first block: it must not join the plateau (which would move the spot
    to its middle, (2, 5))."""
    ind = np.zeros((1, 1, 1, 12, 12), np.float32)
    ind[0, 0, 0, 2, 4:7] = 0.8
    ind[0, 0, 0, 2, 8] = 0.9
    want = _whole(ind, VS_2D, NMS)
    np.testing.assert_array_equal(want.positions, np.array([[0, 2, 8], [0, 2, 4]]) * 0.8)
    for halo in [(0, 2, 2), None]:
        got = extract_indicator_spots_blockwise(ind, VS_2D, NMS, block_shape=(1, 6, 6), halo=halo)
        _assert_same(got, want)


def test_float16_saturated_plateaus_from_zarr(tmp_path):
    zarr = pytest.importorskip("zarr")
    ind = _smooth((2, 6, 20, 22), seed=7, sigma=(1.0, 2.5, 2.5), gain=1.6)  # wide 1.0 areas
    ind[1, 0, 2:4, 5:7, 5:7] = 1e5  # overflows float16: an inf plateau
    half = ind.astype(np.float16)
    assert np.isinf(half).any() and (half == 1).sum() > 200
    arr = zarr.open_array(tmp_path / "ind.zarr", mode="w", shape=half.shape,
                          chunks=(1, 1, 3, 5, 6), dtype="f2")
    arr[:] = half
    want = _whole(arr, VS_3D, NMS)
    assert want.num_nodes > 2
    for source, block in [(str(tmp_path / "ind.zarr"), (3, 5, 6)), (half, (2, 4, 4))]:
        got = extract_indicator_spots_blockwise(source, VS_3D, NMS, block_shape=block)
        _assert_same(got, want)
        assert got.attrs["blockwise_spots"]["grown"] > 0


def test_resume_skips_finished_blocks(tmp_path, ind3d, monkeypatch):
    import celltrack.scale.indicator_spots as mod

    store = tmp_path / "store"
    first = extract_indicator_spots_blockwise(ind3d, VS_3D, NMS, block_shape=(4, 7, 8),
                                              store=store)
    n_tasks = first.attrs["blockwise_spots"]["tasks"]
    files = sorted(store.glob("block_*.npz"))
    assert len(files) == n_tasks == 2 * 3 * 4 * 4
    for f in files[::5]:  # an interrupted run: these blocks are computed again
        f.unlink()
    calls = []
    real = mod._run_block
    monkeypatch.setattr(mod, "_run_block", lambda task: calls.append(task.key) or real(task))
    again = extract_indicator_spots_blockwise(ind3d, VS_3D, NMS, block_shape=(4, 7, 8),
                                              store=store)
    assert len(calls) == len(files[::5])
    assert again.attrs["blockwise_spots"]["resumed"] == n_tasks - len(calls)
    _assert_same(again, first)
    _assert_same(again, _whole(ind3d, VS_3D, NMS))
    with pytest.raises(CheckpointError, match="different problem"):
        extract_indicator_spots_blockwise(ind3d, VS_3D, NMS, block_shape=(4, 7, 7), store=store)
    with pytest.raises(CheckpointError, match="different problem"):  # other data
        extract_indicator_spots_blockwise(ind3d * 0.9, VS_3D, NMS, block_shape=(4, 7, 8),
                                          store=store)


def test_processes_ship_windows_and_grow_in_the_driver():
    ind = _smooth((2, 3, 14, 15), seed=11, sigma=(1.0, 2.5, 2.5), gain=1.5)
    want = _whole(ind, VS_3D, NMS, frames=[1, 0])
    got = extract_indicator_spots_blockwise(ind, VS_3D, NMS, block_shape=(3, 7, 8),
                                            frames=[1, 0], executor="processes", n_workers=2)
    _assert_same(got, want)
    stats = got.attrs["blockwise_spots"]
    assert stats["executor"] == "processes" and stats["grown"] > 0
    assert stats["max_worker_peak_rss_mb"] > 0


def test_unpredicted_frames_and_errors(ind3d):
    np.testing.assert_array_equal(indicator_halo(NMS, VS_3D), [3, 4, 4])
    np.testing.assert_array_equal(indicator_halo(NMS, VS_2D, two_d=True), [0, 4, 4])
    with pytest.raises(ShapeError, match="T, 1, Z, Y, X"):
        extract_indicator_spots_blockwise(ind3d[:, 0], VS_3D, NMS, block_shape=(4, 4, 4))
    with pytest.raises(ShapeError, match="T, 1, Z, Y, X"):
        extract_indicator_spots_blockwise(np.concatenate([ind3d, ind3d], 1), VS_3D, NMS,
                                          block_shape=(4, 4, 4))
    with pytest.raises(InvalidInputError, match="block_shape"):
        extract_indicator_spots_blockwise(ind3d, VS_3D, NMS, block_shape=(4, 0, 4))
    with pytest.raises(InvalidInputError, match="half-window"):
        extract_indicator_spots_blockwise(ind3d, VS_3D, NMS, block_shape=(4, 8, 8),
                                          halo=(1, 1, 2))
    with pytest.raises(InvalidInputError, match="outside"):
        extract_indicator_spots_blockwise(ind3d, VS_3D, NMS, block_shape=(4, 8, 8), frames=[5])
    with pytest.raises(InvalidInputError, match="IndicatorNMSConfig"):
        extract_indicator_spots_blockwise(ind3d, VS_3D, {"threshold": 0.3}, block_shape=(4, 8, 8))
    unpredicted = ind3d.copy()
    unpredicted[1] = np.nan
    with pytest.raises(InvalidInputError, match="frame 1 holds NaN"):
        extract_indicator_spots_blockwise(unpredicted, VS_3D, NMS, block_shape=(4, 8, 8))
    got = extract_indicator_spots_blockwise(unpredicted, VS_3D, NMS, block_shape=(4, 8, 8),
                                            frames=[0])
    _assert_same(got, _whole(ind3d, VS_3D, NMS, frames=[0]))
    hole = ind3d.copy()
    hole[0, 0, 8, 22, 25] = np.nan  # the last voxel: in the last block only
    with pytest.raises(InvalidInputError, match="frame 0"):
        extract_indicator_spots_blockwise(hole, VS_3D, NMS, block_shape=(4, 8, 8))
    empty = extract_indicator_spots_blockwise(np.zeros((1, 1, 4, 8, 8), np.float16), VS_3D, NMS,
                                              block_shape=(2, 4, 4))
    _assert_same(empty, _whole(np.zeros((1, 1, 4, 8, 8), np.float16), VS_3D, NMS))
    assert empty.num_nodes == 0 and "covariance" in empty.nodes
