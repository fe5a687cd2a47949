import networkx as nx
import numpy as np
import pytest

from celltrack import TrackGraph
from celltrack.errors import GraphError, InvalidInputError, ShapeError
from celltrack.graph import concat


def lineage() -> TrackGraph:
    """1 → 2 → {3, 4}; 4 → 6 (gap of 2 frames); 5 alone."""
    nodes = {
        "id": [1, 2, 3, 4, 5, 6],
        "t": [0, 1, 2, 2, 1, 4],
        "z": [0.0, 0, 0, 0, 5, 0],
        "y": [0.0, 1, 1, 1, 5, 1],
        "x": [0.0, 0, -1, 1, 5, 2],
        "score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
        "tag": ["tp", "fn", "unlabeled", "tp", "fp", "tp"],
    }
    edges = {"source": [1, 2, 2, 4], "target": [2, 3, 4, 6], "cost": [1.0, 2.0, 3.0, 4.0]}
    return TrackGraph(nodes, edges)


def test_queries():
    g = lineage()
    assert (g.num_nodes, g.num_edges) == (6, 4)
    assert g.frames.tolist() == [0, 1, 2, 4]
    assert sorted(g.nodes_at(2).tolist()) == [3, 4]
    assert g.nodes_at(3).size == 0
    assert g.parents([3, 4, 1, 6]).tolist() == [2, 2, -1, 4]
    assert sorted(g.children(2).tolist()) == [3, 4]
    assert g.divisions().tolist() == [2]
    assert g.in_degree().tolist() == [0, 1, 1, 1, 0, 1]
    assert g.out_degree().tolist() == [1, 2, 0, 1, 0, 0]
    np.testing.assert_allclose(g.positions[2], [0, 1, -1])


def test_tracklets_and_lineages():
    g = lineage()
    track = dict(zip(g.ids.tolist(), g.tracklets().tolist()))
    assert track[1] == track[2]  # 1 → 2 continues
    assert len({track[2], track[3], track[4], track[5]}) == 4  # division splits tracklets
    assert track[4] == track[6]  # a gap edge continues the tracklet
    lin = dict(zip(g.ids.tolist(), g.lineages().tolist()))
    assert lin[1] == lin[3] == lin[6] != lin[5]
    assert g.tracklets().min() == 0 and g.lineages().max() == 1


def test_validate_rules():
    g = lineage()
    g.validate(forest=True)
    base = {"t": [0, 1, 1, 1], "z": [0] * 4, "y": [0] * 4, "x": [0] * 4}
    with pytest.raises(GraphError, match="unique"):
        TrackGraph({"id": [1, 1, 2, 3], **base})
    with pytest.raises(GraphError, match="forward in time"):
        TrackGraph({"id": [1, 2, 3, 4], **base}, {"source": [2], "target": [1]})
    with pytest.raises(GraphError, match="forward in time"):
        TrackGraph({"id": [1, 2, 3, 4], **base}, {"source": [2], "target": [3]})
    with pytest.raises(GraphError, match="not in the graph"):
        TrackGraph({"id": [1, 2, 3, 4], **base}, {"source": [1], "target": [9]})
    with pytest.raises(GraphError, match="duplicate edges"):
        TrackGraph({"id": [1, 2, 3, 4], **base}, {"source": [1, 1], "target": [2, 2]})
    with pytest.raises(GraphError, match="missing"):
        TrackGraph({"id": [1], "t": [0], "z": [0], "y": [0]})
    with pytest.raises(GraphError, match="NaN"):
        TrackGraph({"id": [1], "t": [0], "z": [np.nan], "y": [0], "x": [0]})
    with pytest.raises(GraphError, match="unknown tags"):
        TrackGraph({"id": [1], "t": [0], "z": [0], "y": [0], "x": [0], "tag": ["maybe"]})
    with pytest.raises(ShapeError, match="rows"):
        TrackGraph({"id": [1, 2], "t": [0], "z": [0, 0], "y": [0, 0], "x": [0, 0]})
    with pytest.raises(ShapeError, match="covariance"):
        TrackGraph(
            {"id": [1], "t": [0], "z": [0], "y": [0], "x": [0], "covariance": np.eye(3)[None, :2]}
        )
    three = TrackGraph(
        {"id": [0, 1, 2, 3], "t": [0, 1, 1, 1], "z": [0] * 4, "y": [0] * 4, "x": [0] * 4},
        {"source": [0, 0, 0], "target": [1, 2, 3]},
    )
    with pytest.raises(GraphError, match="two children"):
        three.validate(forest=True)
    two_parents = TrackGraph(
        {"id": [0, 1, 2], "t": [0, 0, 1], "z": [0] * 3, "y": [0] * 3, "x": [0] * 3},
        {"source": [0, 1], "target": [2, 2]},
    )
    two_parents.validate()  # fine for a candidate graph
    with pytest.raises(GraphError, match="one parent"):
        two_parents.validate(forest=True)


