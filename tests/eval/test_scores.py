import json

import numpy as np
import pytest
from eval_graphs import graph

from celltrack.errors import InvalidInputError
from celltrack.eval import TrackingScores, evaluate
from celltrack.eval._synthetic import perturb, random_forest
from celltrack.graph import TrackGraph


@pytest.fixture(scope="module")
def case():
    gt = random_forest(10, 20, p_divide=0.08, extent_um=(20, 60, 60), seed=11)
    pred = perturb(gt, seed=12, p_shift_div=0.3)
    return gt, pred


def test_evaluate_returns_everything(case):
    gt, pred = case
    s = evaluate(gt, pred, max_distance=4.0, division_tolerance=1)
    assert isinstance(s, TrackingScores)
    assert 0 < s.det < 1 and 0 < s.tra < 1 and 0 <= s.lnk < 1
    assert s.aogm.ns == 0  # point matching is one-to-one
    assert s.num_gt_nodes == gt.num_nodes and s.num_pred_edges == pred.num_edges
    d = s.to_dict()
    text = json.dumps(d)
    assert '"tra"' in text and d["parameters"]["max_distance_um"] == 4.0
    assert d["aogm"]["aogm0"] == 10 * gt.num_nodes + 1.5 * gt.num_edges
    assert d["divisions"]["tolerance"] == 1 and d["linajea"]["sparse"] is False
    table = s.table()
    for word in ("DET", "TRA", "LNK", "EC", "identity switches", "error-free segments L=1"):
        assert word in table
    assert str(s) == table


def test_sparse_flag_changes_only_sparse_sensitive_counts(case):
    gt, pred = case
    dense = evaluate(gt, pred, 4.0)
    sparse = evaluate(gt, pred, 4.0, sparse_gt=True)
    assert dense.tra == sparse.tra and dense.divisions == sparse.divisions
    assert sparse.linajea.fp_edges <= dense.linajea.fp_edges
    assert sparse.linajea.fn_edges == dense.linajea.fn_edges
    assert sparse.linajea.sparse and not dense.linajea.sparse


def test_sparse_annotations_do_not_count_unannotated_tracks(case):
    gt, _ = case
    # annotate only the lineages of a few roots: the prediction tracks everything
    lin = gt.lineages()
    sub = gt.subgraph(nodes=np.isin(lin, [0, 1, 2]))
    s = evaluate(sub, gt, 1.0, sparse_gt=True)
    assert s.linajea.fp_edges == 0 and s.linajea.fp_divisions == 0
    assert s.linajea.sum_errors == 0 and s.linajea.edge_precision == 1.0
    assert evaluate(sub, gt, 1.0, sparse_gt=False).linajea.fp_edges > 0


def test_bad_inputs():
    g = graph([(1, 0, 0.0), (2, 1, 0.0)], [(1, 2)])
    late = graph([(1, 5, 0.0), (2, 6, 0.0)], [(1, 2)])
    with pytest.raises(InvalidInputError, match="share no frame"):
        evaluate(g, late, 1.0)
    for bad in (0.0, -2.0, float("nan")):
        with pytest.raises(InvalidInputError, match="max_distance"):
            evaluate(g, g, bad)
    with pytest.raises(InvalidInputError, match="position columns"):
        evaluate(g, g, 1.0, position_columns=("z", "y", "x", "w"))
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        evaluate(g.to_networkx(), g, 1.0)


def test_custom_position_columns():
    g = graph([(1, 0, 0.0), (2, 1, 0.0)], [(1, 2)])
    g.set_node_column("u", np.array([0.0, 100.0]))
    h = g.copy()
    h.set_node_column("u", np.array([0.5, 100.5]))
    assert evaluate(g, h, 1.0, position_columns=("u",)).tra == 1.0
    assert evaluate(g, h, 0.4, position_columns=("u",)).tra == 0.0


def test_empty_prediction():
    g = graph([(1, 0, 0.0), (2, 1, 0.0)], [(1, 2)])
    s = evaluate(g, TrackGraph.empty(), 1.0)
    assert s.aogm.fn_nodes == 2 and s.aogm.ea == 1 and s.tra == 0.0


def test_plots_draw_on_agg(case, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from celltrack.eval.plots import plot_error_counts, plot_error_free_segments, plot_scores

    gt, pred = case
    s = evaluate(gt, pred, 4.0)
    ax = plot_error_free_segments({"a": s, "b": evaluate(gt, gt, 4.0)})
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[1].get_ydata(), 1.0)
    ax = plot_error_counts(s)
    # horizontal bars, one per error type: the length is the count
    assert [round(p.get_width()) for p in ax.patches][:3] == [0, s.aogm.fn_nodes, s.aogm.fp_nodes]
    fig = plot_scores(s)
    fig.savefig(tmp_path / "scores.png")
    assert (tmp_path / "scores.png").stat().st_size > 1000
    with pytest.raises(InvalidInputError):
        plot_scores([s])
