"""Division-pair and persistence terms against brute force on tiny candidate graphs.

Every lineage forest of a small candidate graph is enumerated; its cost is computed here
from the definitions (pair geometry, segments walked node by node), independently of the
ILP rows. The ILP optimum must equal the brute-force minimum, and ``objective_of`` must
give every forest its brute-force cost.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from celltrack.graph import TrackGraph
from celltrack.solve.ilp import ILPConfig, ILPLinker
from celltrack.solve.ilp.pair_definition import candidate_pairs
from celltrack.solve.ilp.problem import LinkingProblem


def tiny_graph(seed: int, sizes=(1, 2, 2, 2)) -> TrackGraph:
    """Random positions, every node linked to every node of the next frame."""
    rng = np.random.default_rng(seed)
    t = np.concatenate([np.full(n, f) for f, n in enumerate(sizes)])
    pos = rng.uniform(0, 10, (t.size, 3))
    src, tgt = [], []
    for a in range(t.size):
        for b in range(t.size):
            if t[b] == t[a] + 1:
                src.append(a)
                tgt.append(b)
    src, tgt = np.asarray(src), np.asarray(tgt)
    d = np.linalg.norm(pos[src] - pos[tgt], axis=1)
    nodes = {"id": np.arange(t.size), "t": t, "z": pos[:, 0], "y": pos[:, 1], "x": pos[:, 2],
             "score": rng.uniform(0, 1, t.size)}
    edges = {"source": src, "target": tgt, "distance": d, "pred_distance": d,
             "frame_gap": np.ones(src.size, np.int64)}
    return TrackGraph(nodes, edges)


def brute_force_cost(cfg: ILPConfig, p: LinkingProblem, nodes, edges) -> float | None:
    """Cost of a forest from the definitions; None if it is not a forest or a division
    joins a pair the model forbids."""
    src, tgt, pos = p.src, p.tgt, p.positions
    n = p.num_nodes
    children = [[] for _ in range(n)]
    parent = [-1] * n
    for e in np.flatnonzero(edges):
        if parent[tgt[e]] >= 0:
            return None
        parent[tgt[e]] = src[e]
        children[src[e]].append(e)
    if any(len(c) > 2 for c in children):
        return None
    t0, t1 = p.t.min(), p.t.max()
    appear_free = p.t == t0
    end_free = p.t == t1
    allowed = candidate_pairs(
        p, p.edge_feature("pred_distance"), max_children=cfg.division_max_children,
        max_cos=cfg.division_max_cos,
    )
    allowed_set = set(zip(allowed.edge1.tolist(), allowed.edge2.tolist()))
    cost = 0.0
    for v in range(n):
        if not nodes[v]:
            continue
        cost += cfg.node_offset + cfg.node_score_weight * p.score[v]
        if parent[v] < 0 and not appear_free[v]:
            cost += cfg.appear_cost
        if not children[v] and not end_free[v]:
            cost += cfg.disappear_cost
        if len(children[v]) == 2:
            e1, e2 = sorted(children[v])
            if (e1, e2) not in allowed_set:
                return None
            cost += cfg.split_cost
            w1, w2 = tgt[e1], tgt[e2]
            a, b = pos[w1] - pos[v], pos[w2] - pos[v]
            cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
            r1, r2 = sorted([np.linalg.norm(a), np.linalg.norm(b)])
            cost += cfg.division_separation_weight * np.linalg.norm(pos[w1] - pos[w2])
            cost += cfg.division_offset_weight * np.linalg.norm(pos[v] - (pos[w1] + pos[w2]) / 2)
            cost += cfg.division_angle_weight * (1 + cos) / 2
            cost += cfg.division_ratio_weight * (1 - r1 / r2)
    for e in np.flatnonzero(edges):
        cost += cfg.edge_weight * p.edge_feature("pred_distance")[e]
    # segments: start at a track start or at a daughter, walk single children
    k = cfg.persistence_frames
    for v in range(n):
        if not nodes[v]:
            continue
        is_daughter = parent[v] >= 0 and len(children[parent[v]]) == 2
        if parent[v] >= 0 and not is_daughter:
            continue
        length, w = 1, v
        while len(children[w]) == 1:
            w = tgt[children[w][0]]
            length += 1
        if children[w] or end_free[w] or length > k:
            continue
        if is_daughter:
            cost += cfg.short_daughter_cost
        elif not appear_free[v]:
            cost += cfg.short_track_cost
    return cost


def brute_force_minimum(cfg: ILPConfig, graph: TrackGraph):
    """Minimum over all forests (isolated nodes chosen optimally, they are independent)."""
    p = LinkingProblem.from_graph(graph)
    best, costs = np.inf, []
    for bits in itertools.product([False, True], repeat=p.num_edges):
        edges = np.asarray(bits, bool)
        touched = np.zeros(p.num_nodes, bool)
        touched[p.src[edges]] = True
        touched[p.tgt[edges]] = True
        base = brute_force_cost(cfg, p, touched, edges)
        if base is None:
            continue
        total = base
        for v in np.flatnonzero(~touched):
            alone = np.zeros(p.num_nodes, bool)
            alone[v] = True
            single = brute_force_cost(cfg, p, alone, np.zeros(p.num_edges, bool))
            total += min(0.0, single)
        costs.append((edges, touched, base))
        best = min(best, total)
    return best, costs


WEIGHTS = [
    dict(division_separation_weight=-0.4, division_angle_weight=2.0, short_track_cost=1.5,
         short_daughter_cost=2.0, division_offset_weight=0.3, division_ratio_weight=1.0),
    dict(division_separation_weight=-0.8, split_cost=1.0, short_daughter_cost=0.7,
         short_track_cost=0.4, persistence_frames=1),
    dict(division_separation_weight=-0.5, division_ratio_weight=-1.0, short_track_cost=3.0,
         short_daughter_cost=1.0, persistence_frames=3, node_score_weight=-1.0),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weights", range(len(WEIGHTS)))
def test_ilp_optimum_equals_brute_force(seed, weights):
    cfg = ILPConfig(
        node_offset=-3.0, edge_weight=0.3, appear_cost=1.0, disappear_cost=1.0,
        division_max_cos=1.0, division_max_children=4, **WEIGHTS[weights],
    )
    graph = tiny_graph(seed)
    best, _ = brute_force_minimum(cfg, graph)
    result = ILPLinker(cfg).link(graph)
    assert result.status.value == "optimal"
    assert result.objective == pytest.approx(best, abs=1e-4)


def test_objective_of_matches_every_forest():
    cfg = ILPConfig(
        node_offset=-2.0, edge_weight=0.2, appear_cost=1.0, disappear_cost=0.5,
        division_max_cos=1.0, division_max_children=4, **WEIGHTS[0],
    )
    graph = tiny_graph(3)
    linker = ILPLinker(cfg)
    _, forests = brute_force_minimum(cfg, graph)
    assert len(forests) > 100
    for edges, nodes, cost in forests[::7]:
        assert linker.objective_of(graph, edges, nodes) == pytest.approx(cost, abs=1e-4)


def test_pair_gating_forbids_divisions_brute_force_agrees():
    # max_cos = -0.2 forbids daughters that move in similar directions
    cfg = ILPConfig(
        node_offset=-3.0, edge_weight=0.1, appear_cost=3.0, disappear_cost=1.0,
        division_separation_weight=-0.2, division_max_cos=-0.2, division_max_children=2,
    )
    graph = tiny_graph(4, sizes=(2, 3, 2))
    best, _ = brute_force_minimum(cfg, graph)
    result = ILPLinker(cfg).link(graph)
    assert result.objective == pytest.approx(best, abs=1e-4)
    # every division in the result is along an allowed pair
    p = LinkingProblem.from_graph(graph)
    allowed = candidate_pairs(p, p.edge_feature("pred_distance"), max_children=2, max_cos=-0.2)
    assert brute_force_cost(cfg, p, *_selection(graph, result.graph)) is not None
    assert allowed.size < 3 * 3  # the gate removed some pairs


def _selection(graph: TrackGraph, forest: TrackGraph):
    ids = {int(i): r for r, i in enumerate(graph.ids)}
    nodes = np.zeros(graph.num_nodes, bool)
    nodes[[ids[int(i)] for i in forest.ids]] = True
    s, t = graph.edge_index()
    key = {(int(graph.ids[a]), int(graph.ids[b])): e for e, (a, b) in enumerate(zip(s, t))}
    fs, ft = forest.edge_index()
    edges = np.zeros(graph.num_edges, bool)
    for a, b in zip(fs, ft):
        edges[key[(int(forest.ids[a]), int(forest.ids[b]))]] = True
    return nodes, edges


def test_negative_persistence_cost_is_refused():
    with pytest.raises(ValueError):
        ILPConfig(short_track_cost=-1.0)


def test_division_terms_change_the_answer():
    # a mother with one near child and one far child on the opposite side: without the
    # pair reward the far child starts its own track; with it, the division is taken
    nodes = {"id": [0, 1, 2], "t": [0, 1, 1], "z": [0.0, 0, 0], "y": [0.0, 0, 0],
             "x": [0.0, 1.0, -9.0]}
    d = np.asarray([1.0, 9.0])
    edges = {"source": [0, 0], "target": [1, 2], "pred_distance": d, "distance": d}
    g = TrackGraph(nodes, edges)
    base = dict(node_offset=-3.0, edge_weight=0.5, appear_cost=1.0, disappear_cost=0.0,
                free_first_frame=False)
    plain = ILPLinker(ILPConfig(**base)).link(g)
    aware = ILPLinker(ILPConfig(**base, division_separation_weight=-0.5)).link(g)
    assert plain.graph.num_edges == 1
    assert aware.graph.num_edges == 2


def test_pinned_forest_costs_its_brute_force_cost():
    # the auxiliary variables (pairs, short-track indicators) must take their defined
    # values at the optimum when the forest is fixed: pin it and solve
    cfg = ILPConfig(
        node_offset=-2.0, edge_weight=0.2, appear_cost=1.0, disappear_cost=0.5,
        division_max_cos=1.0, division_max_children=4, persistence_frames=3, **{
            k: v for k, v in WEIGHTS[0].items()
        },
    )
    graph = tiny_graph(5, sizes=(2, 2, 2, 1, 1))
    p = LinkingProblem.from_graph(graph)
    _, forests = brute_force_minimum(cfg, graph)
    short = [f for f in forests if _has_short_segment(p, *f[:2])]
    assert len(short) > 15
    for edges, nodes, cost in short[:: max(1, len(short) // 15)]:
        pinned = TrackGraph(
            {**graph.nodes, "pin": nodes.astype(np.int8)},
            {**graph.edges, "pin": edges.astype(np.int8)},
        )
        result = ILPLinker(cfg).link(pinned)
        assert result.objective == pytest.approx(cost, abs=1e-4)


def _has_short_segment(p: LinkingProblem, edges, nodes) -> bool:
    """Some non-free track or daughter of two or three nodes ends inside the movie."""
    children = np.bincount(p.src[edges], minlength=p.num_nodes)
    has_parent = np.zeros(p.num_nodes, bool)
    has_parent[p.tgt[edges]] = True
    inner = (p.t > p.t.min()) & (p.t < p.t.max())
    return bool(np.any(nodes & inner & (children == 0) & has_parent))


#: costs under which far daughters cannot pay for their division (pairs get dropped)
PRESOLVE_WEIGHTS = [
    dict(division_separation_weight=-0.1, division_angle_weight=1.0, short_track_cost=0.5,
         short_daughter_cost=0.5, split_cost=-0.5),
    dict(division_ratio_weight=1.5, short_track_cost=1.0, persistence_frames=2,
         split_cost=-1.5),
    dict(division_separation_weight=-0.3, short_daughter_cost=1.0, split_cost=-2.0),
]


def presolve_config(weights: int, max_children: int) -> ILPConfig:
    """Costs of the presolve brute-force tests: ``PRESOLVE_WEIGHTS[weights]``, pairs among
    each mother's ``max_children`` cheapest children."""
    return ILPConfig(
        node_offset=-5.0, edge_weight=0.8, appear_cost=1.5, disappear_cost=1.0,
        division_max_cos=1.0, division_max_children=max_children, **PRESOLVE_WEIGHTS[weights],
    )


