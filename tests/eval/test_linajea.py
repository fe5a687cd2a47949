import math

import numpy as np
import pytest
from eval_graphs import graph

from celltrack.errors import InvalidInputError
from celltrack.eval import linajea_scores, match_edges

THR = 1.0
CHAIN = graph([(1, 0, 0.0), (2, 1, 0.0), (3, 2, 0.0)], [(1, 2), (2, 3)])


def scores(gt, pred, sparse=True, **kw):
    return linajea_scores(gt, pred, THR, sparse_gt=sparse, **kw)


def test_perfect():
    s = scores(CHAIN, CHAIN)
    assert (s.matched_edges, s.fn_edges, s.fp_edges, s.identity_switches) == (2, 0, 0, 0)
    assert s.edge_precision == s.edge_recall == s.edge_f1 == 1.0
    assert s.sum_errors == 0
    assert s.segment_lengths.tolist() == [1, 2]
    assert s.error_free_fraction.tolist() == [1.0, 1.0]
    assert s.aeftl == 2.0 and s.erl == 2.0


def test_fn_edge_and_segments():
    pred = graph([(11, 0, 0.2), (12, 1, 0.2), (13, 2, 0.2)], [(11, 12)])
    s = scores(CHAIN, pred)
    assert (s.fn_edges, s.fp_edges, s.matched_edges) == (1, 0, 1)
    assert s.correct_segments.tolist() == [1, 0] and s.total_segments.tolist() == [2, 1]
    assert s.edge_recall == 0.5 and s.sum_errors == 1


def test_fp_edges_sparse_vs_dense():
    gt = graph([(1, 0, 0.0), (2, 1, 0.0)], [(1, 2)])
    # two candidate edges near the GT edge (one is left over) and one far away
    pred = graph(
        [(11, 0, 0.1), (12, 1, 0.1), (13, 0, -0.1), (14, 1, -0.1), (15, 0, 50.0), (16, 1, 50.0)],
        [(11, 12), (13, 14), (15, 16)],
    )
    sp, de = scores(gt, pred, True), scores(gt, pred, False)
    assert (sp.fp_edges, de.fp_edges) == (1, 2)
    assert sp.edge_precision == 0.5 and de.edge_precision == pytest.approx(1 / 3)
    assert (sp.sum_errors, de.sum_errors) == (0, 2)


def test_edge_matching_prefers_more_matches_then_closer():
    gt = graph([(1, 0, 0.0), (2, 1, 0.0), (3, 0, 1.5), (4, 1, 1.5)], [(1, 2), (3, 4)])
    pred = graph([(11, 0, 0.9), (12, 1, 0.9), (13, 0, 2.4), (14, 1, 2.4)], [(11, 12), (13, 14)])
    m = match_edges(gt, pred, THR)
    # 11→12 is closest to 3→4 (0.6 µm), but taking it would leave 1→2 unmatched
    assert list(zip(m.gt_edges.tolist(), m.pred_edges.tolist())) == [(0, 0), (1, 1)]


def test_identity_switch():
    # two predicted nodes near GT node 2: the GT track is followed by two predicted tracks
    pred = graph(
        [(11, 0, 0.0), (12, 1, 0.3), (22, 1, -0.3), (13, 2, 0.0)], [(11, 12), (22, 13)]
    )
    s = scores(CHAIN, pred)
    assert s.identity_switches == 1 and s.fn_edges == 0
    # the segment of length 2 passes the switch
    assert s.correct_segments.tolist() == [2, 0]
    assert s.aeftl == 1.0


