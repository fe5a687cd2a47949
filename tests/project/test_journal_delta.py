"""graph_delta's fast paths (aligned keys, shared columns, packed edge keys) stay bit-exact."""

from __future__ import annotations

import json

import numpy as np
import pytest

from celltrack.graph import TrackGraph
from celltrack.project import journal as journal_mod
from celltrack.project.journal import apply_delta, delta_is_empty, graph_delta


def _graph(n: int = 30, id_offset: int = 0, seed: int = 0) -> TrackGraph:
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64) * 3 + id_offset
    t = np.arange(n) % 3
    first, second = ids[t == 0], ids[t == 1]
    k = min(first.size, second.size)
    return TrackGraph(
        {
            "id": ids,
            "t": t,
            "z": rng.random(n),
            "y": rng.random(n),
            "x": rng.random(n),
            "covariance": np.tile(np.eye(3), (n, 1, 1)),
            "score": np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
            "tag": np.full(n, "unlabeled", "<U9"),
        },
        {"source": first[:k], "target": second[:k], "approved": np.zeros(k, bool)},
    ).sorted()


def _reference_upserts(old: TrackGraph, new: TrackGraph) -> list[int]:
    """Ids of new's rows that are new or differ bit for bit (the slow, obvious way)."""
    rows = {int(i): r for r, i in enumerate(old.ids)}
    out = []
    for r, node in enumerate(new.ids.tolist()):
        o = rows.get(node)
        if o is None or any(
            np.asarray(old.nodes[c][o]).tobytes() != np.asarray(new.nodes[c][r]).tobytes()
            for c in new.nodes
        ):
            out.append(node)
    return out


def _replace(graph: TrackGraph, **columns) -> TrackGraph:
    return TrackGraph({**graph.nodes, **columns}, dict(graph.edges), attrs=dict(graph.attrs))


def _round_trip(old: TrackGraph, new: TrackGraph) -> dict:
    delta = graph_delta(old, new)
    assert delta is not None
    replayed = apply_delta(old, json.loads(json.dumps(delta)))
    assert replayed.equals(new, atol=0) and replayed.attrs == new.attrs
    assert delta["nodes"]["id"]["values"] == _reference_upserts(old, new)
    return delta


def test_equal_graphs_give_an_empty_delta_shared_columns_or_not():
    g = _graph()
    assert delta_is_empty(graph_delta(g, g))
    assert delta_is_empty(graph_delta(g, g.copy()))  # equal memory, different buffers
    assert not delta_is_empty(graph_delta(g, _replace(g, score=np.zeros(g.num_nodes))))


def test_equal_keys_changed_rows_only_those_rows_are_sent():
    g = _graph()
    x = np.array(g.nodes["x"])
    x[[3, 17]] += 1.0
    cov = np.array(g.nodes["covariance"])
    cov[25, 1, 2] = 0.5
    delta = _round_trip(g, _replace(g, x=x, covariance=cov))
    assert delta["nodes"]["id"]["values"] == g.ids[[3, 17, 25]].tolist()
    assert delta["del_nodes"] == [] and delta["del_edges"] == [] and delta["edges"]["source"][
        "values"
    ] == []


def test_nan_equals_itself_and_negative_zero_differs():
    g = _graph()
    score = np.array(g.nodes["score"])
    nan_rows = np.flatnonzero(np.isnan(score))
    assert nan_rows.size
    score[nan_rows] = np.nan  # same bits: no change
    assert delta_is_empty(graph_delta(g, _replace(g, score=score)))
    z = np.array(g.nodes["z"])
    z[4] = 0.0
    base = _replace(g, z=z)
    flipped = z.copy()
    flipped[4] = -0.0
    delta = _round_trip(base, _replace(base, z=flipped))
    assert delta["nodes"]["id"]["values"] == [int(g.ids[4])]
    negative = np.array(g.nodes["score"])
    negative[nan_rows[0]] = np.copysign(np.nan, -1.0)  # another NaN bit pattern: a change
    delta = _round_trip(g, _replace(g, score=negative))
    assert delta["nodes"]["id"]["values"] == [int(g.ids[nan_rows[0]])]


def test_tag_change_is_found():
    g = _graph()
    tag = np.array(g.nodes["tag"])
    tag[[0, 29]] = "tp"
    delta = _round_trip(g, _replace(g, tag=tag))
    assert delta["nodes"]["tag"]["values"] == ["tp", "tp"]


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_deletions_and_additions_anywhere(where):
    g = _graph(40)
    rows = {"start": [0, 1], "middle": [13, 20], "end": [38, 39]}[where]
    keep = np.ones(g.num_nodes, bool)
    keep[rows] = False
    smaller = g.subgraph(nodes=keep).sorted()
    delta = _round_trip(g, smaller)
    assert delta["del_nodes"] == g.ids[rows].tolist()
    _round_trip(smaller, g)  # and back: the rows come again
    added = g.add_nodes(
        {"id": [int(g.ids.max()) + 1, 1], "t": [0, 1], "z": [0.0, 1.0], "y": [0.0, 1.0],
         "x": [0.0, 1.0]}
    ).sorted()
    assert graph_delta(g, added)["nodes"]["id"]["values"] == [1, int(g.ids.max()) + 1]
    _round_trip(g, added)


def test_mixed_random_edits_round_trip_and_match_the_reference():
    rng = np.random.default_rng(7)
    old = _graph(60, seed=1)
    for step in range(30):
        keep = rng.random(old.num_nodes) < 0.95
        new = old.subgraph(nodes=keep)
        score = np.array(new.nodes["score"])
        score[rng.random(score.size) < 0.1] = rng.choice([0.0, -0.0, np.nan, rng.random()])
        new = _replace(new, score=score)
        next_id = int(old.ids.max()) + 1
        extra = rng.integers(0, 3)
        new = new.add_nodes(
            {"id": np.arange(next_id, next_id + extra), "t": np.zeros(extra, np.int64),
             "z": rng.random(extra), "y": rng.random(extra), "x": rng.random(extra)}
        ).sorted()
        new.attrs["step"] = step
        _round_trip(old, new)
        old = new


def test_edge_changes_round_trip_with_packed_and_record_keys():
    for offset in (0, 2**40):  # 2**40: ids too wide to pack, record keys instead
        g = _graph(30, id_offset=offset)
        assert (journal_mod._packed_edge_keys(dict(g.edges)) is None) == (offset > 0)
        src, tgt = np.array(g.edges["source"]), np.array(g.edges["target"])
        approved = np.array(g.edges["approved"])
        approved[2] = True
        flagged = TrackGraph(dict(g.nodes), {"source": src, "target": tgt, "approved": approved})
        delta = _round_trip(g, flagged)
        assert delta["edges"]["source"]["values"] == [int(src[2])]
        dropped = flagged.subgraph(edges=np.arange(flagged.num_edges) != 4)
        delta = _round_trip(flagged, dropped)
        assert delta["del_edges"] == [[int(src[4]), int(tgt[4])]]
        third = g.ids[g.t == 2]
        more = dropped.add_edges(
            {"source": [int(tgt[0])], "target": [int(third[0])], "approved": [True]}
        ).sorted()
        _round_trip(dropped, more)


def test_a_column_change_still_asks_for_a_full_write():
    g = _graph()
    assert graph_delta(g, _replace(g, score=np.zeros(g.num_nodes, np.float32))) is None
    extra = TrackGraph({**g.nodes, "area": np.zeros(g.num_nodes)}, dict(g.edges))
    assert graph_delta(g, extra) is None