@pytest.mark.parametrize("seed", [6, 7, 8])
@pytest.mark.parametrize("weights", range(len(PRESOLVE_WEIGHTS)))
def test_dominated_pairs_keep_the_brute_force_optimum(seed, weights):
    cfg = presolve_config(weights, max_children=4)
    graph = tiny_graph(seed)
    best, _ = brute_force_minimum(cfg, graph)
    result = ILPLinker(cfg).link(graph)
    assert result.stats["presolve_dropped_pairs"] > 0
    assert result.status.value == "optimal"
    assert result.objective == pytest.approx(best, abs=1e-4)
    off = ILPLinker(cfg.model_copy(update={"presolve_edges": False})).link(graph)
    assert "presolve_dropped_pairs" not in off.stats
    assert off.objective == pytest.approx(best, abs=1e-4)


def test_dominated_pairs_respects_the_short_track_slack():
    # with a large short-track cost, dropping a daughter edge may create two short
    # tracks; the rule must then keep the pairs that pay for it
    from celltrack.solve.ilp.linker import build_model
    from celltrack.solve.ilp.presolve import dominated_pairs

    graph = tiny_graph(6)
    p = LinkingProblem.from_graph(graph)
    base = dict(node_offset=-4.0, edge_weight=0.5, appear_cost=1.5, disappear_cost=1.0,
                division_max_cos=1.0, division_max_children=4, split_cost=-0.5,
                division_angle_weight=1.0)
    cheap = dominated_pairs(build_model(p, ILPConfig(**base, short_track_cost=0.1)), p)
    dear = dominated_pairs(build_model(p, ILPConfig(**base, short_track_cost=50.0)), p)
    assert cheap.sum() > 0
    assert dear.sum() == 0
    # a pinned daughter edge is never dropped
    pinned = TrackGraph(graph.nodes, {**graph.edges, "pin": np.ones(graph.num_edges, np.int8)})
    model = build_model(LinkingProblem.from_graph(pinned), ILPConfig(**base, short_track_cost=0.1))
    assert dominated_pairs(model, p).sum() == 0


