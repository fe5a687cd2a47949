"""ILPLinker: each constraint and cost on hand-drawn graphs, pins, bad input, objective_of."""

from __future__ import annotations

import numpy as np
import pytest

from celltrack.config import config_from_dict
from celltrack.errors import GraphError, InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.solve.base import SolveStatus, make_linker
from celltrack.solve.ilp import ILPConfig, ILPLinker
from celltrack.solve.ilp.scaling import MAX_TOTAL

# costs with round numbers: a node is worth 1, an edge costs 0.1 per µm, a start 2
BASE = dict(
    node_offset=-1.0,
    node_score_weight=0.0,
    edge_weight=0.1,
    appear_cost=2.0,
    split_cost=0.5,
    disappear_cost=0.0,
    border_distance_um=0.0,
)


def graph(nodes, edges, **node_cols):
    """nodes: list of (id, t, x); edges: list of (source, target, pred_distance µm)."""
    ids, t, x = (np.array(c) for c in zip(*nodes))
    ncols = {"id": ids, "t": t, "z": np.zeros(len(ids)), "y": np.zeros(len(ids)), "x": x * 1.0}
    ncols.update({k: np.asarray(v) for k, v in node_cols.items()})
    ecols = None
    if edges:
        s, g, d = (np.array(c) for c in zip(*edges))
        ecols = {"source": s, "target": g, "pred_distance": d * 1.0, "frame_gap": np.ones(len(s))}
    return TrackGraph(ncols, ecols)


def link(g, **kw):
    return ILPLinker(ILPConfig(**{**BASE, **kw})).link(g)


def edge_set(result):
    e = result.graph.edges
    return set(zip(e["source"].tolist(), e["target"].tolist()))


@pytest.mark.parametrize("use_lp", [True, False])
def test_one_parent_per_node(use_lp):
    # child 2 at t=1 has two candidate parents; only the closer one is kept
    g = graph([(0, 0, 0), (1, 0, 5), (2, 1, 1)], [(0, 2, 1.0), (1, 2, 2.0)])
    r = link(g, use_lp=use_lp)
    assert r.status == SolveStatus.OPTIMAL
    assert edge_set(r) == {(0, 2)}
    # parents 0, 1 free (first frame) → −1 each; child −1 + edge 0.1
    assert r.objective == pytest.approx(-3.0 + 0.1)
    assert r.bound == pytest.approx(r.objective)


@pytest.mark.parametrize("use_lp", [True, False])
def test_at_most_two_children(use_lp):
    g = graph(
        [(0, 0, 0), (1, 1, 0), (2, 1, 1), (3, 1, 2)],
        [(0, 1, 1.0), (0, 2, 2.0), (0, 3, 3.0)],
    )
    r = link(g, split_cost=0.0, use_lp=use_lp)
    assert edge_set(r) == {(0, 1), (0, 2)}
    # node 3 alone would cost −1 + 2 (start) > 0: left out
    assert set(r.graph.ids.tolist()) == {0, 1, 2}
    assert r.objective == pytest.approx(-3.0 + 0.3)


def test_split_only_with_exactly_two_children_and_its_cost():
    g = graph([(0, 0, 0), (1, 1, 0), (2, 1, 1)], [(0, 1, 1.0), (0, 2, 1.0)])
    cheap = link(g, split_cost=0.5)
    assert edge_set(cheap) == {(0, 1), (0, 2)}
    assert cheap.objective == pytest.approx(-3.0 + 0.2 + 0.5)
    # a division dearer than a track start (2) + ... : second child starts a track instead
    dear = link(g, split_cost=5.0, appear_cost=0.5)
    assert len(edge_set(dear)) == 1 and dear.graph.num_nodes == 3
    assert dear.objective == pytest.approx(-3.0 + 0.1 + 0.5)


