"""Project.undo / redo: one step per edit (or batch), durable, bounded, in memory only."""

from __future__ import annotations

import numpy as np
import pytest

import celltrack.project.project as project_module
from celltrack.errors import InvalidInputError
from celltrack.graph.tags import TAGS, unknown_tags
from celltrack.project import Project


def _same(a, b) -> bool:
    return a.equals(b, atol=0) and a.nodes["tag"].tolist() == b.nodes["tag"].tolist()


def _two_spots(project: Project) -> tuple[int, int]:
    (a,) = project.add_spots(0, [[4.0, 10.0, 10.0]])
    (b,) = project.add_spots(1, [[4.0, 11.0, 10.0]])
    return int(a), int(b)


def test_nothing_to_undo_on_a_new_project(project):
    assert not project.can_undo and not project.can_redo
    assert project.undo() is False and project.redo() is False


@pytest.mark.parametrize(
    "edit",
    [
        lambda p, a, b: p.add_spot(0, (4.0, 30.0, 30.0)),
        lambda p, a, b: p.move_spot(a, (4.0, 12.0, 14.0), radius_um=2.5),
        lambda p, a, b: p.remove_spots([a]),
        lambda p, a, b: p.proofread([a, b], "accept"),
        lambda p, a, b: p.proofread([b], "reject"),
        lambda p, a, b: p.add_link(a, b),
    ],
    ids=["add", "move", "remove", "accept", "reject", "link"],
)
def test_undo_reverts_one_edit_and_redo_restores_it(project, edit):
    a, b = _two_spots(project)
    before = project.annotations
    edit(project, a, b)
    after = project.annotations
    assert project.can_undo and not project.can_redo
    assert project.undo() is True
    assert _same(project.annotations, before)
    assert project.can_redo
    assert project.redo() is True
    assert _same(project.annotations, after)
    assert not project.can_redo


def test_link_edits_undo_one_by_one(project):
    a, b = _two_spots(project)
    project.add_link(a, b, approved=False)
    linked = project.annotations
    project.approve_links([(a, b)])
    approved = project.annotations
    project.remove_links([(a, b)])
    assert project.annotations.num_edges == 0
    project.undo()
    assert _same(project.annotations, approved)
    project.undo()
    assert _same(project.annotations, linked)
    assert not project.annotations.edges["approved"][0]
    project.undo()
    assert project.annotations.num_edges == 0


def test_a_batch_is_one_step(project):
    _two_spots(project)
    before = project.annotations
    with project.batch():
        ids = [project.add_spot(2, (4.0, 10.0 + k, 10.0)) for k in range(3)]
        project.proofread(ids, "accept")
        with pytest.raises(InvalidInputError, match="batch"):
            project.undo()
    batched = project.annotations
    assert project.undo() is True
    assert _same(project.annotations, before)
    assert project.redo() is True
    assert _same(project.annotations, batched)


def test_a_new_edit_clears_redo_and_ids_are_not_reused(project):
    a, _ = _two_spots(project)
    project.undo()
    assert project.can_redo
    c = project.add_spot(0, (4.0, 20.0, 20.0))
    assert not project.can_redo and project.redo() is False
    assert c not in (a,) and c > a  # the undone spot's id stays used
    assert project.annotations.num_nodes == 2


def test_undo_is_durable_and_history_does_not_survive_reopening(project):
    a, _ = _two_spots(project)
    project.proofread([a], "reject")
    project.undo()
    expected = project.annotations
    reopened = Project.open(project.folder)
    assert _same(reopened.annotations, expected)
    assert reopened.annotations.nodes["tag"][0] == "fn"
    assert not reopened.can_undo and reopened.undo() is False
    assert not reopened.can_redo and reopened.redo() is False


def test_the_history_is_bounded(project, monkeypatch):
    monkeypatch.setattr(project_module, "UNDO_STEPS", 3)
    for k in range(5):
        project.add_spot(0, (4.0, 10.0 + k, 10.0))
    steps = 0
    while project.undo():
        steps += 1
    assert steps == 3
    assert project.annotations.num_nodes == 2  # the two oldest edits are kept


def test_a_no_op_edit_is_no_step(project):
    a, b = _two_spots(project)
    project.add_link(a, b)
    project.approve_links([(a, b)])  # already approved: nothing changes
    project.undo()
    assert project.annotations.num_edges == 0


def test_undo_after_many_edits_restores_every_state(project):
    rng = np.random.default_rng(0)
    states = [project.annotations]
    for k in range(12):
        kind = k % 3
        ids = project.annotations.ids
        if kind == 0 or ids.size == 0:
            project.add_spot(int(rng.integers(3)), (4.0, 5.0 + k, 7.0 + k))
        elif kind == 1:
            project.proofread([int(ids[-1])], "accept")
        else:
            project.move_spot(int(ids[0]), (4.0, 9.0 + k, 9.0))
        states.append(project.annotations)
    for state in reversed(states[:-1]):
        assert project.undo()
        assert _same(project.annotations, state)
    assert not project.undo()
    for state in states[1:]:
        assert project.redo()
        assert _same(project.annotations, state)
    assert _same(Project.open(project.folder).annotations, states[-1])


def test_sorted_shares_columns_of_an_ordered_graph_and_matches_a_full_sort(project):
    _two_spots(project)
    g = project.annotations
    s = g.sorted()
    assert all(np.shares_memory(s.nodes[k], g.nodes[k]) for k in g.nodes)
    shuffled = g.subgraph(nodes=np.ones(g.num_nodes, bool))
    flipped = type(g)({k: v[::-1] for k, v in shuffled.nodes.items()}, dict(g.edges))
    assert _same(flipped.sorted(), g) and flipped.sorted().ids.tolist() == sorted(g.ids)


def test_fast_tag_check_matches_plain_comparisons():
    values = np.array(
        [*TAGS, "", "t", "tpx", "unlabele", "unlabeledx", "UNLABELED", "fé", "\x7fp", " tb"]
    )
    plain = sorted({v for v in values.tolist() if v not in TAGS})
    assert unknown_tags(values) == plain
    assert unknown_tags(values.astype("<U12")) == plain  # wider than any tag
    assert unknown_tags(np.array(TAGS * 3).reshape(3, -1)) == []
