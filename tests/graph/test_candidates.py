"""Tests of the candidate-graph builder and pins_from_tags."""

from __future__ import annotations

import numpy as np
import pytest

from celltrack.config import config_from_dict
from celltrack.errors import ConfigError, InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.graph.candidates import CandidateConfig, build_candidates, pins_from_tags


def _random_spots(seed: int, n_per_frame: int = 30, frames: int = 5, with_pred: bool = True):
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(frames), n_per_frame)
    pos = rng.uniform(0, 40, (t.size, 3))
    cols = {"score": rng.uniform(0, 1, t.size)}
    if with_pred:
        pred = pos + rng.normal(0, 2, pos.shape)
        pred[rng.random(t.size) < 0.2] = np.nan  # some nodes without a prediction
        cols.update(parent_z=pred[:, 0], parent_y=pred[:, 1], parent_x=pred[:, 2])
    ids = rng.permutation(t.size) * 7 + 3  # ids unrelated to row order
    return TrackGraph.from_positions(t, pos, ids=ids, **cols)


def _brute_force(g: TrackGraph, radius: float, max_gap: int, k: int | None):
    pos = g.positions
    pred = pos.copy()
    if "parent_z" in g.nodes:
        p = np.stack([g.nodes[c] for c in ("parent_z", "parent_y", "parent_x")], 1)
        ok = np.all(np.isfinite(p), 1)
        pred[ok] = p[ok]
    out = {}
    for c in range(g.num_nodes):
        for gap in range(1, max_gap + 1):
            q = pos[c] + gap * (pred[c] - pos[c])
            rows = np.flatnonzero(g.t == g.t[c] - gap)
            d = np.linalg.norm(pos[rows] - q, axis=1)
            inside = rows[d <= radius]
            dd = d[d <= radius]
            if k is not None:
                inside = inside[np.argsort(dd, kind="stable")[:k]]
            for p_row in inside:
                out[(int(g.ids[p_row]), int(g.ids[c]))] = (
                    float(np.linalg.norm(pos[p_row] - pos[c])),
                    float(np.linalg.norm(pos[p_row] - q)),
                    gap,
                )
    return out


@pytest.mark.parametrize(
    ("radius", "max_gap", "k", "with_pred"),
    [(8.0, 1, None, True), (10.0, 2, None, True), (12.0, 3, 2, True), (9.0, 2, None, False)],
)
def test_matches_brute_force(radius, max_gap, k, with_pred):
    g = _random_spots(1, with_pred=with_pred)
    cfg = CandidateConfig(max_distance_um=radius, max_gap_frames=max_gap, max_candidates=k)
    c = build_candidates(g, cfg)
    expect = _brute_force(g, radius, max_gap, k)
    got = {
        (s, t): (d, pd, gp)
        for s, t, d, pd, gp in zip(
            c.edges["source"].tolist(),
            c.edges["target"].tolist(),
            c.edges["distance"].tolist(),
            c.edges["pred_distance"].tolist(),
            c.edges["frame_gap"].tolist(),
        )
    }
    assert len(expect) > 50  # the case is not trivial
    assert set(got) == set(expect)
    for key, (d, pd, gp) in expect.items():
        assert got[key] == pytest.approx((d, pd, gp))
    c.validate()  # forward in time, no duplicates


def test_without_prediction_pred_distance_equals_distance():
    g = _random_spots(2, with_pred=False)
    c = build_candidates(g, CandidateConfig(max_distance_um=10))
    assert c.num_edges > 0
    np.testing.assert_allclose(c.edges["pred_distance"], c.edges["distance"])
    # and predictions can be switched off even when present
    g2 = _random_spots(2, with_pred=True)
    c2 = build_candidates(g2, CandidateConfig(max_distance_um=10, use_predicted_position=False))
    np.testing.assert_allclose(c2.edges["pred_distance"], c2.edges["distance"])


def test_prediction_moves_the_search_window():
    # child at x=20 predicts its parent at x=0: only the far node is a candidate
    g = TrackGraph.from_positions(
        [0, 0, 1],
        [[0, 0, 0], [0, 0, 19], [0, 0, 20]],
        parent_z=[np.nan, np.nan, 0.0],
        parent_y=[np.nan, np.nan, 0.0],
        parent_x=[np.nan, np.nan, 0.5],
    )
    c = build_candidates(g, CandidateConfig(max_distance_um=2))
    assert c.edges["source"].tolist() == [0]
    assert c.edges["distance"][0] == pytest.approx(20.0)
    assert c.edges["pred_distance"][0] == pytest.approx(0.5)


