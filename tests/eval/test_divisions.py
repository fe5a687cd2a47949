import math

import pytest
from eval_graphs import graph

from celltrack.errors import InvalidInputError
from celltrack.eval import evaluate
from celltrack.eval._synthetic import perturb, random_forest

# p(t0) → d(t1) → c1, c2 (t2) → e1, e2 (t3)
NODES = [(1, 0, 0.0), (2, 1, 0.0), (3, 2, -3.0), (4, 2, 3.0), (5, 3, -3.0), (6, 3, 3.0)]
GT = graph(NODES, [(1, 2), (2, 3), (2, 4), (3, 5), (4, 6)])


def div(pred, tol=0):
    return evaluate(GT, pred, 1.0, division_tolerance=tol).divisions


def test_perfect_division():
    d = div(GT)
    assert (d.tp, d.fp, d.fn, d.wrong_children) == (1, 0, 0, 0)
    assert d.precision == d.recall == d.f1 == 1.0


def test_missed_division():
    d = div(graph(NODES, [(1, 2), (2, 3), (3, 5), (4, 6)]))
    assert (d.tp, d.fp, d.fn) == (0, 0, 1)
    assert math.isnan(d.precision) and d.recall == 0.0 and math.isnan(d.f1)


def test_an_empty_prediction_misses_every_division():
    d = div(graph([], []))
    assert (d.tp, d.fp, d.fn, d.num_pred) == (0, 0, 1, 0)
    assert d.recall == 0.0 and math.isnan(d.precision)


def test_wrong_children_and_false_division():
    nodes = [*NODES, (7, 2, 9.0), (8, 3, -9.0)]
    d = div(graph(nodes, [(1, 2), (2, 3), (2, 7), (3, 5), (3, 8), (4, 6)]))
    # 2 divides into 3 and a wrong 7: wrong children; 3 divides where the GT does not: FP
    assert (d.tp, d.fp, d.fn, d.wrong_children) == (0, 1, 0, 1)
    assert d.num_pred == 2 and d.precision == 0.0


def test_late_division_within_tolerance():
    nodes = [n for n in NODES if n[0] != 4]
    late = graph(nodes, [(1, 2), (2, 3), (3, 5), (3, 6)])
    d0, d1 = div(late, 0), div(late, 1)
    assert (d0.tp, d0.fp, d0.fn) == (0, 1, 1)
    assert (d1.tp, d1.fp, d1.fn) == (1, 0, 0) and d1.f1 == 1.0


def test_early_division_within_tolerance():
    nodes = [*NODES, (7, 1, -3.0)]
    early = graph(nodes, [(1, 2), (1, 7), (7, 3), (2, 4), (3, 5), (4, 6)])
    assert (div(early, 0).tp, div(early, 1).tp) == (0, 1)
    assert (div(early, 1).fp, div(early, 1).fn) == (0, 0)


def test_tolerance_must_be_non_negative_integer():
    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidInputError, match="division_tolerance"):
            evaluate(GT, GT, 1.0, division_tolerance=bad)


@pytest.mark.parametrize("tol", [0, 2])
def test_agrees_with_traccuracy(tol):
    pytest.importorskip("traccuracy")
    from eval_traccuracy import traccuracy_scores

    gt = random_forest(14, 30, p_divide=0.07, extent_um=(20, 80, 80), seed=5)
    pred = perturb(gt, jitter_um=1.0, p_false_div=0.05, p_shift_div=0.4, seed=6)
    d = evaluate(gt, pred, 5.0, division_tolerance=tol).divisions
    _, ref, _ = traccuracy_scores(gt, pred, 5.0, tol)
    assert d.tp == ref["True Positive Divisions"]
    assert d.fp == ref["False Positive Divisions"]
    assert d.fn == ref["False Negative Divisions"]
    assert d.wrong_children == ref["Wrong Children Divisions"]
    for mine, key in ((d.precision, "Division Precision"), (d.recall, "Division Recall"),
                      (d.f1, "Division F1")):
        assert mine == pytest.approx(ref[key], nan_ok=True)
    if tol:
        assert d.tp > evaluate(gt, pred, 5.0, division_tolerance=0).divisions.tp