def test_edge_needs_both_ends_and_negative_edge_cost_cannot_select_alone():
    # a rewarding edge (negative weight) must still bring its nodes; node 1 is excluded
    g = graph([(0, 0, 0), (1, 1, 0)], [(0, 1, 1.0)], pin=np.array([-1, 0], np.int8))
    r = link(g, edge_weight=-10.0)
    assert r.status == SolveStatus.OPTIMAL
    assert edge_set(r) == set() and r.graph.ids.tolist() == [0]


def test_appear_free_first_frame_border_and_column():
    nodes = [(0, 0, 50), (1, 1, 50), (2, 1, 1), (3, 1, 50.5)]
    roi = {"roi_um": [[0, 1], [0, 0], [0, 0], [0, 100]]}
    g = graph(nodes, [])
    g.attrs.update(roi)
    # starts cost 2, a node is worth 1: only the first-frame node is selected
    r = link(g)
    assert r.graph.ids.tolist() == [0]
    assert r.stats["warning"] == "no candidate edges"
    # node 2 lies 1 µm from the x border
    r = link(g, border_distance_um=5.0)
    assert sorted(r.graph.ids.tolist()) == [0, 2]
    g.set_node_column("appear_free", np.array([False, True, False, False]))
    r = link(g, border_distance_um=5.0)
    assert sorted(r.graph.ids.tolist()) == [0, 1, 2]
    r = link(g, free_first_frame=False)
    assert sorted(r.graph.ids.tolist()) == [1]


def test_disappear_cost_and_last_frame_waiver():
    # 0 → 1 → (t=2) 2 ; 3 at t=1 with an optional child 4 at t=2
    g = graph(
        [(0, 0, 0), (1, 1, 0), (2, 2, 0), (3, 0, 9), (4, 1, 9)],
        [(0, 1, 1.0), (1, 2, 1.0), (3, 4, 1.0)],
    )
    g.attrs["roi_um"] = [[0, 3], [0, 0], [0, 0], [-100, 100]]
    base = link(g)
    high = link(g, disappear_cost=0.7)
    # every track end costs 0.7 (last roi frame is 3): two tracks → +1.4
    assert edge_set(high) == edge_set(base)
    assert high.objective == pytest.approx(base.objective + 1.4)
    g.attrs["roi_um"] = [[0, 2], [0, 0], [0, 0], [-100, 100]]
    # now node 2 ends in the last frame for free: only the 3 → 4 track pays
    assert link(g, disappear_cost=0.7).objective == pytest.approx(base.objective + 0.7)
    # and with the node column 'disappear_free' (a block border) node 4's end is free too
    g.set_node_column("disappear_free", np.array([False, False, False, False, True]))
    assert link(g, disappear_cost=0.7).objective == pytest.approx(base.objective)


def test_pins_force_and_forbid():
    g = graph(
        [(0, 0, 0), (1, 1, 0), (2, 1, 3), (3, 2, 0)],
        [(0, 1, 1.0), (0, 2, 30.0), (1, 3, 1.0)],
    )
    free = link(g)
    assert (0, 2) not in edge_set(free)
    g.set_edge_column("pin", np.array([-1, 1, -1], np.int8))
    forced = link(g)
    assert (0, 2) in edge_set(forced)
    assert forced.objective > free.objective
    g.set_edge_column("pin", np.array([-1, -1, -1], np.int8))
    g.set_node_column("pin", np.array([-1, 0, -1, -1], np.int8))
    r = link(g)
    assert 1 not in r.graph.ids.tolist()
    assert r.status == SolveStatus.OPTIMAL


