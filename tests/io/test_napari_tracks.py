"""to_napari_tracks / from_napari_tracks: round trips, napari's own checks, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from celltrack.errors import GraphError, InvalidInputError, ShapeError
from celltrack.graph import TrackGraph
from celltrack.io import from_napari_tracks, to_napari_tracks


def _graph(three_d: bool = True) -> TrackGraph:
    """1 → 2 → (3, 4 skipping frame 3 → 5); 9 → 10 skipping frame 1; 20 alone."""
    z = [4.0, 4.5, 3.0, 6.0, 6.5, 1.0, 1.0, 8.0] if three_d else [0.0] * 8
    cov = np.eye(3)[None] * np.arange(1, 9)[:, None, None]
    return TrackGraph(
        {"id": [1, 2, 3, 4, 5, 9, 10, 20], "t": [0, 1, 2, 2, 4, 0, 2, 3], "z": z,
         "y": [5.0, 6.0, 4.0, 10.0, 11.0, 1.0, 1.5, 7.0],
         "x": [5.0, 5.0, 4.0, 12.0, 13.0, 1.0, 2.5, 7.0],
         "score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], "covariance": cov},
        {"source": [1, 2, 2, 4, 9], "target": [2, 3, 4, 5, 10]},
    )


@pytest.mark.parametrize("three_d", [True, False])
def test_round_trip(three_d):
    g = _graph(three_d)
    data, graph, features = to_napari_tracks(g)
    assert data.shape == (8, 5 if three_d else 4)
    assert graph == {3: [1], 4: [1]}  # tracks 3 and 4 divide from track 1 (9 → 10 is 2)
    order = np.lexsort((data[:, 1], data[:, 0]))
    assert np.array_equal(order, np.arange(8))  # sorted by track, then time
    assert features["id"].tolist() == [1, 2, 9, 10, 3, 4, 5, 20]
    back = from_napari_tracks(data, graph, features)
    assert back.equals(g)  # ids, positions, edges, score and covariance


def test_without_features_ids_are_rows():
    data, graph, _ = to_napari_tracks(_graph())
    back = from_napari_tracks(data, graph)
    assert back.ids.tolist() == list(range(8)) and back.num_edges == 5
    again = from_napari_tracks(data, graph, ids=np.arange(100, 108))
    assert again.ids.tolist() == list(range(100, 108))


def test_explicit_ndim():
    data, _, _ = to_napari_tracks(_graph(False), ndim=4)
    assert data.shape == (8, 5) and np.all(data[:, 2] == 0)
    with pytest.raises(InvalidInputError, match="use ndim=4"):
        to_napari_tracks(_graph(True), ndim=3)
    with pytest.raises(InvalidInputError, match="ndim must be"):
        to_napari_tracks(_graph(), ndim=5)


def test_napari_accepts_the_layer_data():
    napari_layers = pytest.importorskip("napari.layers")
    g = _graph()
    data, graph, features = to_napari_tracks(g)
    layer = napari_layers.Tracks(data, graph=graph, features=features)
    assert layer.data.shape == data.shape and layer.graph == graph
    back = from_napari_tracks(layer.data, layer.graph, layer.features)  # a DataFrame
    assert back.equals(g)
    data2d, graph2d, _ = to_napari_tracks(_graph(False))
    assert napari_layers.Tracks(data2d, graph=graph2d).ndim == 3


def test_a_candidate_graph_is_refused():
    g = TrackGraph({"id": [1, 2, 3], "t": [0, 0, 1], "z": [0.0] * 3, "y": [0.0] * 3,
                    "x": [0.0, 1.0, 2.0]}, {"source": [1, 2], "target": [3, 3]})
    with pytest.raises(GraphError, match="several parents"):
        to_napari_tracks(g)


def _rows() -> np.ndarray:
    return np.array([[1, 0, 0, 0, 0], [1, 1, 0, 0, 1], [2, 2, 0, 0, 2], [3, 2, 0, 0, 3]],
                    float)


@pytest.mark.parametrize(
    ("data", "graph", "error", "match"),
    [
        (np.zeros((3, 6)), None, ShapeError, r"\(N, 5\)"),
        (np.zeros(5), None, ShapeError, r"\(N, 5\)"),
        (_rows()[[1, 0, 2, 3]], None, InvalidInputError, "sorted by track"),
        (_rows()[[0, 0, 2, 3]], None, InvalidInputError, "one point per track and frame"),
        (_rows() + [[0.5, 0, 0, 0, 0]] * 4, None, InvalidInputError, "whole numbers"),
        (_rows() - [[0, 5, 0, 0, 0]] * 4, None, InvalidInputError, ">= 0"),
        (np.where(np.eye(4, 5, 2) > 0, np.nan, _rows()), None, InvalidInputError, "finite"),
        (_rows(), {2: [7]}, GraphError, "parent track .7."),
        (_rows(), {8: 1}, GraphError, "track .8."),
        (_rows(), {1: [2]}, GraphError, "starts at frame 0, not after"),
        (_rows(), {3: "x"}, InvalidInputError, "not track id"),
    ],
)
def test_bad_napari_data(data, graph, error, match):
    with pytest.raises(error, match=match):
        from_napari_tracks(data, graph)


def test_bad_features_and_ids():
    with pytest.raises(ShapeError, match="feature 'score'"):
        from_napari_tracks(_rows(), None, {"score": [1.0, 2.0]})
    with pytest.raises(ShapeError, match="node ids"):
        from_napari_tracks(_rows(), None, ids=[1, 2])
    with pytest.raises(GraphError, match="napari tracks"):
        from_napari_tracks(_rows(), None, ids=[1, 1, 2, 3])
