"""ILPLinker optimum vs brute force (tiny graphs) and vs motile + SCIP (small random graphs)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial import cKDTree

from celltrack.graph import TrackGraph
from celltrack.solve.base import SolveStatus
from celltrack.solve.ilp import ILPConfig, ILPLinker

COSTS = dict(
    node_offset=-0.3,
    node_score_weight=-0.4,
    edge_weight=0.05,
    appear_cost=0.6,
    split_cost=0.2,
    disappear_cost=0.0,
    border_distance_um=2.0,
)


def random_candidates(n_frames, per_frame, radius, seed, size=10.0):
    """Random points per frame, candidate edges to the previous frame within ``radius``."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(n_frames), per_frame)
    pos = rng.uniform(0, size, (t.size, 3))
    pos[:, 0] = 0.0  # 2D+t
    src, tgt = [], []
    for f in range(1, n_frames):
        a, b = np.flatnonzero(t == f - 1), np.flatnonzero(t == f)
        pairs = cKDTree(pos[a]).query_ball_point(pos[b], radius)
        for j, parents in zip(b, pairs):
            src += a[parents].tolist()
            tgt += [j] * len(parents)
    src, tgt = np.asarray(src, np.int64), np.asarray(tgt, np.int64)
    d = np.linalg.norm(pos[src] - pos[tgt], axis=1) if src.size else np.zeros(0)
    g = TrackGraph(
        {"id": np.arange(t.size), "t": t, "z": pos[:, 0], "y": pos[:, 1], "x": pos[:, 2],
         "score": rng.uniform(0, 1, t.size)},
        {"source": src, "target": tgt, "pred_distance": d + rng.uniform(0, 1, d.size),
         "distance": d},
    )
    g.attrs["roi_um"] = [[0, n_frames - 1], [0, 0], [0, size], [0, size]]
    return g


def brute_force(linker, g):
    """Best objective over all edge subsets obeying ≤ 1 parent / ≤ 2 children."""
    src, tgt = g.edge_index()
    alone = np.array([
        linker.objective_of(g, np.zeros(g.num_edges, bool), np.arange(g.num_nodes) == i)
        for i in range(g.num_nodes)
    ])
    best = np.inf
    for bits in itertools.product([False, True], repeat=g.num_edges):
        sel = np.array(bits, bool)
        if np.any(np.bincount(tgt[sel], minlength=g.num_nodes) > 1):
            continue
        if np.any(np.bincount(src[sel], minlength=g.num_nodes) > 2):
            continue
        nodes = np.zeros(g.num_nodes, bool)
        nodes[src[sel]] = nodes[tgt[sel]] = True
        nodes |= alone < 0  # an unlinked node is worth selecting on its own iff it pays
        best = min(best, linker.objective_of(g, sel, nodes))
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("use_lp", [True, False])
def test_optimum_equals_brute_force(seed, use_lp):
    g = random_candidates(3, 4, radius=4.0, seed=seed)
    while g.num_edges > 11:  # keep the enumeration small (≤ 2^11 subsets)
        g = g.subgraph(edges=np.arange(g.num_edges - 1))
    assert g.num_edges >= 4
    split = (0.4, 0.05, -0.1)[seed % 3]  # a negative split cost rewards divisions
    disappear = 0.2 if seed >= 3 else 0.0
    costs = {**COSTS, "split_cost": split, "disappear_cost": disappear}
    linker = ILPLinker(ILPConfig(**costs, use_lp=use_lp))
    r = linker.link(g)
    assert r.status == SolveStatus.OPTIMAL
    assert r.objective == pytest.approx(brute_force(linker, g), abs=1e-9)
    assert r.bound == pytest.approx(r.objective)


def motile_objective(g, cfg):
    motile = pytest.importorskip("motile")
    pytest.importorskip("pyscipopt")
    import ilpy
    import networkx as nx
    from motile.constraints import MaxChildren, MaxParents
    from motile.costs import (
        EdgeSelectedCost,
        NodeAppearCost,
        NodeSelectedCost,
        NodeSplitCost,
    )

    from celltrack.solve.ilp.problem import LinkingProblem

    near = LinkingProblem.from_graph(g).near_border(cfg.border_distance_um)
    nxg = nx.DiGraph()
    for i, node in enumerate(g.ids.tolist()):
        nxg.add_node(node, t=int(g.t[i]), score=float(g.nodes["score"][i]),
                     free=bool(near[i]))
    for s, t, d in zip(g.edges["source"].tolist(), g.edges["target"].tolist(),
                       g.edges["pred_distance"].tolist()):
        nxg.add_edge(s, t, pd=d)
    solver = motile.Solver(motile.TrackGraph(nxg, frame_attribute="t"))
    solver.add_cost(NodeSelectedCost(weight=cfg.node_score_weight, attribute="score",
                                     constant=cfg.node_offset))
    solver.add_cost(EdgeSelectedCost(weight=cfg.edge_weight, attribute="pd"))
    solver.add_cost(NodeAppearCost(constant=cfg.appear_cost, ignore_attribute="free"))
    solver.add_cost(NodeSplitCost(constant=cfg.split_cost))
    solver.add_constraint(MaxParents(1))
    solver.add_constraint(MaxChildren(2))
    solution = solver.solve(backend=ilpy.Preference.Scip)
    sub = solver.get_selected_subgraph()
    return solution.get_value(), sub


