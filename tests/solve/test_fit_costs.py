"""fit_costs: the structured SVM on the tree ILP, on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.solve import fit_costs
from celltrack.solve.ilp import ILPConfig, ILPLinker

TRUE_D = [2.0, 3.0, 2.5]
FALSE_D = [8.0, 9.0, 10.0]


def pairs_graph(true_d, false_d, *, id_offset=0):
    """Independent parent → child pairs (frame 0 → 1), one candidate edge each.

    Returns the candidate graph and the ground truth (the edges of ``true_d``).
    """
    d = np.asarray([*true_d, *false_d], float)
    k = d.size
    t = np.concatenate([np.zeros(k, int), np.ones(k, int)])
    x = np.concatenate([100.0 * np.arange(k), 100.0 * np.arange(k) + d])
    ids = id_offset + np.arange(2 * k)
    nodes = {"id": ids, "t": t, "z": np.zeros(2 * k), "y": np.zeros(2 * k), "x": x}
    src, tgt = ids[:k], ids[k:]
    cand = TrackGraph(nodes, {"source": src, "target": tgt, "pred_distance": d, "distance": d})
    keep = np.arange(len(true_d))
    gt = TrackGraph(nodes, {"source": src[keep], "target": tgt[keep]})
    return cand, gt


BASE = ILPConfig(node_offset=-20.0, appear_cost=1.0, edge_weight=0.5, disappear_cost=0.0)
LEARN = ("edge_weight", "appear_cost")


def known_optimum(true_d, false_d, lam, n, anchor=(0.0, 0.0)):
    """Minimiser of J(w) = λ/2‖D(w − anchor)‖² + (1/n)·Σ_e hinge_e, the SVM here.

    Components are independent, so the loss-augmented maximum is the sum over edges of
    max(0, 1 + E(z*) − E(z_flip)): true edge 1 + w_E·d − c_T, false edge 1 + c_T − w_E·d.
    D scales each feature by its RMS over the variables it touches (as fit_costs does).
    """
    d = np.asarray([*true_d, *false_d])
    s_e = np.sqrt(np.mean(d**2))
    centre = np.asarray([anchor[0] * s_e, anchor[1]])

    def j(v):
        we, ct = v[0] / s_e, v[1]
        hinge = np.sum(np.maximum(0, 1 + we * np.asarray(true_d) - ct))
        hinge += np.sum(np.maximum(0, 1 + ct - we * np.asarray(false_d)))
        return 0.5 * lam * ((v - centre) @ (v - centre)) + hinge / n

    best = min(
        (minimize(j, x0, method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12,
                                                         "maxiter": 4000})
         for x0 in ([0.5 * s_e, 1.0], [2 * s_e, 8.0], [0.1 * s_e, 0.1])),
        key=lambda r: r.fun,
    )
    return best.x[0] / s_e, best.x[1], best.fun


@pytest.mark.parametrize("lam", [1e-2, 1e-1])
def test_learned_weights_equal_the_known_svm_optimum(lam):
    cand, gt = pairs_graph(TRUE_D, FALSE_D)
    res = fit_costs(cand, gt, base=BASE, learn=LEARN, regularizer_weight=lam,
                    tolerance=1e-6, max_iterations=60)
    n = cand.num_nodes + cand.num_edges  # annotated node and edge variables
    we, ct, j_opt = known_optimum(TRUE_D, FALSE_D, lam, n)
    assert res.weights["edge_weight"] == pytest.approx(we, rel=2e-2, abs=1e-3)
    assert res.weights["appear_cost"] == pytest.approx(ct, rel=2e-2, abs=1e-3)
    assert min(res.objective_history) == pytest.approx(j_opt, rel=1e-2, abs=1e-5)
    # untouched weights keep the base values
    assert res.config.node_offset == BASE.node_offset
    assert res.config.disappear_cost == BASE.disappear_cost


@pytest.mark.parametrize("lam", [1e-1, 1.0])
def test_the_base_prior_pulls_the_weights_to_the_base_costs(lam):
    """prior="base": J(w) = λ/2‖D(w − w_base)‖² + hinge, minimised exactly; a strong
    prior keeps the base costs, and it lands elsewhere than the zero prior."""
    cand, gt = pairs_graph(TRUE_D, FALSE_D)
    res = fit_costs(cand, gt, base=BASE, learn=LEARN, regularizer_weight=lam,
                    prior="base", tolerance=1e-6, max_iterations=60)
    n = cand.num_nodes + cand.num_edges
    anchor = (BASE.edge_weight, BASE.appear_cost)
    we, ct, j_opt = known_optimum(TRUE_D, FALSE_D, lam, n, anchor)
    assert res.weights["edge_weight"] == pytest.approx(we, rel=2e-2, abs=1e-3)
    assert res.weights["appear_cost"] == pytest.approx(ct, rel=2e-2, abs=1e-3)
    assert min(res.objective_history) == pytest.approx(j_opt, rel=1e-2, abs=1e-5)
    we0, ct0, _ = known_optimum(TRUE_D, FALSE_D, lam, n)
    assert abs(we - we0) + abs(ct - ct0) > 0.05  # the two priors differ here
    strong = fit_costs(cand, gt, base=BASE, learn=LEARN, regularizer_weight=1e4,
                       prior="base", tolerance=1e-6, max_iterations=20)
    assert strong.weights["edge_weight"] == pytest.approx(BASE.edge_weight, rel=1e-2)
    assert strong.weights["appear_cost"] == pytest.approx(BASE.appear_cost, rel=1e-2)


def test_learned_weights_separate_true_from_false_links():
    cand, gt = pairs_graph(TRUE_D, FALSE_D)
    res = fit_costs(cand, gt, base=BASE, learn=LEARN, regularizer_weight=1e-3)
    threshold = res.weights["appear_cost"] / res.weights["edge_weight"]
    assert max(TRUE_D) < threshold < min(FALSE_D)
    assert res.training_error == 0.0
    linked = ILPLinker(res.config).link(cand).graph
    assert linked.num_edges == len(TRUE_D)
    # the history is recorded and the hinge loss went down
    assert len(res.loss_history) == res.iterations >= 2
    assert res.loss_history[-1] <= res.loss_history[0]


def test_sparse_fit_ignores_unannotated_lineages():
    # annotated pairs as before; unannotated pairs that would teach the opposite
    # (a long edge as "truth", a short one as "false") if they were counted
    cand_a, gt_a = pairs_graph(TRUE_D, FALSE_D)
    cand_b, _ = pairs_graph([9.5], [1.5], id_offset=100)
    cand = TrackGraph(
        {k: np.concatenate([cand_a.nodes[k], cand_b.nodes[k]]) for k in cand_a.nodes},
        {k: np.concatenate([cand_a.edges[k], cand_b.edges[k]]) for k in cand_a.edges},
    )
    dense = fit_costs(cand_a, gt_a, base=BASE, learn=LEARN, regularizer_weight=1e-2,
                      tolerance=1e-6, max_iterations=60)
    sparse = fit_costs(cand, gt_a, base=BASE, learn=LEARN, sparse=True,
                       regularizer_weight=1e-2, tolerance=1e-6, max_iterations=60)
    for key in LEARN:
        assert sparse.weights[key] == pytest.approx(dense.weights[key], rel=2e-2)
    assert sparse.stats["matched_nodes"] == gt_a.num_nodes


def division_graph(seed: int, n_div: int = 3, n_false: int = 3):
    """Mothers that truly divide (daughters 6 µm away on opposite sides) and mothers
    with one continuing child plus a false node 2 µm from it (a detector's double hit).
    Each mother is far from the others; the false node has no child in frame 2."""
    rng = np.random.default_rng(seed)
    rows = []  # (id, t, x, y)
    src, tgt, gsrc, gtgt = [], [], [], []
    nid = 0
    for m in range(n_div + n_false):
        base = 100.0 * m
        mother = nid
        rows.append((nid, 0, base, 0.0))
        nid += 1
        if m < n_div:
            off = rng.uniform(5.5, 6.5)
            kids = [(base + off, 0.0), (base - off, 0.0)]
        else:
            kids = [(base + 1.0, 0.0), (base + 1.0, rng.uniform(1.8, 2.2))]
        kid_ids = []
        for kx, ky in kids:
            rows.append((nid, 1, kx, ky))
            src.append(mother)
            tgt.append(nid)
            kid_ids.append(nid)
            nid += 1
        # frame 2: every real child continues; the false node does not
        real = kid_ids if m < n_div else kid_ids[:1]
        for r in real:
            kx = rows[r][2]
            rows.append((nid, 2, kx + 0.5, rows[r][3]))
            src.append(r)
            tgt.append(nid)
            gsrc.append(r)
            gtgt.append(nid)
            nid += 1
        for r in real:
            gsrc.append(mother)
            gtgt.append(r)
        if m >= n_div:  # the false node could also continue to the real child's child
            src.append(kid_ids[1])
            tgt.append(nid - 1)
    ids, t, x, y = (np.asarray(c) for c in zip(*rows))
    nodes = {"id": ids, "t": t.astype(int), "z": np.zeros(ids.size), "y": y, "x": x}
    pos = np.stack([np.zeros(ids.size), y, x], axis=1)
    s, g = np.asarray(src), np.asarray(tgt)
    d = np.linalg.norm(pos[s] - pos[g], axis=1)
    cand = TrackGraph(nodes, {"source": s, "target": g, "pred_distance": d, "distance": d})
    gt_nodes = np.isin(ids, np.concatenate([gsrc, gtgt]))
    gt = TrackGraph({k: v[gt_nodes] for k, v in nodes.items()},
                    {"source": np.asarray(gsrc), "target": np.asarray(gtgt)})
    return cand, gt


def test_division_terms_are_learned_and_generalise():
    cand, gt = division_graph(0)
    base = ILPConfig(disappear_cost=1.0, free_first_frame=True)
    learn = ("edge_weight", "appear_cost", "division_separation_weight", "short_daughter_cost")
    res = fit_costs(cand, gt, base=base, learn=learn, regularizer_weight=1e-4,
                    max_iterations=30)
    assert res.training_error == 0.0
    test_cand, _test_gt = division_graph(1, n_div=4, n_false=4)
    linked = ILPLinker(res.config).link(test_cand).graph
    s, _ = linked.edge_index()
    divides = np.bincount(s, minlength=linked.num_nodes) == 2
    assert int(divides.sum()) == 4
    # the hand-set defaults take the double hits as divisions too
    plain = ILPLinker(base).link(test_cand).graph
    ps, _ = plain.edge_index()
    assert int((np.bincount(ps, minlength=plain.num_nodes) == 2).sum()) != 4


def test_fit_costs_validates_its_inputs():
    cand, gt = pairs_graph(TRUE_D, FALSE_D)
    with pytest.raises(InvalidInputError):
        fit_costs(cand, gt, learn=("no_such_weight",))
    with pytest.raises(InvalidInputError):
        fit_costs(cand, gt, regularizer_weight=0.0)
    with pytest.raises(InvalidInputError, match="prior"):
        fit_costs(cand, gt, prior="hand-set")
    other = TrackGraph({"id": [900], "t": [0], "z": [0.0], "y": [0.0], "x": [0.0]})
    with pytest.raises(InvalidInputError, match="match"):
        fit_costs(cand, other)


def test_the_node_score_weight_is_learned_from_indicator_scores():
    """Linajea's c_V = τ_V + w_V · s: true nodes score high on the cell indicator, false
    maxima low; learning (τ_V, w_V) must keep the true nodes and drop the false ones."""
    cand, gt = pairs_graph(TRUE_D, [])
    k = cand.num_nodes
    false_ids = 1000 + np.arange(4)
    nodes = {
        "id": np.concatenate([cand.ids, false_ids]),
        "t": np.concatenate([cand.t, [0, 0, 1, 1]]),
        "z": np.zeros(k + 4),
        "y": np.full(k + 4, 0.0),
        "x": np.concatenate([cand.nodes["x"], 1000.0 + 100.0 * np.arange(4)]),
        "score": np.concatenate([np.full(k, 0.9), [0.3, 0.4, 0.35, 0.45]]),
    }
    src, tgt = cand.edge_index()
    edges = {
        "source": cand.ids[src], "target": cand.ids[tgt],
        "pred_distance": cand.edges["pred_distance"], "distance": cand.edges["distance"],
    }
    scored = TrackGraph(nodes, edges)
    base = ILPConfig(node_offset=-20.0, node_score_weight=0.0, appear_cost=1.0,
                     edge_weight=0.1, disappear_cost=0.0)
    res = fit_costs(scored, gt, base=base, learn=("node_offset", "node_score_weight"),
                    regularizer_weight=1e-3)
    assert res.weights["node_score_weight"] < 0  # a higher indicator score is cheaper
    linked = ILPLinker(res.config).link(scored).graph
    assert set(linked.ids.tolist()) == set(gt.ids.tolist())


def test_the_default_loss_counts_every_division_pair_and_pair_zero_drops_them():
    """Divisions are a handful of the variables: the default Hamming loss counts each
    candidate division once more (pair loss 1), and ``loss_weights={"pair": 0}`` does not."""
    cand, gt = division_graph(0)
    default = fit_costs(cand, gt, max_iterations=1)
    no_pairs = fit_costs(cand, gt, max_iterations=1, loss_weights={"pair": 0.0})
    pairs = default.stats["candidate_pairs"]
    assert pairs > 0
    assert default.stats["annotated_variables"] == no_pairs.stats["annotated_variables"] + pairs
