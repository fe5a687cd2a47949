"""Block-wise candidate graph equals build_candidates (celltrack.scale.candidates)."""

from __future__ import annotations

import numpy as np
import pytest

from celltrack.errors import InvalidInputError, OutputExistsError
from celltrack.graph import TrackGraph
from celltrack.graph.candidates import CandidateConfig, build_candidates
from celltrack.scale.candidates import build_candidates_blockwise, candidate_graph_blockwise


def _spots(seed: int = 0, n_frames: int = 6, with_parents: bool = True) -> TrackGraph:
    """Random spots (µm) with gaps in time, missing parents (NaN) and exact ties."""
    rng = np.random.default_rng(seed)
    per = rng.integers(0, 25, n_frames)
    per[2] = 0  # an empty frame: gap-2 links jump over it
    t = np.repeat(np.arange(n_frames), per)
    rng.shuffle(t)  # rows not sorted by frame
    pos = rng.uniform(0, 20, (t.size, 3))
    pos[:4] = np.round(pos[:4])  # a few on the integer grid: equal distances
    cols = {"score": rng.uniform(0, 1, t.size), "covariance": np.tile(np.eye(3), (t.size, 1, 1))}
    if with_parents:
        parent = pos + rng.normal(0, 2, pos.shape)
        parent[rng.random(t.size) < 0.2] = np.nan
        cols.update(parent_z=parent[:, 0], parent_y=parent[:, 1], parent_x=parent[:, 2])
    ids = rng.permutation(t.size) * 3 + 7  # ids not 0..N-1
    return TrackGraph.from_positions(t, pos, ids=ids, **cols)


def _same(got: TrackGraph, want: TrackGraph) -> None:
    assert got.num_nodes == want.num_nodes and got.num_edges == want.num_edges
    assert set(got.edges) == set(want.edges)
    for name, col in want.edges.items():  # same order, bit-identical
        np.testing.assert_array_equal(got.edges[name], col, err_msg=name)
        assert got.edges[name].dtype == col.dtype
    for name, col in want.nodes.items():
        np.testing.assert_array_equal(got.nodes[name], col, err_msg=name)
    attrs = {k: v for k, v in got.attrs.items() if k != "blockwise_candidates"}
    assert attrs == want.attrs


@pytest.mark.parametrize(
    "cfg",
    [
        CandidateConfig(max_distance_um=9.0),
        CandidateConfig(max_distance_um=12.0, max_gap_frames=3, max_candidates=2),
        CandidateConfig(max_distance_um=8.0, use_predicted_position=False, max_gap_frames=2,
                        field_of_view_um=((0, 25), (0, 25), (0, 25))),
    ],
    ids=["default", "gap3-k2", "no-prediction-fov"],
)
def test_equals_build_candidates(cfg):
    spots = _spots()
    want = build_candidates(spots, cfg)
    assert want.num_edges > 10
    _same(build_candidates_blockwise(spots, cfg), want)


def test_without_parent_columns_and_on_processes():
    spots = _spots(seed=3, with_parents=False)
    cfg = CandidateConfig(max_distance_um=10.0, max_gap_frames=2)
    _same(build_candidates_blockwise(spots, cfg, executor="processes", n_workers=2),
          build_candidates(spots, cfg))


def test_empty_and_single_frame():
    empty = TrackGraph.from_positions(np.zeros(0, np.int64), np.zeros((0, 3)))
    _same(build_candidates_blockwise(empty), build_candidates(empty))
    one = TrackGraph.from_positions(np.zeros(3, np.int64), np.ones((3, 3)))
    _same(build_candidates_blockwise(one), build_candidates(one))


def test_geff_written_atomically(tmp_path):
    from celltrack.io.geff_io import read_geff

    spots = _spots(seed=1)
    cfg = CandidateConfig(max_distance_um=9.0)
    out = tmp_path / "cand.geff"
    got = build_candidates_blockwise(spots, cfg, out=out)
    back = read_geff(out)
    assert back.equals(got)
    assert back.attrs["roi_um"] == got.attrs["roi_um"]
    with pytest.raises(OutputExistsError):
        build_candidates_blockwise(spots, cfg, out=out)
    build_candidates_blockwise(spots, cfg, out=out, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_errors():
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        build_candidates_blockwise(np.zeros((3, 4)))
    with pytest.raises(InvalidInputError, match="CandidateConfig"):
        build_candidates_blockwise(_spots(), {"max_distance_um": 3})
    with pytest.raises(InvalidInputError, match="unknown executor"):
        build_candidates_blockwise(_spots(), executor="threads")


def test_from_probabilities_to_geff(tmp_path):
    """Probabilities + flow (stored arrays) → spots → parents → candidates → GEFF."""
    from celltrack.config.detection import SpotConfig
    from celltrack.detect.api import collect_spots
    from celltrack.detect.spots import extract_spots
    from celltrack.flow.displace import displace
    from celltrack.io.geff_io import read_geff

    rng = np.random.default_rng(4)
    vs = (2.0, 1.0, 1.0)
    shape = (3, 6, 24, 24)
    grid = np.stack(np.meshgrid(*[np.arange(s) * v for s, v in zip(shape[1:], vs)],
                                indexing="ij"), -1)
    centre = np.zeros(shape, np.float32)
    start = rng.uniform(3, 20, (6, 3)) * [0.4, 1, 1]
    for t in range(shape[0]):
        for c in start + t * np.array([0.0, 1.2, -0.8]):
            d2 = (((grid - c) / [3.0, 2.5, 2.5]) ** 2).sum(-1)
            centre[t] = np.maximum(centre[t], np.clip(1 - d2 / 2, 0, 1))
    prob = np.stack([1 - centre, np.zeros_like(centre), centre], axis=1)
    flow = np.zeros((shape[0], 3, *shape[1:]), np.float32)
    flow[:, 1], flow[:, 2] = -1.2, 0.8  # backward flow (µm): where the voxel was at t − 1
    scfg = SpotConfig(r_max_um=5.0)
    ccfg = CandidateConfig(max_distance_um=3.0)
    out = tmp_path / "graph.geff"
    got = candidate_graph_blockwise(prob, vs, scfg, ccfg, block_shape=(3, 8, 8), flow=flow,
                                    out=out)

    spots = collect_spots([extract_spots(prob[t], vs, scfg, t=t) for t in range(shape[0])])
    spots = displace(spots, {t: flow[t] for t in range(1, shape[0])}, vs)
    fov = ((0.0, 10.0), (0.0, 23.0), (0.0, 23.0))
    want = build_candidates(spots, ccfg.model_copy(update={"field_of_view_um": fov}))
    assert want.num_edges >= 5 and "parent_y" in got.nodes
    assert got.equals(want)
    assert got.attrs["roi_um"] == want.attrs["roi_um"]
    assert read_geff(out).equals(got)