def test_fp_division_dense_and_sparse():
    gt = graph([(1, 0, 0.0), (2, 1, 0.0), (3, 2, 0.0)], [(1, 2), (2, 3)])
    # predicted 2 divides into the GT child and a far node: FP division in both modes
    pred = graph([(11, 0, 0.0), (12, 1, 0.0), (13, 2, 0.0), (14, 2, 30.0)],
                 [(11, 12), (12, 13), (12, 14)])
    assert scores(gt, pred, True).fp_divisions == 1
    assert scores(gt, pred, False).fp_divisions == 1
    # a division far from any annotation: only dense GT counts it
    far = graph([(1, 0, 0.0), (2, 1, 0.0), (21, 0, 50.0), (22, 1, 50.0), (23, 2, 45.0),
                 (24, 2, 55.0)], [(1, 2), (21, 22), (22, 23), (22, 24)])
    assert scores(CHAIN, far, True).fp_divisions == 0
    assert scores(CHAIN, far, False).fp_divisions == 1
    # a division right after the annotated track ends: ignored with sparse GT
    short = graph([(1, 0, 0.0), (2, 1, 0.0)], [(1, 2)])
    after = graph([(11, 0, 0.0), (12, 1, 0.0), (13, 2, -5.0), (14, 2, 5.0)],
                  [(11, 12), (12, 13), (12, 14)])
    assert scores(short, after, True).fp_divisions == 0
    assert scores(short, after, False).fp_divisions == 1


# GT division: p(t0) → d(t1) → c1, c2 (t2)
DIV_NODES = [(1, 0, 0.0), (2, 1, 0.0), (3, 2, -5.0), (4, 2, 5.0)]
DIV = graph(DIV_NODES, [(1, 2), (2, 3), (2, 4)])


def fn_types(pred, gt=DIV):
    s = scores(gt, pred)
    return (s.tp_divisions, s.fn_div_no_connection, s.fn_div_one_unconnected_child,
            s.fn_div_unconnected_parent, s.fn_divisions)


def test_fn_division_subtypes():
    assert fn_types(DIV) == (1, 0, 0, 0, 0)
    one_child = graph(DIV_NODES, [(1, 2), (2, 3)])
    assert fn_types(one_child) == (0, 0, 1, 0, 1)
    no_conn = graph(DIV_NODES, [(1, 2)])
    assert fn_types(no_conn) == (0, 1, 0, 0, 1)
    # the children hang from a second node near d, not from the node continuing p
    unconnected_parent = graph([*DIV_NODES, (22, 1, 0.5)], [(1, 2), (22, 3), (22, 4)])
    assert fn_types(unconnected_parent) == (0, 0, 0, 1, 1)
    # without a GT parent edge: TP if the children are joined, else "no connection"
    root = graph(DIV_NODES[1:], [(2, 3), (2, 4)])
    assert fn_types(graph(DIV_NODES[1:], [(2, 3), (2, 4)]), root)[0] == 1
    assert fn_types(graph(DIV_NODES[1:], [(2, 3)]), root) == (0, 1, 0, 0, 1)


def test_fn_division_marks_segments():
    s = scores(DIV, graph(DIV_NODES, [(1, 2), (2, 3)]))
    # paths of 2 edges: 1→2→3 and 1→2→4 both pass the FN division at node 2
    assert s.total_segments.tolist() == [3, 2] and s.correct_segments.tolist() == [2, 0]
    assert s.error_free_fraction[0] == pytest.approx(2 / 3)


def test_segment_length_cap_and_empty():
    s = scores(CHAIN, CHAIN, max_segment_length=5)
    assert s.segment_lengths.tolist() == [1, 2, 3, 4, 5]
    assert s.total_segments.tolist() == [2, 1, 0, 0, 0]
    assert np.isnan(s.error_free_fraction[2:]).all()
    empty = scores(graph([(1, 0, 0.0)]), CHAIN)
    assert empty.segment_lengths.size == 0 and math.isnan(empty.edge_recall)
    with pytest.raises(InvalidInputError, match="max_segment_length"):
        scores(CHAIN, CHAIN, max_segment_length=0)


def test_to_dict_is_plain():
    import json

    d = scores(CHAIN, CHAIN).to_dict()
    json.dumps(d)
    assert d["error_free_fraction"] == [1.0, 1.0]
