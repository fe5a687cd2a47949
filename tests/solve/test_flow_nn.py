"""Tests of the ELEPHANT-style flow-corrected nearest-neighbour linker."""

from __future__ import annotations

import numpy as np
import pytest

from celltrack.errors import ConfigError, InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.graph.candidates import CandidateConfig, build_candidates
from celltrack.solve.base import SolveStatus, make_linker
from celltrack.solve.flow_nn import FlowNNConfig, FlowNNLinker


def _edge_set(graph: TrackGraph) -> set[tuple[int, int]]:
    return set(zip(graph.edges["source"].tolist(), graph.edges["target"].tolist()))


def _xs(t, xs, **cols):
    """Nodes on the x axis (µm)."""
    pos = np.zeros((len(xs), 3))
    pos[:, 2] = xs
    return TrackGraph.from_positions(t, pos, **cols)


def test_flow_corrects_a_swap():
    # two cells move 6 µm in opposite directions; plain NN swaps them, flow does not
    g = _xs([0, 0, 1, 1], [0.0, 10.0, 6.0, 4.0])
    plain = FlowNNLinker(FlowNNConfig(search_distance_um=8, max_children=1)).link(g)
    assert _edge_set(plain.graph) == {(1, 2), (0, 3)}
    flow = _xs(
        [0, 0, 1, 1],
        [0.0, 10.0, 6.0, 4.0],
        parent_z=[np.nan, np.nan, 0, 0],
        parent_y=[np.nan, np.nan, 0, 0],
        parent_x=[np.nan, np.nan, 0.5, 9.5],
    )
    res = FlowNNLinker(FlowNNConfig(search_distance_um=8)).link(flow)
    assert _edge_set(res.graph) == {(0, 2), (1, 3)}
    assert res.status is SolveStatus.HEURISTIC and res.objective is None
    np.testing.assert_allclose(np.sort(res.graph.edges["pred_distance"]), [0.5, 0.5])
    np.testing.assert_allclose(res.graph.edges["distance"], [6.0, 6.0])
    # switching flow off gives the plain result again
    off = FlowNNLinker(FlowNNConfig(search_distance_um=8, max_children=1, use_flow=False))
    assert _edge_set(off.link(flow).graph) == {(1, 2), (0, 3)}


def test_displacement_rule_for_second_child():
    # parent at 0; children at 0.5 and 3 (no flow: displacement = distance) -> division
    g = _xs([0, 1, 1], [0.0, 0.5, 3.0])
    assert _edge_set(FlowNNLinker().link(g).graph) == {(0, 1), (0, 2)}
    # both children on the spot (< 1 µm) -> division too
    g = _xs([0, 1, 1], [0.0, 0.5, -0.5])
    assert FlowNNLinker().link(g).graph.num_edges == 2
    # flow says the far child did not move: no second child, the closer link is kept
    g = _xs(
        [0, 1, 1],
        [0.0, 0.5, 2.0],
        parent_z=[np.nan, 0, 0],
        parent_y=[np.nan, 0, 0],
        parent_x=[np.nan, 0.5, 2.0],
    )
    assert _edge_set(FlowNNLinker().link(g).graph) == {(0, 1)}
    # max_children=1 never divides
    g = _xs([0, 1, 1], [0.0, 0.5, 3.0])
    assert FlowNNLinker(FlowNNConfig(max_children=1)).link(g).graph.num_edges == 1


def test_competing_links_are_replaced_and_relinked():
    # P1 at 0, P2 at 4; C1 (id 2, at 1.8) is processed first and takes P1; C2 (id 3, at
    # 0.2) is closer to P1 and replaces it; C1 goes to P2 in the second pass
    g = _xs([0, 0, 1, 1], [0.0, 4.0, 1.8, 0.2])
    res = FlowNNLinker(FlowNNConfig(max_children=1)).link(g)
    assert _edge_set(res.graph) == {(0, 3), (1, 2)}
    assert res.stats["replaced_links"] == 1 and res.stats["passes"] == 2
    # with one pass only, the displaced child stays unlinked
    res1 = FlowNNLinker(FlowNNConfig(max_children=1, max_passes=1)).link(g)
    assert _edge_set(res1.graph) == {(0, 3)}


def test_search_radius_and_neighbours():
    g = _xs([0, 1], [0.0, 5.5])
    assert FlowNNLinker().link(g).graph.num_edges == 0  # d_search 5 µm
    assert FlowNNLinker(FlowNNConfig(search_distance_um=6)).link(g).graph.num_edges == 1
    # the only free parent is the 3rd nearest: found with N=3, not with N=2
    g = _xs([0, 0, 0, 1, 1, 1], [0.0, 1.0, 2.0, 0.1, 0.2, -0.3])
    cfg = FlowNNConfig(max_children=1, n_neighbors=2, max_passes=1)
    assert FlowNNLinker(cfg).link(g).graph.num_edges == 2
    cfg3 = FlowNNConfig(max_children=1, n_neighbors=3, max_passes=1)
    assert FlowNNLinker(cfg3).link(g).graph.num_edges == 3


