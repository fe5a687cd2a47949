"""Tests of the greedy linker."""

from __future__ import annotations

import numpy as np
import pytest

from celltrack.errors import ConfigError, InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.graph.candidates import CandidateConfig, build_candidates
from celltrack.solve.base import SolveStatus, make_linker
from celltrack.solve.greedy import GreedyConfig, GreedyLinker


def _edge_set(graph: TrackGraph) -> set[tuple[int, int]]:
    return set(zip(graph.edges["source"].tolist(), graph.edges["target"].tolist()))


def _reference(cand: TrackGraph, cfg: GreedyConfig) -> set[tuple[int, int]]:
    """Plain sequential greedy loop (the definition the vectorised version must match)."""
    cost = np.asarray(cand.edges[cfg.cost_feature], float)
    cost = cost + cfg.frame_gap_cost * (cand.edges["frame_gap"] - 1)
    src, tgt = cand.edge_index()
    pos = cand.positions
    dist = np.linalg.norm(pos[src] - pos[tgt], axis=1)
    pin = cand.edges["pin"] if "pin" in cand.edges else np.full(cand.num_edges, -1)
    node_pin = cand.nodes["pin"] if "pin" in cand.nodes else np.full(cand.num_nodes, -1)
    has_parent = np.zeros(cand.num_nodes, bool)
    kids: dict[int, list[int]] = {}
    chosen = []
    forced = [e for e in range(cand.num_edges) if pin[e] == 1]
    for e in sorted(forced, key=lambda e: (cost[e], e)):
        chosen.append(e)
        has_parent[tgt[e]] = True
        kids.setdefault(src[e], []).append(e)
    for e in np.argsort(cost, kind="stable").tolist():
        if pin[e] != -1 or node_pin[src[e]] == 0 or node_pin[tgt[e]] == 0:
            continue
        if cfg.max_cost is not None and cost[e] > cfg.max_cost:
            continue
        p, c = src[e], tgt[e]
        if has_parent[c]:
            continue
        have = kids.get(p, [])
        if len(have) >= cfg.max_children:
            continue
        if len(have) == 1:
            f = have[0]
            if cfg.second_child == "never":
                continue
            if cfg.second_child == "cost_threshold" and not (
                cost[f] <= cfg.division_max_cost and cost[e] <= cfg.division_max_cost
            ):
                continue
            if cfg.second_child == "displacement":
                th = cfg.min_division_displacement_um
                if not (dist[f] > th or dist[e] > th or (dist[f] < th and dist[e] < th)):
                    continue
        chosen.append(e)
        has_parent[c] = True
        kids.setdefault(p, []).append(e)
    ids = cand.ids
    return {(int(ids[src[e]]), int(ids[tgt[e]])) for e in chosen}


def _random_candidates(seed: int, n_per_frame: int = 40, frames: int = 6) -> TrackGraph:
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(frames), n_per_frame)
    pos = rng.uniform(0, 30, (t.size, 3))
    g = TrackGraph.from_positions(t, pos)
    return build_candidates(g, CandidateConfig(max_distance_um=9.0, max_gap_frames=2))


