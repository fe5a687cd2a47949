"""ELEPHANT's tag bookkeeping (celltrack.graph.tags, project.tags): every tag, every rule."""

from __future__ import annotations

import numpy as np
import pytest

from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.graph.tags import (
    TAGS,
    approved_mask,
    found_tags,
    reset_tags,
    review_tags,
    reviewed_mask,
)
from celltrack.project.tags import merge_predictions

# the rules as written in ELEPHANT's client (see reference/elephant.md §1 and §7)
EXPECTED_RESET = {
    "tp": "fn", "fp": "tn", "fb": "tb", "fn": "fn", "tn": "tn", "tb": "tb",
    "unlabeled": "unlabeled",
}
EXPECTED_FOUND = {
    "fn": "tp", "tn": "fp", "tb": "fb", "tp": "tp", "fp": "fp", "fb": "fb",
    "unlabeled": "unlabeled",
}


@pytest.mark.parametrize("tag", TAGS)
def test_reset_and_found_tables(tag):
    assert reset_tags([tag]).tolist() == [EXPECTED_RESET[tag]]
    assert found_tags([tag]).tolist() == [EXPECTED_FOUND[tag]]


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize(("decision", "result"), [("accept", "tp"), ("reject", "fp")])
def test_review_sets_tp_or_fp_whatever_the_tag(tag, decision, result):
    assert review_tags([tag], decision).tolist() == [result]


def test_review_and_tag_validation():
    with pytest.raises(InvalidInputError, match="accept"):
        review_tags(["tp"], "maybe")
    with pytest.raises(InvalidInputError, match="unknown tags"):
        reset_tags(["tp", "bogus"])
    assert reviewed_mask(list(TAGS)).tolist() == [t != "unlabeled" for t in TAGS]


def _spots(tags, positions, t=None, ids=None, edges=None):
    n = len(tags)
    pos = np.asarray(positions, float).reshape(n, 3)
    return TrackGraph(
        {
            "id": np.arange(n) if ids is None else ids,
            "t": np.zeros(n, int) if t is None else t,
            "z": pos[:, 0], "y": pos[:, 1], "x": pos[:, 2],
            "covariance": np.broadcast_to(np.eye(3) * 4.0, (n, 3, 3)).copy(),
            "score": np.ones(n),
            "tag": np.asarray(tags, dtype="<U9"),
        },
        edges,
    )


def _predictions(positions, frame=0):
    pos = np.asarray(positions, float).reshape(-1, 3)
    n = pos.shape[0]
    return TrackGraph.from_positions(
        np.full(n, frame), pos,
        covariance=np.broadcast_to(np.eye(3) * 9.0, (n, 3, 3)).copy(),
        score=np.full(n, 0.7), tag=np.full(n, "unlabeled"),
    )


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("predicted", [True, False])
def test_one_spot_of_each_tag_with_and_without_a_prediction(tag, predicted):
    ann = _spots([tag], [[5.0, 5.0, 5.0]])
    pred = _predictions([[5.0, 5.5, 5.0]] if predicted else np.zeros((0, 3)))
    out, stats = merge_predictions(ann, pred, 0, 3.0)
    tags = dict(zip(out.ids.tolist(), out.nodes["tag"].tolist()))
    if tag == "unlabeled":
        # an unreviewed, unapproved prediction is replaced by the new one
        assert 0 not in tags and stats["deleted"] == 1
        assert list(tags.values()) == (["unlabeled"] if predicted else [])
        return
    expected = EXPECTED_RESET[tag]
    if predicted:
        expected = EXPECTED_FOUND[expected]
    assert tags == {0: expected}
    assert stats == {
        "deleted": 0, "matched": int(predicted), "suppressed": int(predicted), "added": 0
    }


