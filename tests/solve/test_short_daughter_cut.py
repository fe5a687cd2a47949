"""Shared-child cuts of the short-daughter term (:mod:`celltrack.solve.ilp.short_daughter_cut`).

The brute-force tests of ``test_division_terms.py`` check that the cuts keep every integer
optimum; these check that they close the LP gap they are made for.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from celltrack.graph import TrackGraph
from celltrack.solve.ilp import ILPConfig, ILPLinker
from celltrack.solve.ilp.linker import build_model
from celltrack.solve.ilp.model import StandardModel, complete_assignment
from celltrack.solve.ilp.problem import LinkingProblem
from celltrack.solve.ilp.short_daughter_cut import BLOCK, fix_with_pairs

#: learned-like weights: nodes pay off, a division is cheap, a short daughter costs 1
CFG = ILPConfig(
    node_offset=-3.0, edge_weight=0.1, appear_cost=2.6, disappear_cost=1.3, split_cost=-0.3,
    short_daughter_cost=1.0, persistence_frames=1, division_max_children=4, division_max_cos=1.0,
)


def half_division_graph() -> TrackGraph:
    """u (t 0) → w, f (t 1; f a double hit 4 µm from w) → c (t 2) → d (t 3)."""
    pos = np.array([[0, 0, 0], [0, 1, 0], [0, 1, 4], [0, 2, 1], [0, 3, 1]], float)
    src, tgt = np.array([0, 0, 1, 2, 3]), np.array([1, 2, 3, 3, 4])
    dist = np.linalg.norm(pos[src] - pos[tgt], axis=1)
    nodes = {"id": np.arange(5), "t": np.array([0, 1, 1, 2, 3]), "z": pos[:, 0],
             "y": pos[:, 1], "x": pos[:, 2], "score": np.ones(5)}
    edges = {"source": src, "target": tgt, "distance": dist, "pred_distance": dist,
             "frame_gap": np.ones(5, np.int64)}
    return TrackGraph(nodes, edges)


def lp_relaxation(model: StandardModel, *, with_cuts: bool) -> tuple[float, np.ndarray]:
    """LP optimum (cost units) and solution, optionally without the cut rows."""
    keep = np.ones(model.A.shape[0], bool)
    row = 0
    for name, count in model.row_names:
        if name.startswith(BLOCK) and not with_cuts:
            keep[row:row + count] = False
        row += count
    res = linprog(
        model.c / model.scale, A_ub=model.A[keep], b_ub=model.b[keep],
        bounds=list(zip(model.lb, model.ub)), method="highs",
    )
    assert res.status == 0
    return float(res.fun), res.x


def test_without_the_cuts_the_lp_half_divides_into_a_shared_child():
    model = build_model(LinkingProblem.from_graph(half_division_graph()), CFG)
    value, x = lp_relaxation(model, with_cuts=False)
    np.testing.assert_allclose(x[model.blocks["pair"]], [0.5], atol=1e-9)
    # w and f each send ½ into c, so neither one-node segment pays
    np.testing.assert_allclose(x[model.blocks["edge"]][[2, 3]], [0.5, 0.5], atol=1e-9)
    cut_value, _ = lp_relaxation(model, with_cuts=True)
    assert value < cut_value - 0.1


def test_with_the_cuts_the_lp_is_integral_and_equals_the_ilp_optimum():
    graph = half_division_graph()
    model = build_model(LinkingProblem.from_graph(graph), CFG)
    value, x = lp_relaxation(model, with_cuts=True)
    np.testing.assert_allclose(x, np.round(x), atol=1e-9)
    result = ILPLinker(CFG).link(graph)
    assert result.status.value == "optimal"
    assert result.stats["lp_integral"] is True
    assert abs(result.objective - value) < 1e-6
    # the optimum divides u into w and f and pays one short daughter (f ends at once)
    assert result.graph.num_edges == 4


def test_the_derived_cut_variables_satisfy_every_row_of_every_forest():
    graph = half_division_graph()
    problem = LinkingProblem.from_graph(graph)
    model = build_model(problem, CFG)
    for bits in range(1 << problem.num_edges):
        edges = np.array([(bits >> i) & 1 for i in range(problem.num_edges)], bool)
        if np.bincount(problem.tgt[edges], minlength=5).max(initial=0) > 1:
            continue  # not a forest
        nodes = np.ones(problem.num_nodes, bool)
        z = complete_assignment(model, problem, nodes, edges)
        assert model.is_feasible(z), bits


def test_cut_variables_of_a_dropped_division_are_fixed_with_it():
    model = build_model(LinkingProblem.from_graph(half_division_graph()), CFG)
    ub = model.ub.copy()
    assert fix_with_pairs(model, ub) == 0
    ub[model.blocks["pair"]] = 0
    assert fix_with_pairs(model, ub) == 2  # z_{k,w,c} and z_{k,f,c}
    assert np.all(ub[model.blocks[BLOCK]] == 0)
