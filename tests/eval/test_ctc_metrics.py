import math

import numpy as np
import pytest
from eval_graphs import graph

from celltrack.errors import InvalidInputError
from celltrack.eval import aogm_counts, evaluate, parent_link_mask
from celltrack.eval._synthetic import perturb, random_forest
from celltrack.graph import TrackGraph

CHAIN = graph([(1, 0, 0.0), (2, 1, 0.0), (3, 2, 0.0)], [(1, 2), (2, 3)])


def counts(gt, pred, thr=1.0):
    a = evaluate(gt, pred, thr).aogm
    return a, (a.ns, a.fn_nodes, a.fp_nodes, a.ed, a.ea, a.ec)


def test_perfect_prediction():
    a, c = counts(CHAIN, CHAIN)
    assert c == (0, 0, 0, 0, 0, 0)
    assert a.aogm0 == 10 * 3 + 1.5 * 2
    assert (a.det, a.tra, a.lnk) == (1.0, 1.0, 1.0)


def test_missed_node_bridged_by_gap():
    pred = graph([(11, 0, 0.1), (13, 2, 0.1)], [(11, 13)])
    a, c = counts(CHAIN, pred)
    # FN node 2, both GT edges missing, the skip edge 1→3 is not in the GT
    assert c == (0, 1, 0, 1, 2, 0)
    assert a.aogm == 10 + 1 + 3.0
    assert a.tra == pytest.approx(1 - 14 / 33)
    assert a.det == pytest.approx(1 - 10 / 30)
    assert a.lnk == 0.0  # ED + 1.5·EA = 4 exceeds 1.5·|E| = 3


def test_extra_node_and_extra_edge():
    pred = graph(
        [(11, 0, 0.0), (12, 1, 0.0), (13, 2, 0.0), (14, 1, 9.0)], [(11, 12), (12, 13), (11, 14)]
    )
    _, c = counts(CHAIN, pred)
    # the extra node costs FP; its edge touches an unmatched node, so no ED, but 1→2
    # becomes a parent link in the prediction (1 divides): EC
    assert c == (0, 0, 1, 0, 0, 1)


def test_wrong_link_between_tracks():
    gt = graph([(1, 0, 0.0), (2, 1, 0.0), (3, 0, 5.0), (4, 1, 5.0)], [(1, 2), (3, 4)])
    pred = graph([(1, 0, 0.0), (2, 1, 0.0), (3, 0, 5.0), (4, 1, 5.0)], [(1, 4), (3, 2)])
    _, c = counts(gt, pred)
    assert c == (0, 0, 0, 2, 2, 0)


def test_missed_daughter_gives_ea_and_ec():
    gt = graph([(1, 0, 0.0), (2, 1, -2.0), (3, 1, 2.0)], [(1, 2), (1, 3)])
    pred = graph([(1, 0, 0.0), (2, 1, -2.0), (3, 1, 2.0)], [(1, 2)])
    _, c = counts(gt, pred)
    assert c == (0, 0, 0, 0, 1, 1)


def test_gaps_are_parent_links_in_both_graphs():
    gt = graph([(1, 0, 0.0), (2, 2, 0.0)], [(1, 2)])
    assert parent_link_mask(gt.t, *gt.edge_index(), gt.num_nodes).tolist() == [True]
    a, c = counts(gt, gt)
    assert c == (0, 0, 0, 0, 0, 0) and a.num_gt_edges == 1


def test_parent_link_mask_rules():
    g = graph(
        [(1, 0, 0.0), (2, 1, 0.0), (3, 2, -1.0), (4, 2, 1.0), (5, 4, 1.0), (6, 5, 1.0)],
        [(1, 2), (2, 3), (2, 4), (4, 5), (5, 6)],
    )
    src, tgt = g.edge_index()
    assert parent_link_mask(g.t, src, tgt, g.num_nodes).tolist() == [False, True, True, True, False]


def test_merge_counts_ns_and_edges_at_merged_nodes_are_free():
    # gt: two tracks 0→1 and 2→3; pred: one object matching both frame-1 markers
    gt_src, gt_tgt = np.array([0, 2]), np.array([1, 3])
    sem = np.array([False, False])
    pred_src, pred_tgt = np.array([0, 1]), np.array([2, 2])
    a = aogm_counts(4, gt_src, gt_tgt, sem, 3, pred_src, pred_tgt, np.array([True, True]),
                    np.array([0, 2, 1, 3]), np.array([0, 1, 2, 2]))
    assert (a.ns, a.fn_nodes, a.fp_nodes, a.ed, a.ea, a.ec) == (1, 0, 0, 0, 2, 0)
    with pytest.raises(InvalidInputError, match="several"):
        aogm_counts(2, np.array([0]), np.array([1]), sem[:1], 2, pred_src[:0], pred_tgt[:0],
                    sem[:0], np.array([0, 0]), np.array([0, 1]))


def test_tra_is_clipped_and_empty_gt_is_nan():
    pred = graph([(10 + k, 0, 50.0 + k) for k in range(80)])
    a, _ = counts(CHAIN, pred)
    assert a.aogm > a.aogm0 and a.tra == 0.0 and a.det == 0.0
    empty = evaluate(TrackGraph.empty(), CHAIN, 1.0)
    assert math.isnan(empty.tra) and math.isnan(empty.det) and math.isnan(empty.lnk)
    assert empty.aogm.fp_nodes == 3


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_traccuracy(seed):
    pytest.importorskip("traccuracy")
    from eval_traccuracy import traccuracy_scores

    gt = random_forest(12, 30, p_divide=0.06, extent_um=(20, 80, 80), seed=seed)
    pred = perturb(gt, jitter_um=1.5, p_false_div=0.05, seed=seed + 10)
    s = evaluate(gt, pred, 5.0)
    ctc, _, _ = traccuracy_scores(gt, pred, 5.0, 0)
    a = s.aogm
    mine = {"fp_nodes": a.fp_nodes, "fn_nodes": a.fn_nodes, "ns_nodes": a.ns,
            "fp_edges": a.ed, "fn_edges": a.ea, "ws_edges": a.ec, "AOGM": a.aogm,
            "TRA": s.tra, "DET": s.det, "LNK": s.lnk}
    for key, value in mine.items():
        assert value == pytest.approx(ctc[key], abs=1e-12), key
    # the perturbation really produced every error type point matching can show
    assert min(a.fn_nodes, a.fp_nodes, a.ed, a.ea, a.ec) > 0