@pytest.mark.parametrize(
    ("node_pin", "edge_pin"),
    [
        ([-1, 0, -1, -1], [1, -1, -1]),  # approved link into a rejected node
        ([-1, -1, -1, -1], [1, -1, -1]),  # fine (control)
        ([-1, -1, -1, 1], [-1, -1, -1]),  # fine (control)
    ],
)
def test_infeasible_pins_give_status_not_empty_solution(node_pin, edge_pin):
    g = graph(
        [(0, 0, 0), (1, 1, 0), (2, 1, 3), (3, 2, 0)],
        [(0, 1, 1.0), (0, 2, 30.0), (1, 3, 1.0)],
        pin=np.array(node_pin, np.int8),
    )
    g.set_edge_column("pin", np.array(edge_pin, np.int8))
    r = link(g)
    if node_pin[1] == 0:
        assert r.status == SolveStatus.INFEASIBLE
        assert "pins contradict" in r.stats["infeasible_reason"]
        assert r.objective is None and not r.ok
    else:
        assert r.status == SolveStatus.OPTIMAL and r.graph.num_nodes > 0


@pytest.mark.parametrize("use_lp", [True, False])
def test_two_approved_parents_is_infeasible(use_lp):
    g = graph([(0, 0, 0), (1, 0, 5), (2, 1, 1), (3, 2, 1)], [(0, 2, 1.0), (1, 2, 2.0), (2, 3, 1.0)])
    g.set_edge_column("pin", np.array([1, 1, -1], np.int8))
    r = link(g, use_lp=use_lp)
    assert r.status == SolveStatus.INFEASIBLE
    assert "one_parent_or_appear" in r.stats["infeasible_reason"]


def test_three_approved_children_is_infeasible_in_solver():
    g = graph(
        [(0, 0, 0), (1, 1, 0), (2, 1, 1), (3, 1, 2)],
        [(0, 1, 1.0), (0, 2, 2.0), (0, 3, 3.0)],
    )
    g.set_edge_column("pin", np.array([1, 1, 1], np.int8))
    r = link(g)
    assert r.status == SolveStatus.INFEASIBLE
    assert r.graph.num_nodes == 0


def test_bad_input_errors():
    with pytest.raises(GraphError, match="no nodes"):
        ILPLinker().link(TrackGraph.empty())
    g = graph([(0, 0, 0), (1, 1, 0)], [(0, 1, 1.0)])
    with pytest.raises(InvalidInputError, match="edge feature 'distance'"):
        ILPLinker(ILPConfig(edge_feature="distance")).link(g)
    with pytest.raises(InvalidInputError, match="cost term 'edge' overflows"):
        ILPLinker(ILPConfig(edge_weight=float(MAX_TOTAL))).link(g)
    g.set_edge_column("pred_distance", np.array([np.nan]))
    with pytest.raises(InvalidInputError, match="NaN"):
        ILPLinker().link(g)
    g.set_edge_column("pred_distance", np.array([1.0]))
    g.set_node_column("pin", np.array([2, 0]))
    with pytest.raises(InvalidInputError, match="pin"):
        ILPLinker().link(g)
    with pytest.raises(InvalidInputError, match="ILPConfig"):
        ILPLinker(object())


def test_objective_of_matches_result_and_checks_forest():
    g = graph(
        [(0, 0, 0), (1, 1, 0), (2, 1, 1), (3, 2, 0), (4, 2, 2)],
        [(0, 1, 1.0), (0, 2, 2.0), (1, 3, 1.0), (2, 4, 1.5), (1, 4, 2.5)],
    )
    linker = ILPLinker(ILPConfig(**BASE))
    r = linker.link(g)
    sel = np.array([(s, t) in edge_set(r) for s, t in zip(g.edges["source"], g.edges["target"])])
    nodes = np.isin(g.ids, r.graph.ids)
    assert linker.objective_of(g, sel, nodes) == pytest.approx(r.objective)
    assert linker.objective_of(g, sel) == pytest.approx(r.objective)
    bad = np.array([False, False, False, True, True])  # node 4 gets two parents
    with pytest.raises(InvalidInputError, match="one_parent_or_appear"):
        linker.objective_of(g, bad)
    with pytest.raises(InvalidInputError, match="shape"):
        linker.objective_of(g, sel[:2])