def test_full_cycle_outcomes_match_elephant():
    # tp stays tp if found, falls back to fn if not; fp stays fp if the model still fires
    # there and becomes tn once it does not, ...
    tags = ["tp", "tp", "fp", "fp", "fn", "fn", "tn", "tn", "tb", "tb", "fb", "fb"]
    pos = np.array([[0.0, 20.0 * i, 0.0] for i in range(len(tags))])
    found = np.arange(len(tags)) % 2 == 0
    out, _ = merge_predictions(_spots(tags, pos), _predictions(pos[found] + 0.5), 0, 3.0)
    got = out.sorted().nodes["tag"].tolist()
    assert got == ["tp", "fn", "fp", "tn", "tp", "fn", "fp", "tn", "fb", "tb", "fb", "tb"]


def test_approved_unlabeled_spot_survives_and_wins_over_the_prediction():
    ann = _spots(
        ["unlabeled", "unlabeled", "unlabeled"], [[0, 0, 0], [0, 0, 0], [0, 30, 0]],
        t=[0, 1, 1], edges={"source": [0], "target": [1], "approved": [True]},
    )
    out, stats = merge_predictions(ann, _predictions([[0, 0.5, 0], [0, 30, 0]], frame=1), 1, 3.0)
    assert stats == {"deleted": 1, "matched": 1, "suppressed": 1, "added": 1}
    assert 1 in out.ids and 2 not in out.ids and out.num_edges == 1
    assert out.nodes_at(1).tolist() == [1, 3]


def test_deleting_a_spot_deletes_its_links_and_other_frames_are_untouched():
    ann = _spots(
        ["tp", "unlabeled", "tp", "unlabeled"], [[0, 0, 0], [0, 0, 0], [0, 9, 0], [0, 40, 0]],
        t=[0, 1, 1, 2], edges={"source": [0, 0], "target": [1, 2], "approved": [False, True]},
    )
    out, _ = merge_predictions(ann, _predictions(np.zeros((0, 3)), frame=1), 1, 3.0)
    assert out.ids.tolist() == [0, 2, 3]
    assert out.edges["source"].tolist() == [0] and out.edges["target"].tolist() == [2]
    tags = dict(zip(out.ids.tolist(), out.nodes["tag"].tolist()))
    assert tags == {0: "tp", 2: "fn", 3: "unlabeled"}  # frames 0 and 2 untouched


def test_distance_is_strict_and_several_predictions_on_one_spot_are_all_dropped():
    ann = _spots(["fn"], [[0, 0, 0]])
    pred = _predictions([[0, 2.9, 0], [0, -2.9, 0], [0, 3.0, 0]])
    out, stats = merge_predictions(ann, pred, 0, 3.0)
    assert stats["matched"] == 1 and stats["suppressed"] == 2 and stats["added"] == 1
    assert out.sorted().nodes["tag"].tolist() == ["tp", "unlabeled"]
    new = out.subgraph(nodes=out.ids != 0)
    assert new.nodes["y"].tolist() == [3.0] and new.nodes["score"].tolist() == [0.7]
    # distance 0 switches suppression off
    _, stats = merge_predictions(ann, pred, 0, 0.0)
    assert stats["added"] == 3 and stats["matched"] == 0


def test_new_ids_never_reuse_existing_ones():
    ann = _spots(["tp", "unlabeled"], [[0, 0, 0], [0, 50, 0]], ids=[3, 10], t=[0, 1])
    out, _ = merge_predictions(ann, _predictions([[0, 20, 0], [0, 30, 0]]), 0, 3.0)
    assert sorted(out.ids.tolist()) == [3, 10, 11, 12]
    out, _ = merge_predictions(ann, _predictions([[0, 20, 0]]), 0, 3.0, next_id=40)
    assert sorted(out.ids.tolist()) == [3, 10, 40]
    with pytest.raises(Exception, match="reuse"):
        merge_predictions(ann, _predictions([[0, 20, 0]]), 0, 3.0, next_id=5)