def test_refine_factor_is_a_bounded_power_of_two():
    from celltrack.solve.ilp.local import refine_factor

    for costs in (np.zeros(3), np.full(10, 1e3), np.full(1000, 1e9), np.full(10, 1e15)):
        f = refine_factor(costs)
        assert f & (f - 1) == 0
        assert 2**10 <= f <= 2**20
        if f > 2**10:
            assert f * (np.abs(costs).sum() + 1) <= 2.0**52
    assert refine_factor(np.full(10, 1e3)) == 2**20
    assert refine_factor(np.full(10, 1e15)) == 2**10


@pytest.mark.parametrize("seed", [6, 7, 8])
@pytest.mark.parametrize("weights", range(len(PRESOLVE_WEIGHTS)))
def test_dominated_lone_edges_keep_the_brute_force_optimum(seed, weights):
    # pairs only among each mother's two cheapest children: the other edges can only be
    # a lone child, and the long ones never pay for it
    cfg = presolve_config(weights, max_children=2)
    graph = tiny_graph(seed, sizes=(1, 3, 3, 1))
    best, _ = brute_force_minimum(cfg, graph)
    result = ILPLinker(cfg).link(graph)
    assert result.stats["presolve_dropped_edges"] > 0
    assert result.status.value == "optimal"
    assert result.objective == pytest.approx(best, abs=1e-4)