@pytest.mark.parametrize(
    "cfg",
    [
        GreedyConfig(),
        GreedyConfig(max_children=1),
        GreedyConfig(second_child="never"),
        GreedyConfig(second_child="cost_threshold", division_max_cost=4.0),
        GreedyConfig(second_child="displacement", min_division_displacement_um=2.5),
        GreedyConfig(max_cost=6.0, cost_feature="distance"),
        GreedyConfig(frame_gap_cost=3.0),
    ],
    ids=["always", "one-child", "never", "threshold", "displacement", "max-cost", "gap-cost"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_rounds_equal_sequential_greedy(cfg, seed):
    cand = _random_candidates(seed)
    res = GreedyLinker(cfg).link(cand)
    assert res.status is SolveStatus.HEURISTIC
    assert _edge_set(res.graph) == _reference(cand, cfg)
    res.graph.validate(forest=True)
    assert res.graph.out_degree().max() <= cfg.max_children
    assert res.graph.num_nodes == cand.num_nodes  # greedy keeps every detection
    gaps = res.graph.edges["frame_gap"] - 1
    expect = float((res.graph.edges[cfg.cost_feature] + cfg.frame_gap_cost * gaps).sum())
    assert res.objective == pytest.approx(expect)
    assert res.stats["rounds"] >= 1
    assert res.parameters["config"]["kind"] == "greedy"


def test_pins_respected_and_match_reference():
    cand = _random_candidates(3)
    rng = np.random.default_rng(3)
    # pin a few non-conflicting edges (distinct children and parents), forbid others
    src, tgt = cand.edge_index()
    order = rng.permutation(cand.num_edges)
    pin = np.full(cand.num_edges, -1, np.int8)
    used_p, used_c = set(), set()
    for e in order[:200].tolist():
        if src[e] not in used_p and tgt[e] not in used_c and len(used_c) < 10:
            pin[e] = 1
            used_p.add(src[e])
            used_c.add(tgt[e])
    pin[order[200:300]] = np.where(pin[order[200:300]] == 1, 1, 0)
    cand.set_edge_column("pin", pin)
    node_pin = np.full(cand.num_nodes, -1, np.int8)
    free_nodes = np.setdiff1d(np.arange(cand.num_nodes), np.r_[list(used_p), list(used_c)])
    node_pin[free_nodes[:5]] = 0
    cand.set_node_column("pin", node_pin)
    res = GreedyLinker().link(cand)
    got = _edge_set(res.graph)
    assert got == _reference(cand, GreedyConfig())
    ids = cand.ids
    for e in np.flatnonzero(pin == 1):
        assert (ids[src[e]], ids[tgt[e]]) in got
    for e in np.flatnonzero(pin == 0):
        assert (ids[src[e]], ids[tgt[e]]) not in got
    assert not np.any(np.isin(ids[free_nodes[:5]], res.graph.ids))  # pinned-out nodes gone


def test_conflicting_pins_are_infeasible():
    g = TrackGraph.from_positions([0, 0, 1], [[0, 0, 0], [0, 0, 2], [0, 0, 1]])
    cand = build_candidates(g, CandidateConfig(max_distance_um=5))
    cand.set_edge_column("pin", np.ones(cand.num_edges, np.int8))  # two parents for node 2
    res = GreedyLinker().link(cand)
    assert res.status is SolveStatus.INFEASIBLE and not res.ok
    assert "pinned" in res.stats["infeasible_reason"]


def test_division_rules_on_a_tiny_case():
    # parent at x=0; children at x=1 and x=3 (cost = distance)
    g = TrackGraph.from_positions([0, 1, 1], [[0, 0, 0], [0, 0, 1], [0, 0, 3]])
    cand = build_candidates(g, CandidateConfig(max_distance_um=5))
    assert GreedyLinker().link(cand).graph.num_edges == 2
    assert GreedyLinker(GreedyConfig(second_child="never")).link(cand).graph.num_edges == 1
    thr = GreedyConfig(second_child="cost_threshold", division_max_cost=2.0)
    assert _edge_set(GreedyLinker(thr).link(cand).graph) == {(0, 1)}
    disp = GreedyConfig(second_child="displacement", min_division_displacement_um=2.0)
    assert GreedyLinker(disp).link(cand).graph.num_edges == 2  # x=3 child moved > 2
    # flow says neither child moved (predicted parent = own position): only one child,
    # unless both sit within the threshold of the parent ("division on the spot")
    still = TrackGraph.from_positions(
        [0, 1, 1],
        [[0, 0, 0], [0, 0, 1], [0, 0, 3]],
        parent_z=[np.nan, 0, 0],
        parent_y=[np.nan, 0, 0],
        parent_x=[np.nan, 1, 3],
    )
    cand2 = build_candidates(still, CandidateConfig(max_distance_um=5))
    assert _edge_set(GreedyLinker(disp).link(cand2).graph) == {(0, 1)}
    spot = GreedyConfig(second_child="displacement", min_division_displacement_um=3.5)
    assert GreedyLinker(spot).link(cand2).graph.num_edges == 2


def test_bad_input_and_honest_statuses():
    with pytest.raises(InvalidInputError, match="no nodes"):
        GreedyLinker().link(TrackGraph.empty())
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        GreedyLinker().link([1, 2])
    nodes_only = TrackGraph.from_positions([0, 1], [[0, 0, 0], [0, 0, 1]])
    with pytest.warns(UserWarning, match="no edges"):
        res = GreedyLinker().link(nodes_only)
    assert res.graph.num_nodes == 2 and res.graph.num_edges == 0 and "warning" in res.stats
    cand = build_candidates(nodes_only)
    neg = cand.copy()
    neg.set_edge_column("pred_distance", -np.ones(cand.num_edges))
    with pytest.raises(InvalidInputError, match=">= 0"):
        GreedyLinker().link(neg)
    with pytest.raises(InvalidInputError, match="available"):
        GreedyLinker(GreedyConfig(cost_feature="learned_cost")).link(cand)
    with pytest.raises(ConfigError, match="max_children"):
        make_linker({"kind": "greedy", "max_children": 3})


def test_registry():
    lk = make_linker("greedy", second_child="never")
    assert isinstance(lk, GreedyLinker) and lk.config.second_child == "never"
    with pytest.raises(ConfigError, match="greedy"):
        make_linker("gredy")


def test_scales_to_many_edges():
    rng = np.random.default_rng(0)
    n = 60_000
    t = np.repeat(np.arange(30), n // 30)
    g = TrackGraph.from_positions(t, rng.uniform(0, 400, (n, 3)))
    cand = build_candidates(g, CandidateConfig(max_distance_um=25))
    assert cand.num_edges > 100_000
    res = GreedyLinker().link(cand)
    assert res.timings["total"] < 5.0
    res.graph.validate(forest=True)
