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
    split = 0.05 if seed % 2 else 0.4
    linker = ILPLinker(ILPConfig(**{**COSTS, "split_cost": split}, use_lp=use_lp))
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


@pytest.mark.parametrize("seed", range(3))
def test_optimum_equals_motile_scip(seed):
    g = random_candidates(5, 8, radius=3.5, seed=100 + seed)
    cfg = ILPConfig(**COSTS, cost_scale=1e6)
    linker = ILPLinker(cfg)
    r = linker.link(g)
    assert r.status == SolveStatus.OPTIMAL
    value, sub = motile_objective(g, cfg)
    # same optimum (our costs are rounded to 1e-6 per term)
    assert r.objective == pytest.approx(value, abs=1e-4)
    # motile's solution, priced by our objective, is optimal too
    chosen = set(sub.edges)
    sel = np.array([(s, t) in chosen for s, t in zip(g.edges["source"].tolist(),
                                                     g.edges["target"].tolist())])
    nodes = np.isin(g.ids, np.asarray(list(sub.nodes), np.int64))
    assert linker.objective_of(g, sel, nodes) == pytest.approx(value, abs=1e-4)
