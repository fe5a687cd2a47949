"""Block-wise spot extraction equals whole-frame extraction (celltrack.scale.spots)."""

from __future__ import annotations

import numpy as np
import pytest

from celltrack.config.detection import SpotConfig
from celltrack.errors import CheckpointError, InvalidInputError, ShapeError
from celltrack.graph import TrackGraph
from celltrack.scale.spots import extract_spots_blockwise, spot_halo

VS_3D = (2.0, 0.8, 0.8)
VS_2D = (1.0, 0.8, 0.8)


def _render(shape, vs, n, seed, *, quantize=None, big=0):
    """Centre probabilities (T, 3, Z, Y, X) of random rotated ellipsoids (µm semi-axes).

    The centre probability falls smoothly from ~1 at an ellipsoid's centre to 0 past
    1.6 semi-axes; ``big`` adds long ellipsoids crossing several blocks.
    """
    rng = np.random.default_rng(seed)
    t_n, zyx = shape[0], shape[1:]
    vs = np.asarray(vs)
    grid = np.stack(np.meshgrid(*[np.arange(s) * v for s, v in zip(zyx, vs)], indexing="ij"), -1)
    extent = (np.asarray(zyx) - 1) * vs
    centre = np.zeros((t_n, *zyx), np.float32)
    two_d = zyx[0] == 1
    for t in range(t_n):
        for i in range(n + big):
            c = rng.uniform(0, 1, 3) * extent
            radii = rng.uniform(1.6, 3.2, 3) if i < n else np.array([3.0, 3.0, 14.0])
            angle = rng.uniform(0, np.pi)
            rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)],
                            [0, np.sin(angle), np.cos(angle)]])
            if two_d:
                c[0] = 0.0
                radii[0] = 1e3
            inv = rot @ np.diag(1.0 / radii**2) @ rot.T
            d = grid - c
            m = np.einsum("...i,ij,...j->...", d, inv, d)
            value = np.clip(1.0 - m / 2.6, 0.0, None) * rng.uniform(0.75, 1.0)
            centre[t] = np.maximum(centre[t], value.astype(np.float32))
    centre += rng.uniform(0, 0.02, centre.shape).astype(np.float32)
    centre = np.clip(centre, 0, 1)
    if quantize:
        centre = np.round(centre * quantize) / quantize
    rest = (1.0 - centre) / 2
    return np.stack([rest, rest, centre], axis=1).astype(np.float32)


def _whole(prob, vs, cfg, frames=None):
    from celltrack.detect.api import collect_spots
    from celltrack.detect.spots import extract_spots

    frames = range(prob.shape[0]) if frames is None else frames
    return collect_spots([extract_spots(prob[t], vs, cfg, t=t) for t in frames])


def _assert_same(got: TrackGraph, want: TrackGraph, *, exact: bool) -> None:
    assert got.num_nodes == want.num_nodes
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.t, want.t)
    for name in ("z", "y", "x", "covariance", "score"):
        a, b = np.asarray(got.nodes[name]), np.asarray(want.nodes[name])
        if exact:
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, err_msg=name)
    np.testing.assert_array_equal(got.nodes["tag"], want.nodes["tag"])
    assert got.equals(want)


@pytest.fixture(scope="module")
def prob3d():
    return _render((2, 13, 37, 41), VS_3D, 14, seed=1, big=1)


@pytest.fixture(scope="module")
def prob2d():
    return _render((2, 1, 53, 47), VS_2D, 18, seed=2, big=1)


COMPONENTS = SpotConfig(threshold=0.5, r_min_um=1.0, r_max_um=6.0, suppression_distance_um=3.0)
MAXIMA = SpotConfig(mode="maxima", threshold=0.3, nms_radius_um=1.7, suppression_distance_um=2.5)


@pytest.mark.parametrize("cfg", [COMPONENTS, MAXIMA], ids=["components", "maxima"])
@pytest.mark.parametrize("block", [(5, 9, 11), (13, 16, 7)])
def test_blockwise_equals_whole_frame_3d(prob3d, cfg, block):
    want = _whole(prob3d, VS_3D, cfg)
    assert want.num_nodes >= 12
    got = extract_spots_blockwise(prob3d, VS_3D, cfg, block_shape=block)
    _assert_same(got, want, exact=cfg.mode == "maxima")
    assert got.attrs["blockwise_spots"]["grid"][1] >= 3  # several blocks per axis