def test_subgraph_drops_dangling_edges_and_keeps_columns():
    g = lineage()
    sub = g.subgraph(nodes=[1, 2, 3])
    assert sorted(sub.ids.tolist()) == [1, 2, 3]
    assert sub.num_edges == 2
    assert set(sub.node_columns) == set(g.node_columns)
    cheap = g.subgraph(edges=g.edges["cost"] < 2.5)
    assert cheap.num_nodes == 6 and cheap.num_edges == 2
    with pytest.raises(ShapeError):
        g.subgraph(nodes=np.ones(3, bool))


def test_columns_are_read_only_and_settable():
    g = lineage()
    with pytest.raises(ValueError):
        g.nodes["x"][0] = 5.0
    g.set_node_column("area", np.arange(6.0))
    assert g.nodes["area"].tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ShapeError):
        g.set_node_column("area", np.arange(5.0))
    with pytest.raises(InvalidInputError):
        g.set_node_column("x", np.zeros(6))
    with pytest.raises(GraphError):
        g.set_node_column("tag", ["nope"] * 6)


def test_networkx_round_trip():
    g = lineage()
    g.set_node_column("covariance", np.stack([np.eye(3) * (i + 1) for i in range(6)]))
    nxg = g.to_networkx()
    assert nxg.nodes[4]["tag"] == "tp" and nxg.edges[2, 4]["cost"] == 3.0
    np.testing.assert_allclose(nxg.nodes[3]["covariance"], np.eye(3) * 3)
    back = TrackGraph.from_networkx(nxg)
    assert back.equals(g)


def test_from_networkx_errors_and_missing_attributes():
    d = nx.DiGraph()
    d.add_node(1, t=0, z=0, y=0, x=0, score=0.5)
    d.add_node(2, t=1, z=0, y=0, x=1)
    d.add_edge(1, 2)
    g = TrackGraph.from_networkx(d)
    assert np.isnan(g.nodes["score"][g.index_of([2])[0]])
    with pytest.raises(GraphError, match="directed"):
        TrackGraph.from_networkx(nx.Graph(d))
    bad = nx.DiGraph()
    bad.add_node(1, t=0, z=0, y=0)
    with pytest.raises(GraphError, match="'x'"):
        TrackGraph.from_networkx(bad)


def test_concat_and_add():
    g = lineage()
    other = TrackGraph.from_positions([0, 1], [[1, 1, 1], [2, 2, 2]], ids=[10, 11])
    both = concat([g, other])
    assert both.num_nodes == 8
    assert np.isnan(both.nodes["score"][-1]) and both.nodes["tag"][-1] == "unlabeled"
    linked = both.add_edges({"source": [10], "target": [11]})
    assert linked.num_edges == 5 and np.isnan(linked.edges["cost"][-1])
    shifted = concat([g, g], offset_ids=True)
    assert shifted.num_nodes == 12 and shifted.num_edges == 8


def test_empty_graph():
    g = TrackGraph.empty()
    assert g.num_nodes == 0 and g.frames.size == 0
    assert g.tracklets().size == 0 and g.lineages().size == 0
    g.validate(forest=True)


def test_large_graph_is_vectorised():
    rng = np.random.default_rng(0)
    n = 200_000
    t = np.repeat(np.arange(100), n // 100)
    g = TrackGraph.from_positions(t, rng.random((n, 3)))
    src = np.arange(n - n // 100)
    g = g.add_edges({"source": src, "target": src + n // 100})
    g.validate(forest=True)
    assert g.tracklets().max() == n // 100 - 1