def test_bad_input():
    ann = _spots(["tp"], [[0, 0, 0]])
    with pytest.raises(InvalidInputError, match="frames"):
        merge_predictions(ann, _predictions([[0, 0, 0]], frame=1), 0, 3.0)
    with pytest.raises(InvalidInputError, match="distance"):
        merge_predictions(ann, _predictions([[0, 0, 0]]), 0, -1.0)
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        merge_predictions({"id": []}, _predictions([[0, 0, 0]]), 0, 3.0)


def _reference_merge(tags, pos, t, approved_nodes, pred_pos, frame, dist):
    """Straightforward per-prediction loop of the documented rules."""
    tags = list(tags)
    alive = [True] * len(tags)
    for i in range(len(tags)):
        if t[i] != frame:
            continue
        tags[i] = EXPECTED_RESET[tags[i]]
        if tags[i] == "unlabeled" and i not in approved_nodes:
            alive[i] = False
    existing = [i for i in range(len(tags)) if alive[i] and t[i] == frame]
    added = []
    for p in pred_pos:
        best, best_d = None, np.inf
        for i in existing:
            d = float(np.linalg.norm(pos[i] - p))
            if d < best_d:
                best, best_d = i, d
        if best is not None and best_d < dist:
            tags[best] = EXPECTED_FOUND[tags[best]]
        else:
            added.append(tuple(p))
    kept = {i: tags[i] for i in range(len(tags)) if alive[i]}
    return kept, sorted(added)


@pytest.mark.parametrize("seed", range(5))
def test_random_merges_match_a_sequential_reference(seed):
    rng = np.random.default_rng(seed)
    n = 60
    tags = rng.choice(TAGS, n)
    t = rng.integers(0, 3, n)
    pos = rng.uniform(0, 40, (n, 3))
    # approved links between some frame-0/1 and 1/2 pairs
    src = rng.choice(np.flatnonzero(t == 1), 4, replace=False)
    tgt = rng.choice(np.flatnonzero(t == 2), 4, replace=False)
    approved = rng.random(4) < 0.5
    ann = _spots(tags, pos, t=t, edges={"source": src, "target": tgt, "approved": approved})
    pred_pos = rng.uniform(0, 40, (25, 3))
    out, _ = merge_predictions(ann, _predictions(pred_pos, frame=1), 1, 5.0)
    approved_nodes = set(src[approved].tolist()) | set(tgt[approved].tolist())
    kept, added = _reference_merge(tags, pos, t, approved_nodes, pred_pos, 1, 5.0)
    old = out.subgraph(nodes=out.ids < n)
    assert dict(zip(old.ids.tolist(), old.nodes["tag"].tolist())) == kept
    new = out.subgraph(nodes=out.ids >= n)
    assert set(new.nodes["tag"].tolist()) <= {"unlabeled"}
    assert sorted(map(tuple, new.positions.tolist())) == added
    # edges: only those whose both ends survived
    alive = set(kept)
    expect = sorted((int(s), int(g)) for s, g in zip(src, tgt) if s in alive and g in alive)
    assert sorted(zip(out.edges["source"].tolist(), out.edges["target"].tolist())) == expect


def test_edge_rows_and_approved_mask():
    g = _spots(
        ["tp"] * 4, np.zeros((4, 3)), t=[0, 1, 1, 2],
        edges={"source": [0, 0, 1], "target": [1, 2, 3], "approved": [True, False, True]},
    )
    rows, found = g.edge_rows([(0, 2), (1, 3), (2, 3), (0, 1)])
    assert found.tolist() == [True, True, False, True]
    assert rows[found].tolist() == [1, 2, 0]
    assert approved_mask(g).tolist() == [True, False, True]
    assert approved_mask(g.subgraph(edges=np.zeros(3, bool))).tolist() == []
    with pytest.raises(InvalidInputError, match="pairs"):
        g.edge_rows([1, 2, 3])
    nan_col = g.copy()
    nan_col.set_edge_column("approved", np.array([1.0, np.nan, 0.0]))
    assert approved_mask(nan_col).tolist() == [True, False, False]
