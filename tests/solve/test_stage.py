"""The link stage: approved links survive every linker, pins, block-wise, user linkers."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pytest
from pydantic import Field

from celltrack.config import Config
from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.graph.candidates import CandidateConfig
from celltrack.solve import BlockwiseConfig, Linker, LinkResult, make_linker, register_linker
from celltrack.solve.stage import (
    approved_pairs,
    field_of_view,
    link_graph,
    link_stage,
    linkable_spots,
    solve_links,
)

CAND = CandidateConfig(max_distance_um=6.0)


def _spots() -> TrackGraph:
    """A (t0, near C), B (t0, 4 µm from C), C (t1), D (t0, far: 30 µm), E (t0, rejected)."""
    pos = [[0, 0, 0], [0, 0, 4.5], [0, 0, 0.5], [0, 0, 30.5], [0, 0, 0.6]]
    g = TrackGraph.from_positions([0, 0, 1, 0, 0], pos, ids=[1, 2, 3, 4, 5])
    g.set_node_column("tag", np.array(["unlabeled", "tp", "unlabeled", "tp", "fp"]))
    g.set_node_column("score", np.array([0.9, np.nan, 0.9, 0.9, 0.9]))
    return g


def _annotations(parent: int) -> TrackGraph:
    g = _spots()
    return g.add_edges(
        {"source": np.array([parent, 5]), "target": np.array([3, 3]),
         "approved": np.array([True, False])}
    )


def _links(result) -> set[tuple[int, int]]:
    g = result.graph
    return set(zip(g.edges["source"].tolist(), g.edges["target"].tolist()))


@pytest.mark.parametrize("kind", ["greedy", "ilp", "flow_nn"])
def test_an_approved_link_beats_the_nearer_parent_with_every_linker(kind):
    free = link_stage(_spots(), candidates=CAND, linker=kind)
    assert (1, 3) in _links(free)  # without the annotation, the nearest parent wins
    result = link_stage(_spots(), _annotations(parent=2), candidates=CAND, linker=kind)
    assert result.ok
    assert (2, 3) in _links(result) and (1, 3) not in _links(result)


@pytest.mark.parametrize("kind", ["greedy", "ilp"])
def test_an_approved_link_the_candidate_search_misses_is_added_and_pinned(kind):
    graph = link_graph(_spots(), _annotations(parent=4), candidates=CAND, linker=kind)
    rows, found = graph.edge_rows([(4, 3), (1, 3)])
    assert found.all()
    assert graph.edges["approved"][rows].tolist() == [True, False]
    assert graph.edges["pin"][rows].tolist() == [1, -1]
    assert graph.edges["distance"][rows[0]] == pytest.approx(30.0)
    assert (4, 3) in _links(link_stage(_spots(), _annotations(4), candidates=CAND, linker=kind))


def test_linkable_spots_pins_and_scores():
    spots = linkable_spots(_annotations(parent=2))
    assert spots.ids.tolist() == [1, 2, 3, 4] and spots.num_edges == 0  # fp spot 5 left out
    assert np.all(np.isfinite(spots.nodes["score"]))  # the hand-made spot's NaN score → 1
    graph = link_graph(_spots(), _annotations(parent=2), candidates=CAND, linker="ilp")
    assert dict(zip(graph.ids.tolist(), graph.nodes["pin"].tolist())) == {
        1: -1, 2: 1, 3: -1, 4: 1
    }
    # flow_nn links the spots themselves: the approved link is the only edge
    spot_graph = link_graph(_spots(), _annotations(parent=2), linker="flow_nn")
    assert _links(type("R", (), {"graph": spot_graph})) == {(2, 3)}
    assert approved_pairs(_spots(), _annotations(parent=2)).tolist() == [[2, 3]]
    assert approved_pairs(_spots(), None).shape == (0, 2)
    with pytest.raises(InvalidInputError, match="no spots to link"):
        linkable_spots(_spots().subgraph(nodes=np.array([False] * 4 + [True])))
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        link_stage([1, 2, 3], linker="greedy")


def test_field_of_view_is_the_movie_extent_in_um():
    assert field_of_view((5, 1, 10, 20), (1.0, 0.5, 0.25)) == (
        (0.0, 0.0), (0.0, 4.5), (0.0, 4.75)
    )


def test_blockwise_matches_the_global_solution_and_refuses_spot_linkers(tmp_path):
    t = np.repeat(np.arange(6), 5)  # 5 cells 20 µm apart in x, still, for 6 frames
    pos = np.tile(np.arange(5)[:, None] * [0, 0, 20.0], (6, 1))
    spots = TrackGraph.from_positions(t, pos)
    bw = BlockwiseConfig(
        block_size=(3, None, None, None), context=(2, None, None, None),
        executor="serial", progress=False,
    )
    whole = link_stage(spots, candidates=CAND, linker="greedy")
    blocks = link_stage(
        spots, candidates=CAND, linker="greedy", blockwise=bw, store=tmp_path / "blocks"
    )
    assert blocks.ok and _links(blocks) == _links(whole) and len(_links(whole)) == 25
    assert (tmp_path / "blocks" / "manifest.json").is_file()
    graph = link_graph(spots, linker="flow_nn")
    with pytest.raises(InvalidInputError, match="candidate-graph linker"):
        solve_links(graph, "flow_nn", blockwise=bw)


class RecordingConfig(Config):
    """A user's linker config (test): registered under its own kind."""

    kind: Literal["test_stage_recording"] = Field(
        "test_stage_recording", description="linker name (discriminator)"
    )


class RecordingLinker(Linker):
    """A user's linker: greedy linking that records the graph the stage gave it."""

    config_class = RecordingConfig
    seen: ClassVar[list[TrackGraph]] = []

    def _link(self, candidates: TrackGraph) -> LinkResult:
        RecordingLinker.seen.append(candidates)
        return make_linker("greedy").link(candidates)


def test_a_registered_user_linker_gets_the_candidate_graph_with_pins():
    register_linker("test_stage_recording", RecordingConfig, RecordingLinker)
    result = link_stage(
        _spots(), _annotations(parent=2), candidates=CAND, linker="test_stage_recording"
    )
    seen = RecordingLinker.seen[-1]
    assert {"pin", "approved", "distance"} <= set(seen.edge_columns)
    assert seen.nodes["pin"].tolist() == [-1, 1, -1, 1]
    assert (2, 3) in _links(result)


class SpotRecordingLinker(RecordingLinker):
    """A user's linker that searches parents itself: the stage hands it the spots."""

    links_spots = True

    def _link(self, candidates: TrackGraph) -> LinkResult:
        RecordingLinker.seen.append(candidates)
        return make_linker("flow_nn").link(candidates)


def test_a_users_spot_linker_gets_the_spots_not_a_candidate_graph():
    RecordingLinker.seen.clear()
    result = link_stage(_spots(), _annotations(1), candidates=CAND, linker=SpotRecordingLinker())
    (graph,) = RecordingLinker.seen
    assert result.ok
    # only the approved link between linkable spots, no candidate edges
    assert list(zip(graph.edges["source"].tolist(), graph.edges["target"].tolist())) == [(1, 3)]
