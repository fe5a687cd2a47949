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