def test_tags_pins_and_approved_edges():
    g = TrackGraph(
        {
            "id": [1, 2, 3, 4, 5],
            "t": [0, 0, 1, 1, 1],
            "z": np.zeros(5),
            "y": np.zeros(5),
            "x": [0.0, 1.0, 0.1, 1.1, 3.0],
            "tag": ["fp", "tp", "unlabeled", "tn", "fn"],
        },
        {"source": [2, 2], "target": [5, 3], "approved": [True, False]},
    )
    res = FlowNNLinker(FlowNNConfig(max_children=1)).link(g)
    # fp node 1 is never a parent and tn node 4 is not a cell: both are left out;
    # the approved link 2 -> 5 fills node 2's only slot, so node 3 stays unlinked
    assert set(res.graph.ids.tolist()) == {2, 3, 5}
    assert _edge_set(res.graph) == {(2, 5)}
    assert res.graph.edges["approved"].tolist() == [True]
    # pins: node 1 pinned in is a parent again only if its tag allows -> fp stays out;
    # an edge pinned to 0 forbids that pair
    g2 = _xs([0, 0, 1], [0.0, 2.0, 0.5])
    g2 = TrackGraph(dict(g2.nodes), {"source": [0], "target": [2], "pin": np.int8([0])})
    assert _edge_set(FlowNNLinker().link(g2).graph) == {(1, 2)}
    # approved edges that break the forest -> INFEASIBLE, not an exception
    g3 = _xs([0, 0, 1], [0.0, 2.0, 0.5])
    g3 = TrackGraph(dict(g3.nodes), {"source": [0, 1], "target": [2, 2], "approved": [True, True]})
    assert FlowNNLinker().link(g3).status is SolveStatus.INFEASIBLE


def test_gap_linking_and_interpolation():
    cov = np.repeat(np.eye(3)[None] * 9.0, 3, axis=0)
    g = _xs([0, 3, 3], [0.0, 3.0, 40.0], covariance=cov, score=[0.9, 0.8, 0.7])
    assert FlowNNLinker().link(g).graph.num_edges == 0  # depth 1 cannot bridge the gap
    res = FlowNNLinker(FlowNNConfig(search_depth_frames=3)).link(g)
    assert _edge_set(res.graph) == {(0, 1)}
    assert res.graph.edges["frame_gap"].tolist() == [3]
    assert not res.graph.nodes["interpolated"].any()
    res = FlowNNLinker(FlowNNConfig(search_depth_frames=3, interpolate=True)).link(g)
    out = res.graph
    out.validate(forest=True)
    new = out.nodes["interpolated"]
    assert new.sum() == 2 and res.stats["interpolated_nodes"] == 2
    assert sorted(out.t[new].tolist()) == [1, 2]
    np.testing.assert_allclose(np.sort(out.nodes["x"][new]), [1.0, 2.0])
    assert set(out.ids[new].tolist()).isdisjoint({0, 1, 2})
    np.testing.assert_allclose(out.nodes["covariance"][new], cov[:2])
    assert np.all(out.edges["frame_gap"] == 1) and out.num_edges == 3
    # the chain 0 -> n1 -> n2 -> 1 forms one tracklet
    lab = out.tracklets()
    chain = np.isin(out.ids, [0, 1]) | new
    assert np.unique(lab[chain]).size == 1


def test_works_on_candidate_graphs_and_registry():
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 100, (10, 3))
    t = np.repeat(np.arange(4), 10)
    pos = np.concatenate([start + 0.5 * k for k in range(4)])
    g = TrackGraph.from_positions(t, pos)
    cand = build_candidates(g, CandidateConfig(max_distance_um=30))
    assert cand.num_edges > 30  # plenty of wrong candidates, all ignored
    res = make_linker("flow_nn", search_distance_um=3).link(cand)
    truth = {(k * 10 + i, (k + 1) * 10 + i) for k in range(3) for i in range(10)}
    assert _edge_set(res.graph) == truth
    assert res.parameters["config"]["kind"] == "flow_nn"


def test_bad_input():
    with pytest.raises(InvalidInputError, match="no nodes"):
        FlowNNLinker().link(TrackGraph.empty())
    bad_pin = _xs([0, 1], [0.0, 1.0], pin=np.int8([3, 1]))
    with pytest.raises(InvalidInputError, match="pin"):
        FlowNNLinker().link(bad_pin)
    with pytest.raises(ConfigError, match="search_distance_um"):
        make_linker({"kind": "flow_nn", "search_distance_um": 0})
    # a single frame: nothing to link, an honest empty edge set with all nodes
    one = FlowNNLinker().link(_xs([2, 2], [0.0, 1.0]))
    assert one.graph.num_nodes == 2 and one.graph.num_edges == 0


def test_weak_flow_cannot_veto_a_division():
    # a weak flow model predicts almost no motion for both daughters, which sit 3 µm on
    # opposite sides of the mother: ELEPHANT's flow rule refuses the second child, the
    # geometry rule (default "either") accepts it
    g = _xs(
        [0, 1, 1],
        [0.0, 3.0, -3.0],
        parent_z=[np.nan, 0, 0],
        parent_y=[np.nan, 0, 0],
        parent_x=[np.nan, 2.9, -2.9],
    )
    assert FlowNNLinker(FlowNNConfig(division_rule="flow")).link(g).graph.num_edges == 1
    assert FlowNNLinker().link(g).graph.num_edges == 2
    assert FlowNNLinker(FlowNNConfig(division_rule="geometry")).link(g).graph.num_edges == 2
    # the same children on one side of the mother are no division for the geometry rule
    g_same = _xs(
        [0, 1, 1],
        [0.0, 3.0, 4.5],
        parent_z=[np.nan, 0, 0],
        parent_y=[np.nan, 0, 0],
        parent_x=[np.nan, 2.9, 4.4],
    )
    cfg = FlowNNConfig(search_distance_um=5.0)
    assert FlowNNLinker(cfg).link(g_same).graph.num_edges == 1