def test_keeps_columns_sets_roi_and_drops_input_edges():
    cov = np.repeat(np.eye(3)[None] * 4.0, 4, axis=0)
    g = TrackGraph(
        {
            "id": [1, 2, 3, 4],
            "t": [0, 1, 2, 2],
            "z": [0, 0, 0, 1],
            "y": [0, 1, 1, 1],
            "x": [0, 1, 2, 2],
            "score": [0.1, 0.2, 0.3, 0.4],
            "covariance": cov,
            "tag": ["tp", "fp", "unlabeled", "fn"],
        },
        {"source": [1], "target": [3]},
    )
    c = build_candidates(g, CandidateConfig(max_distance_um=5))
    assert set(c.node_columns) == set(g.node_columns)
    np.testing.assert_array_equal(c.nodes["score"], g.nodes["score"])
    np.testing.assert_array_equal(c.nodes["tag"], g.nodes["tag"])
    assert sorted(zip(c.edges["source"].tolist(), c.edges["target"].tolist())) == [
        (1, 2),
        (2, 3),
        (2, 4),
    ]
    assert c.attrs["roi_um"] == [[0, 2], [0.0, 1.0], [0.0, 1.0], [0.0, 2.0]]
    fov = ((0, 10), (-5, 5), (0, 20))
    c2 = build_candidates(g, CandidateConfig(max_distance_um=5, field_of_view_um=fov))
    assert c2.attrs["roi_um"] == [[0, 2], [0.0, 10.0], [-5.0, 5.0], [0.0, 20.0]]
    assert c2.attrs["candidates"]["max_distance_um"] == 5


def test_edge_cases_empty_and_single_frame():
    empty = build_candidates(TrackGraph.empty())
    assert empty.num_nodes == 0 and empty.num_edges == 0
    assert {"distance", "pred_distance", "frame_gap"} <= set(empty.edge_columns)
    one = build_candidates(TrackGraph.from_positions([3, 3], [[0, 0, 0], [0, 0, 1]]))
    assert one.num_edges == 0 and one.attrs["roi_um"][0] == [3, 3]
    # frames with a hole: gap 2 reaches over an empty frame only if allowed
    g = TrackGraph.from_positions([0, 2], [[0, 0, 0], [0, 0, 1]])
    assert build_candidates(g, CandidateConfig(max_gap_frames=1)).num_edges == 0
    c = build_candidates(g, CandidateConfig(max_gap_frames=2))
    assert c.edges["frame_gap"].tolist() == [2]


def test_bad_input():
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        build_candidates({"id": [1]})
    with pytest.raises(ConfigError, match="max_distance_um"):
        config_from_dict({"max_distance_um": -1}, CandidateConfig)
    with pytest.raises(ConfigError, match="field_of_view_um"):
        config_from_dict({"field_of_view_um": [[0, 1], [5, 1], [0, 1]]}, CandidateConfig)
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({"max_dist": 3}, CandidateConfig)


def test_pins_from_tags():
    g = TrackGraph(
        {
            "id": [1, 2, 3, 4, 5, 6, 7],
            "t": [0, 1, 1, 1, 1, 1, 1],
            "z": np.zeros(7),
            "y": np.zeros(7),
            "x": np.arange(7.0),
            "tag": ["tp", "fn", "fp", "tn", "tb", "fb", "unlabeled"],
        },
        {"source": [1, 1], "target": [2, 3], "approved": [True, False]},
    )
    p = pins_from_tags(g)
    assert p.nodes["pin"].dtype == np.int8
    assert p.nodes["pin"].tolist() == [1, 1, 0, 0, -1, -1, -1]
    assert p.edges["pin"].tolist() == [1, -1]
    assert "pin" not in g.nodes  # input untouched
    bare = pins_from_tags(TrackGraph.from_positions([0, 1], [[0, 0, 0], [0, 0, 1]]))
    assert bare.nodes["pin"].tolist() == [-1, -1]
    with pytest.raises(InvalidInputError):
        pins_from_tags("graph")