@pytest.mark.parametrize("cfg", [COMPONENTS, MAXIMA], ids=["components", "maxima"])
def test_blockwise_equals_whole_frame_2d(prob2d, cfg):
    want = _whole(prob2d, VS_2D, cfg)
    assert want.num_nodes >= 12
    got = extract_spots_blockwise(prob2d, VS_2D, cfg, block_shape=(1, 10, 13))
    _assert_same(got, want, exact=cfg.mode == "maxima")


def test_components_larger_than_the_halo_are_exact(prob3d):
    """A halo of 1 voxel cuts most components: the window grows around them."""
    want = _whole(prob3d, VS_3D, COMPONENTS)
    got = extract_spots_blockwise(prob3d, VS_3D, COMPONENTS, block_shape=(4, 8, 8), halo=(1, 1, 1))
    _assert_same(got, want, exact=False)
    assert got.attrs["blockwise_spots"]["grown"] > 0


def test_flat_components_in_3d():
    """Components one z layer thick stay 3D spots (the measured box keeps two layers)."""
    prob = np.zeros((1, 3, 6, 20, 20), np.float32)
    prob[0, 2, 2, 3:8, 4:9] = 0.9
    prob[0, 2, 5, 12:18, 12:16] = 0.8  # on the last layer
    prob[0, 2, 0:3, 12:16, 2:6] = 0.7
    cfg = COMPONENTS.model_copy(update={"r_min_um": 0.5})
    want = _whole(prob, VS_3D, cfg)
    assert want.num_nodes == 3
    for block in [(1, 10, 10), (6, 20, 20), (2, 7, 7)]:
        _assert_same(extract_spots_blockwise(prob, VS_3D, cfg, block_shape=block), want,
                     exact=False)


def test_maxima_plateaus_and_ties(prob3d):
    """Quantised maps: plateaus of equal maxima and equal scores (suppression ties)."""
    prob = _render((1, 9, 30, 30), VS_3D, 10, seed=5, quantize=8)
    cfg = MAXIMA.model_copy(update={"suppression_distance_um": 4.0})
    _assert_same(extract_spots_blockwise(prob, VS_3D, cfg, block_shape=(3, 7, 7)),
                 _whole(prob, VS_3D, cfg), exact=True)
    # a plateau block inside a non-trivial frame keeps its peaks; a constant frame has none
    flat = np.zeros((2, 3, 6, 20, 20), np.float32)
    flat[0, 2, :, :, :12] = 0.9
    flat[1, 2] = 0.9
    want = _whole(flat, VS_3D, cfg.model_copy(update={"suppression_distance_um": 0.0}))
    got = extract_spots_blockwise(
        flat, VS_3D, cfg.model_copy(update={"suppression_distance_um": 0.0}), block_shape=(6, 5, 5)
    )
    _assert_same(got, want, exact=True)
    assert np.all(got.t == 0) and got.num_nodes > 0


def test_frames_zarr_and_processes(tmp_path, prob3d):
    zarr = pytest.importorskip("zarr")
    arr = zarr.open_array(tmp_path / "p.zarr", mode="w", shape=prob3d.shape,
                          chunks=(1, 3, 5, 9, 11), dtype="f4")
    arr[:] = prob3d
    want = _whole(prob3d, VS_3D, COMPONENTS, frames=[1, 0])
    got = extract_spots_blockwise(str(tmp_path / "p.zarr"), VS_3D, COMPONENTS,
                                  block_shape=(5, 9, 11), frames=[1, 0])
    _assert_same(got, want, exact=False)
    # a numpy array on worker processes: windows are shipped, cut components done here
    got = extract_spots_blockwise(prob3d, VS_3D, COMPONENTS, block_shape=(5, 9, 11),
                                  frames=[1, 0], halo=(1, 1, 1), executor="processes", n_workers=2)
    _assert_same(got, want, exact=False)
    assert got.attrs["blockwise_spots"]["max_worker_peak_rss_mb"] > 0


def test_centre_map_and_dask_input(prob3d):
    want = _whole(prob3d, VS_3D, MAXIMA)
    got = extract_spots_blockwise(prob3d[:, 2], VS_3D, MAXIMA, block_shape=(6, 12, 12))
    _assert_same(got, want, exact=True)
    da = pytest.importorskip("dask.array")
    lazy = da.from_array(prob3d, chunks=(1, 3, 6, 12, 12))
    got = extract_spots_blockwise(lazy, VS_3D, COMPONENTS, block_shape=(6, 12, 12))
    _assert_same(got, _whole(prob3d, VS_3D, COMPONENTS), exact=False)