HARD = {**COSTS, "split_cost": 0.02, "appear_cost": 1.0, "node_offset": -0.6}


@pytest.mark.parametrize(
    ("shape", "seed", "costs"),
    [((5, 8), 100, COSTS), ((5, 8), 101, COSTS), ((5, 8), 102, COSTS), ((6, 10), 297, HARD)],
)
def test_optimum_equals_motile_scip(shape, seed, costs):
    g = random_candidates(*shape, radius=3.5, seed=seed)
    cfg = ILPConfig(**costs, cost_scale=1e6)
    linker = ILPLinker(cfg)
    r = linker.link(g)
    assert r.status == SolveStatus.OPTIMAL
    if seed == 297:  # this one has a fractional LP optimum: closed by the local bound
        assert r.stats["lp_integral"] is False
    value, sub = motile_objective(g, cfg)
    # same optimum (our costs are rounded to 1e-6 per term)
    assert r.objective == pytest.approx(value, abs=1e-4)
    # motile's solution, priced by our objective, is optimal too
    chosen = set(sub.edges)
    sel = np.array([(s, t) in chosen for s, t in zip(g.edges["source"].tolist(),
                                                     g.edges["target"].tolist())])
    nodes = np.isin(g.ids, np.asarray(list(sub.nodes), np.int64))
    assert linker.objective_of(g, sel, nodes) == pytest.approx(value, abs=1e-4)


def diamond():
    """u (t=0, costly) may divide into a, b (t=1), which both could feed w (t=2).

    The LP relaxation half-selects u, divides it at half cost and merges the two halves into
    one full parent for w; no integer solution can do that (optimum: only q is selected).
    """
    ids = np.arange(5)  # u, a, b, w, q
    g = TrackGraph(
        {"id": ids, "t": [0, 1, 1, 2, 0], "z": np.zeros(5), "y": np.zeros(5),
         "x": [0.0, -1, 1, 0, 9], "score": [1.0, 0, 0, 0, 0]},
        {"source": [0, 0, 1, 2], "target": [1, 2, 3, 3], "pred_distance": np.ones(4)},
    )
    cfg = ILPConfig(node_offset=-1.0, node_score_weight=4.0, edge_weight=0.1, appear_cost=2.0,
                    split_cost=0.1, disappear_cost=0.0, border_distance_um=0.0)
    return g, cfg


def test_fractional_lp_is_closed_exactly():
    g, cfg = diamond()
    linker = ILPLinker(cfg)
    r = linker.link(g)
    assert r.stats["lp_integral"] is False
    assert r.stats["lp_bound"] < r.objective - 0.1
    assert r.status == SolveStatus.OPTIMAL and r.bound == pytest.approx(r.objective)
    assert r.stats["proof"] in ("lagrangian_certificate", "cpsat")
    assert r.objective == pytest.approx(brute_force(linker, g)) == pytest.approx(-1.0)
    assert r.graph.ids.tolist() == [4]
    # the same without the LP machinery (pure CP-SAT)
    assert ILPLinker(cfg.model_copy(update={"use_lp": False})).link(g).objective == r.objective


@pytest.mark.parametrize("seed", range(4))
def test_local_lagrangian_bound_never_exceeds_optimum(seed):
    from celltrack.solve.ilp.linker import build_model
    from celltrack.solve.ilp.local import local_lagrangian_bound
    from celltrack.solve.ilp.presolve import restrict
    from celltrack.solve.ilp.problem import LinkingProblem

    rng = np.random.default_rng(seed)
    g, cfg = diamond() if seed == 0 else (random_candidates(3, 3, 5.0, seed), ILPConfig(**COSTS))
    linker = ILPLinker(cfg)
    best = brute_force(linker, g) * cfg.cost_scale
    model = build_model(LinkingProblem.from_graph(g), cfg)
    rest = restrict(model, model.lb, model.ub)
    for _ in range(5):
        mu = rng.exponential(cfg.cost_scale, rest.b.size) * (rng.random(rest.b.size) < 0.7)
        rows = np.flatnonzero(rng.random(rest.b.size) < 0.4)
        variables = np.unique(rest.A[rows].indices)
        local = local_lagrangian_bound(rest, mu, rows, variables, time_limit_s=5, num_workers=1)
        assert local is not None and local.bound_float <= best + 1e-6


def test_tiny_time_budget_still_honest():
    g = random_candidates(6, 10, radius=3.5, seed=7)
    cfg = ILPConfig(**COSTS, time_limit_s=1e-3)
    r = ILPLinker(cfg).link(g)
    assert r.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)
    assert r.bound is None or r.bound <= r.objective + 1e-9
    exact = ILPLinker(ILPConfig(**COSTS)).link(g)
    assert exact.status == SolveStatus.OPTIMAL
    assert r.objective >= exact.objective - 1e-9
    if r.status == SolveStatus.OPTIMAL:
        assert r.objective == pytest.approx(exact.objective)
