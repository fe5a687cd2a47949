"""Parent positions from a chunked flow store equal displace() on whole frames."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from celltrack.errors import ShapeError
from celltrack.flow import displace
from celltrack.flow.displace import PARENT_COLUMNS
from celltrack.graph import TrackGraph
from celltrack.scale.parents import displace_from_store

VS = np.array([2.0, 0.5, 0.5])


def _spots(rng, n, shape, with_covariance=True):
    extent = np.asarray(shape) * VS
    t = rng.integers(0, 3, n)
    pos = rng.uniform(-1.0, 1.0, (n, 3)) + rng.uniform(0, 1, (n, 3)) * extent  # some outside
    kw = {}
    if with_covariance:
        radii = rng.uniform(0.6, 3.0, (n, 3))
        kw["covariance"] = np.stack([np.diag(r**2) for r in radii])
    return TrackGraph.from_positions(t, pos, **kw)


@pytest.mark.parametrize("with_covariance", [True, False])
def test_equals_displace_on_whole_frames_from_a_chunked_zarr(tmp_path, with_covariance):
    rng = np.random.default_rng(0)
    shape = (7, 30, 27)
    flow = rng.normal(0, 2, (3, 3, *shape)).astype(np.float32)
    store = zarr.open_array(
        str(tmp_path / "flow.zarr"), mode="w", shape=flow.shape, chunks=(1, 3, 4, 8, 8),
        dtype="float32",
    )
    store[:] = flow
    spots = _spots(rng, 120, shape, with_covariance)
    whole = displace(spots, {1: flow[1], 2: flow[2]}, VS)
    blocks = displace_from_store(spots, store, VS)
    for c in PARENT_COLUMNS:
        np.testing.assert_array_equal(blocks.nodes[c], whole.nodes[c])
    frame0 = spots.t == 0
    np.testing.assert_array_equal(blocks.positions[frame0], spots.positions[frame0])
    assert not np.allclose(blocks.nodes["parent_y"][~frame0], spots.positions[~frame0, 1])


def test_a_numpy_movie_works_and_a_wrong_shape_says_what_it_needs():
    rng = np.random.default_rng(1)
    flow = rng.normal(0, 1, (2, 3, 4, 10, 10)).astype(np.float32)
    spots = _spots(rng, 20, (4, 10, 10))
    spots = spots.subgraph(nodes=spots.t < 2)
    got = displace_from_store(spots, flow, VS)
    want = displace(spots, {1: flow[1]}, VS)
    np.testing.assert_array_equal(got.nodes["parent_x"], want.nodes["parent_x"])
    with pytest.raises(ShapeError, match=r"\(T, 3, Z, Y, X\)"):
        displace_from_store(spots, flow[0], VS)


@pytest.mark.parametrize("edge_length", [1, 3, 5])
@pytest.mark.parametrize("shape", [(7, 30, 27), (1, 30, 27)], ids=["3d", "2d"])
def test_movement_parents_from_a_chunked_zarr_equal_whole_frames(tmp_path, edge_length, shape):
    from celltrack.flow.movement_predict import parents_from_vectors
    from celltrack.scale.parents import parents_from_vector_store

    rng = np.random.default_rng(1)
    vectors = rng.normal(0, 2, (3, 3, *shape)).astype(np.float32)
    store = zarr.open_array(
        str(tmp_path / "movement.zarr"), mode="w", shape=vectors.shape,
        chunks=(1, 3, 4, 8, 8), dtype="float32",
    )
    store[:] = vectors
    spots = _spots(rng, 150, shape, with_covariance=False)
    if shape[0] == 1:  # 2D+t: every spot in the one z slice
        pos = spots.positions * [0.0, 1.0, 1.0]
        spots = TrackGraph.from_positions(spots.t, pos)
    out = parents_from_vector_store(spots, store, VS, edge_length=edge_length)
    got = np.stack([out.nodes[c] for c in PARENT_COLUMNS], axis=1)
    for t in range(3):
        rows = np.flatnonzero(spots.t == t)
        if t == 0:  # no parents predicted in frame 0: the spots' own positions
            np.testing.assert_array_equal(got[rows], spots.positions[rows])
            continue
        whole = parents_from_vectors(spots.positions[rows], vectors[t], VS, edge_length)
        np.testing.assert_allclose(got[rows], whole, rtol=0, atol=1e-9)
    moved = spots.t > 0
    assert np.abs(got[moved] - spots.positions[moved]).max() > 1.0


def test_movement_vectors_outside_the_box_are_refused():
    from celltrack.flow.movement_predict import parents_from_vectors

    vec = np.zeros((3, 1, 5, 5), np.float32)
    with pytest.raises(ShapeError, match="read a larger box"):
        parents_from_vectors(
            np.array([[0.0, 4.0, 4.0]]), vec, (1, 1, 1), 3, origin=(0, 0, 0),
            volume_shape=(1, 9, 9),
        )