def test_dominated_lone_edges_respect_the_persistence_slack_and_pins():
    from celltrack.solve.ilp.linker import build_model
    from celltrack.solve.ilp.presolve import dominated_lone_edges

    graph = tiny_graph(6, sizes=(1, 3, 3, 1))
    p = LinkingProblem.from_graph(graph)
    base = dict(node_offset=-4.0, edge_weight=0.8, appear_cost=1.5, disappear_cost=1.0,
                division_max_cos=1.0, division_max_children=2)

    def lone(**costs):
        model = build_model(p, ILPConfig(**base, **costs))
        return dominated_lone_edges(model, p, model.ub.copy()), model.aux["pair"]

    (cheap, pairs), (dear, _) = lone(short_daughter_cost=0.1), lone(short_daughter_cost=50.0)
    assert cheap.sum() > 0 and dear.sum() == 0
    assert lone(short_daughter_cost=0.1, short_track_cost=50.0)[0].sum() == 0
    assert not cheap[pairs.edge1].any() and not cheap[pairs.edge2].any()  # pair edges stay
    pinned = TrackGraph(graph.nodes, {**graph.edges, "pin": np.ones(graph.num_edges, np.int8)})
    pp = LinkingProblem.from_graph(pinned)
    model = build_model(pp, ILPConfig(**base, short_daughter_cost=0.1))
    assert dominated_lone_edges(model, pp, model.ub.copy()).sum() == 0
