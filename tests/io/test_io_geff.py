"""GEFF round trips, checked against the geff package's validator and networkx reader."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from celltrack.errors import FormatError, GraphError
from celltrack.geometry import covariance_from_radii
from celltrack.graph.trackgraph import TrackGraph
from celltrack.io.geff_io import read_geff, write_geff

geff = pytest.importorskip("geff")


def _graph() -> TrackGraph:
    rng = np.random.default_rng(0)
    n = 6
    cov = covariance_from_radii(rng.uniform(1, 3, (n, 3)))
    nodes = {
        "id": np.array([3, 5, 7, 9, 11, 13]),
        "t": np.array([0, 1, 2, 2, 3, 0]),
        "z": rng.uniform(0, 10, n),
        "y": rng.uniform(0, 10, n),
        "x": rng.uniform(0, 10, n),
        "covariance": cov,
        "score": rng.uniform(0, 1, n).astype(np.float32),
        "tag": np.array(["tp", "fn", "unlabeled", "fp", "tp", "tb"]),
        "count": np.arange(n, dtype=np.int32),
        "keep": np.array([True, False, True, True, False, True]),
    }
    edges = {
        "source": np.array([3, 5, 5, 9]),
        "target": np.array([5, 7, 9, 11]),
        "distance": np.array([1.5, 2.5, 3.5, np.nan]),
        "approved": np.array([True, False, True, False]),
        "frame_gap": np.array([1, 1, 1, 1], np.int64),
    }
    attrs = {"voxel_size": np.array([2.0, 0.5, 0.5]), "name": "demo", "nested": {"a": [1, 2]}}
    return TrackGraph(nodes, edges, attrs=attrs)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_roundtrip_all_columns(tmp_path, zarr_format):
    g = _graph()
    out = write_geff(g, tmp_path / "g.geff", zarr_format=zarr_format)
    back = read_geff(out)
    assert back.equals(g)
    assert back.nodes["tag"].tolist() == g.nodes["tag"].tolist()
    assert back.nodes["keep"].dtype == bool
    assert back.nodes["count"].dtype == np.int32
    assert back.nodes["score"].dtype == np.float32
    assert back.nodes["covariance"].shape == (6, 3, 3)
    assert back.attrs == {"voxel_size": [2.0, 0.5, 0.5], "name": "demo", "nested": {"a": [1, 2]}}


def test_metadata_validator_and_networkx_reader(tmp_path):
    g = _graph()
    out = write_geff(g, tmp_path / "g.zarr")
    geff.validate_structure(str(out))  # raises on an invalid store
    nxg, meta = geff.read(str(out), backend="networkx")
    assert meta.directed
    assert [(a.name, a.type, a.unit) for a in meta.axes] == [
        ("t", "time", "frame"),
        ("z", "space", "micrometer"),
        ("y", "space", "micrometer"),
        ("x", "space", "micrometer"),
    ]
    assert meta.ellipsoid == "covariance"
    assert set(nxg.nodes) == set(g.ids.tolist())
    assert set(nxg.edges) == set(zip(g.edges["source"].tolist(), g.edges["target"].tolist()))
    row = int(g.index_of([9])[0])
    assert nxg.nodes[9]["tag"] == "fp"
    assert np.isclose(nxg.nodes[9]["x"], g.nodes["x"][row])
    assert np.allclose(nxg.nodes[9]["covariance"], g.nodes["covariance"][row])
    assert bool(nxg.edges[5, 9]["approved"]) is True


def test_reads_geff_written_by_geff_from_networkx(tmp_path):
    nxg = nx.DiGraph()
    nxg.add_node(0, t=0, y=1.0, x=2.0, score=0.5)
    nxg.add_node(1, t=1, y=1.5, x=2.5, score=0.7)
    nxg.add_node(2, t=2, y=2.0, x=3.0, score=0.9)
    nxg.add_edge(0, 1, w=1.0)
    nxg.add_edge(1, 2, w=2.0)
    store = tmp_path / "nx.geff"
    geff.write(nxg, str(store), axis_names=["t", "y", "x"], axis_types=["time", "space", "space"])
    g = read_geff(store)
    assert g.num_nodes == 3 and g.num_edges == 2
    assert g.t.tolist() == [0, 1, 2]
    assert np.allclose(g.nodes["z"], 0.0)  # 2D+t: z = 0
    assert np.allclose(g.nodes["x"], [2.0, 2.5, 3.0])
    assert np.allclose(g.edges["w"], [1.0, 2.0])
    assert np.allclose(g.nodes["score"], [0.5, 0.7, 0.9])


def test_missing_values_and_overwrite(tmp_path):
    g = TrackGraph.from_positions([0, 1], [[0, 0, 0], [1, 1, 1]])
    g.set_node_column("note", np.array(["a", None], dtype=object))
    out = write_geff(g, tmp_path / "m.geff")
    with pytest.raises(FileExistsError):
        write_geff(g, out)
    back = read_geff(out)
    assert back.nodes["note"].tolist() == ["a", None]
    g2 = TrackGraph.from_positions([0], [[5, 5, 5]])
    write_geff(g2, out, overwrite=True)
    assert read_geff(out).num_nodes == 1


def test_errors(tmp_path):
    g = TrackGraph.from_positions([0], [[0, 0, 0]], ids=[-1])
    with pytest.raises(GraphError, match="negative"):
        write_geff(g, tmp_path / "neg.geff")
    assert not (tmp_path / "neg.geff").exists()
    (tmp_path / "junk").mkdir()
    with pytest.raises(FormatError, match="junk"):
        read_geff(tmp_path / "junk")
    with pytest.raises(FormatError):
        read_geff(tmp_path / "absent.geff")


def test_empty_graph(tmp_path):
    out = write_geff(TrackGraph.empty(), tmp_path / "e.geff")
    back = read_geff(out)
    assert back.num_nodes == 0 and back.num_edges == 0
