import numpy as np
import pytest
from eval_graphs import graph

from celltrack.errors import InvalidInputError
from celltrack.eval import match_nodes
from celltrack.eval._synthetic import perturb, random_forest
from celltrack.graph import TrackGraph


def pairs(m, gt, pred):
    return sorted(zip(gt.ids[m.gt_rows].tolist(), pred.ids[m.pred_rows].tolist()))


def test_optimal_not_greedy():
    # greedy nearest-first would pair gt 1 with pred 11 (0.8 µm) and leave gt 2 unmatched
    gt = graph([(1, 0, 0.0), (2, 0, 2.0)])
    pred = graph([(10, 0, -1.0), (11, 0, 0.8)])
    m = match_nodes(gt, pred, max_distance=2.0)
    assert pairs(m, gt, pred) == [(1, 10), (2, 11)]
    assert m.is_one_to_one
    np.testing.assert_allclose(np.sort(m.distance), [1.0, 1.2])


def test_soft_threshold_prefers_one_close_pair_over_two_far_ones():
    # Σ(d − θ): one pair at 0.5 µm (−1.5) beats two pairs at 1.5 µm (−0.5 − 0.5)
    gt = graph([(1, 0, 0.0), (2, 0, 2.0)])
    pred = graph([(10, 0, -1.5), (11, 0, 0.5)])
    assert pairs(match_nodes(gt, pred, 2.0), gt, pred) == [(1, 11)]


def test_threshold_inclusive_and_frames_separate():
    gt = graph([(1, 0, 0.0), (2, 1, 0.0), (3, 2, 0.0)])
    pred = graph([(10, 0, 3.0), (11, 1, 3.0001), (12, 5, 0.0)])
    m = match_nodes(gt, pred, max_distance=3.0)
    assert pairs(m, gt, pred) == [(1, 10)]
    assert m.gt_to_pred().tolist() == [0, -1, -1]
    assert m.pred_to_gt().tolist() == [0, -1, -1]


def test_anisotropic_columns_are_used():
    gt = graph([(1, 0, 5.0, 0.0, 0.0)])
    pred = graph([(2, 0, 0.0, 0.0, 0.0)])
    assert match_nodes(gt, pred, 4.0).num_matches == 0
    assert match_nodes(gt, pred, 5.0).num_matches == 1


def test_agrees_with_traccuracy_point_matcher():
    pytest.importorskip("traccuracy")
    from eval_traccuracy import to_traccuracy
    from traccuracy.matchers import PointMatcher

    gt = random_forest(6, 60, extent_um=(20, 60, 60), seed=3)
    pred = perturb(gt, jitter_um=2.0, seed=4)
    m = match_nodes(gt, pred, 4.0)
    ref = PointMatcher(threshold=4.0).compute_mapping(to_traccuracy(gt), to_traccuracy(pred))
    assert pairs(m, gt, pred) == sorted(ref.mapping)
    assert m.num_matches > 0.6 * gt.num_nodes


def test_empty_and_bad_inputs():
    gt = graph([(1, 0, 0.0)])
    assert match_nodes(gt, TrackGraph.empty(), 1.0).num_matches == 0
    for bad in (0, -1.0, float("nan"), float("inf"), "a"):
        with pytest.raises(InvalidInputError, match="max_distance"):
            match_nodes(gt, gt, bad)
    with pytest.raises(InvalidInputError, match="position columns"):
        match_nodes(gt, gt, 1.0, position_columns=("z", "y", "w"))
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        match_nodes({"id": [1]}, gt, 1.0)


def test_large_is_fast():
    import time

    rng = np.random.default_rng(0)
    n = 20000
    t = rng.integers(0, 50, n)
    pos = rng.uniform(0, [50, 300, 300], (n, 3))
    gt = TrackGraph.from_positions(t, pos)
    pred = TrackGraph.from_positions(t, pos + rng.normal(0, 1.0, (n, 3)))
    t0 = time.perf_counter()
    m = match_nodes(gt, pred, 5.0)
    assert time.perf_counter() - t0 < 5.0
    assert m.is_one_to_one and m.num_matches > 0.95 * n


def test_sparse_fallback_matches_dense(monkeypatch):
    import celltrack.eval.matching as matching

    rng = np.random.default_rng(7)
    n = 400
    t = rng.integers(0, 2, n)
    pos = rng.uniform(0, [5, 40, 40], (n, 3))
    gt = TrackGraph.from_positions(t, pos)
    pred = TrackGraph.from_positions(t, pos + rng.normal(0, 1.5, (n, 3)))
    dense = match_nodes(gt, pred, 3.0)
    monkeypatch.setattr(matching, "_DENSE_LIMIT", 0)
    sparse = match_nodes(gt, pred, 3.0)
    assert pairs(dense, gt, pred) == pairs(sparse, gt, pred)
    # crowded: some components really have several rows and columns
    assert dense.num_matches < n