def test_registered_and_config_round_trip():
    cfg = config_from_dict({"kind": "ilp", "split_cost": 0.3}, ILPConfig)
    linker = make_linker(cfg)
    assert isinstance(linker, ILPLinker) and linker.config.split_cost == 0.3
    assert isinstance(make_linker("ilp"), ILPLinker)
    r = linker.link(graph([(0, 0, 0), (1, 1, 0)], [(0, 1, 1.0)]))
    assert r.parameters["config"]["kind"] == "ilp"
    assert r.timings["total"] > 0 and r.stats["nodes"] == 2


def test_hint_edges_are_used_and_result_keeps_columns():
    g = graph(
        [(0, 0, 0), (1, 1, 0), (2, 1, 1)],
        [(0, 1, 1.0), (0, 2, 2.0)],
        score=np.array([0.9, 0.8, 0.7]),
    )
    r = ILPLinker(ILPConfig(**BASE, hint=False)).link(g, hint_edges=np.array([True, False]))
    assert r.status == SolveStatus.OPTIMAL
    assert "score" in r.graph.node_columns and "pred_distance" in r.graph.edge_columns
    with pytest.raises(InvalidInputError, match="hint_edges"):
        ILPLinker().link(g, hint_edges=np.array([True]))


class NoDivisions:
    """A user constraint term: ``s_v ≤ 0`` for every node (bounds, no rows)."""

    name = "no_divisions"

    def apply(self, model):
        model.restrict(model.var("split"), 0)


def test_extra_terms_compose():
    g = graph([(0, 0, 0), (1, 1, 0), (2, 1, 1)], [(0, 1, 1.0), (0, 2, 1.0)])
    assert len(edge_set(link(g))) == 2
    linker = ILPLinker(ILPConfig(**BASE), terms=[NoDivisions()])
    r = linker.link(g)
    assert r.status == SolveStatus.OPTIMAL and len(edge_set(r)) == 1
    assert r.graph.divisions().size == 0
    with pytest.raises(InvalidInputError, match="split"):
        linker.objective_of(g, np.array([True, True]))


def test_links_build_candidates_output_with_tag_pins():
    from celltrack.graph.candidates import CandidateConfig, build_candidates, pins_from_tags

    # one cell dividing at t=1 → 2, plus a false detection (tag fp) near a daughter
    t = np.array([0, 1, 2, 2, 2])
    pos = np.array([[0, 50, 50], [0, 50, 51], [0, 50, 46], [0, 50, 56.5], [0, 50, 55]], float)
    spots = TrackGraph.from_positions(
        t, pos, score=np.array([0.9, 0.9, 0.8, 0.8, 0.95]),
        tag=np.array(["unlabeled", "unlabeled", "unlabeled", "unlabeled", "fp"]),
    )
    fov = ((0.0, 0.0), (0.0, 100.0), (0.0, 100.0))
    cand = build_candidates(spots, CandidateConfig(max_distance_um=8.0, field_of_view_um=fov))
    r = ILPLinker(ILPConfig()).link(pins_from_tags(cand))
    assert r.status == SolveStatus.OPTIMAL
    assert edge_set(r) == {(0, 1), (1, 2), (1, 3)}  # the division; the fp node is excluded
    assert r.graph.divisions().tolist() == [1]
    # without the pin, the closer false detection takes the second daughter slot
    free = ILPLinker(ILPConfig()).link(cand)
    assert edge_set(free) == {(0, 1), (1, 2), (1, 4)}


@pytest.mark.parametrize("suffix", [".yaml", ".toml", ".json"])
def test_config_file_round_trip(tmp_path, suffix):
    from celltrack.config import load_config, save_config

    cfg = ILPConfig(split_cost=0.3, cpsat_parameters={"symmetry_level": 0}, hint=False)
    path = save_config(cfg, tmp_path / f"ilp{suffix}")
    assert load_config(path, ILPConfig) == cfg