def test_resume_skips_finished_blocks(tmp_path, prob3d, monkeypatch):
    import celltrack.scale.spots as mod

    store = tmp_path / "store"
    first = extract_spots_blockwise(prob3d, VS_3D, COMPONENTS, block_shape=(7, 13, 14), store=store)
    n_tasks = first.attrs["blockwise_spots"]["tasks"]
    assert first.attrs["blockwise_spots"]["computed"] == n_tasks
    # drop two block files (an interrupted run): only those are computed again
    files = sorted(store.glob("block_*.npz"))
    assert len(files) == n_tasks
    for f in files[:2]:
        f.unlink()
    calls = []
    real = mod._run_block
    monkeypatch.setattr(mod, "_run_block", lambda task: calls.append(task.key) or real(task))
    again = extract_spots_blockwise(prob3d, VS_3D, COMPONENTS, block_shape=(7, 13, 14), store=store)
    assert len(calls) == 2
    assert again.attrs["blockwise_spots"]["resumed"] == n_tasks - 2
    _assert_same(again, first, exact=True)
    with pytest.raises(CheckpointError, match="different problem"):
        extract_spots_blockwise(prob3d, VS_3D, COMPONENTS, block_shape=(7, 13, 13), store=store)
    with pytest.raises(CheckpointError, match="different problem"):  # other data
        extract_spots_blockwise(prob3d * 0.9, VS_3D, COMPONENTS, block_shape=(7, 13, 14),
                                store=store)


def test_halo_and_errors(prob3d):
    np.testing.assert_array_equal(spot_halo(COMPONENTS, VS_3D), [4, 9, 9])
    np.testing.assert_array_equal(spot_halo(MAXIMA, VS_3D), [0, 2, 2])
    with pytest.raises(ShapeError, match="T, 3, Z, Y, X"):
        extract_spots_blockwise(prob3d[:, :2], VS_3D, block_shape=(4, 4, 4))
    with pytest.raises(InvalidInputError, match="block_shape"):
        extract_spots_blockwise(prob3d, VS_3D, block_shape=(4, 0, 4))
    with pytest.raises(InvalidInputError, match="maxima neighbourhood"):
        extract_spots_blockwise(prob3d, VS_3D, MAXIMA, block_shape=(4, 8, 8), halo=(0, 1, 1))
    with pytest.raises(InvalidInputError, match="outside"):
        extract_spots_blockwise(prob3d, VS_3D, block_shape=(4, 8, 8), frames=[5])
    bad = prob3d.copy()
    bad[1, 2, 3, 4, 5] = np.nan
    with pytest.raises(InvalidInputError, match="frame 1"):
        extract_spots_blockwise(bad, VS_3D, block_shape=(13, 37, 41))
    empty = extract_spots_blockwise(np.zeros((1, 3, 4, 8, 8), np.float32), VS_3D,
                                    block_shape=(2, 4, 4))
    assert empty.num_nodes == 0 and "covariance" in empty.nodes


@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_a_component_entering_a_block_in_two_pieces_is_one_spot(executor):
    """A U whose bend lies outside the window: both arms start in the core, so both are
    grown to the same component; the block must keep it once (found on a tiled embryo)."""
    prob = np.zeros((1, 3, 1, 40, 40), np.float32)
    prob[0, 2, 0, 0:20, 2] = 0.9  # left arm
    prob[0, 2, 0, 0:20, 6] = 0.9  # right arm
    prob[0, 2, 0, 19, 2:7] = 0.9  # the bend, beyond the block's window
    prob[0, 2, 0, 30:33, 30:33] = 0.8  # an ordinary nucleus elsewhere
    cfg = COMPONENTS.model_copy(update={"r_max_um": 2.0, "suppression_distance_um": 0.0})
    want = _whole(prob, VS_2D, cfg)
    assert want.num_nodes == 2
    got = extract_spots_blockwise(
        prob, VS_2D, cfg, block_shape=(1, 10, 10),
        executor=executor, n_workers=2,
    )
    _assert_same(got, want, exact=False)
    assert got.attrs["blockwise_spots"]["grown"] >= 2


def test_a_stored_centre_map_gives_the_spots_of_the_probabilities(prob3d):
    """(T, 1, Z, Y, X): what block-wise detection stores (the centre channel only)."""
    want = extract_spots_blockwise(prob3d, VS_3D, COMPONENTS, block_shape=(5, 9, 11))
    got = extract_spots_blockwise(prob3d[:, 2:], VS_3D, COMPONENTS, block_shape=(5, 9, 11))
    _assert_same(got, want, exact=True)
    with pytest.raises(ShapeError, match=r"\(T, 1, Z, Y, X\)"):
        extract_spots_blockwise(prob3d[:, :2], VS_3D, COMPONENTS, block_shape=(5, 9, 11))
