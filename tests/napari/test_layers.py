"""What the layers show: positions in µm, sizes from the ellipsoids, colours by tag."""

from __future__ import annotations

import numpy as np

from celltrack.geometry import covariance_from_radii
from celltrack.graph import TrackGraph
from celltrack.graph.tags import TAGS
from celltrack.napari.layers import (
    TAG_COLORS,
    movie_scale,
    spot_colors,
    spot_coordinates,
    spot_diameters_um,
    spot_features,
    track_layer_data,
)


def _graph() -> TrackGraph:
    g = TrackGraph(
        {
            "id": [4, 7, 9],
            "t": [0, 1, 1],
            "z": [2.0, 4.0, 6.0],
            "y": [1.0, 2.0, 3.0],
            "x": [5.0, 6.0, 7.0],
            "covariance": covariance_from_radii(np.array([[3.0, 3, 3], [1, 2, 2], [2, 2, 2]])),
            "score": [0.91234, 0.5, 1.0],
            "tag": np.array(["tp", "unlabeled", "fp"]),
        },
        {"source": [4], "target": [7]},
    )
    return g


def test_every_tag_has_a_distinct_colour():
    assert set(TAG_COLORS) == set(TAGS)
    assert len({tuple(c) for c in TAG_COLORS.values()}) == len(TAGS)
    colors = spot_colors(np.array(["fp", "tp"]))
    assert np.allclose(colors, [TAG_COLORS["fp"], TAG_COLORS["tp"]])


def test_coordinates_sizes_and_hover_features():
    g = _graph()
    assert spot_coordinates(g, two_d=False).tolist() == [
        [0, 2, 1, 5], [1, 4, 2, 6], [1, 6, 3, 7]
    ]
    assert spot_coordinates(g, two_d=True).tolist() == [[0, 1, 5], [1, 2, 6], [1, 3, 7]]
    # twice the root-mean-square radius: 6 µm for a 3 µm sphere, 2·sqrt(3) for radii 1, 2, 2
    assert np.allclose(spot_diameters_um(g, 1.0), [6.0, 2 * np.sqrt(3.0), 4.0])
    features = spot_features(g)
    assert features["id"].tolist() == [4, 7, 9]
    assert features["tag"].tolist() == ["tp", "unlabeled", "fp"]
    assert features["score"].tolist() == [0.912, 0.5, 1.0]


def test_movie_scale_is_one_frame_then_microns_per_voxel():
    vs = np.array([2.0, 0.5, 0.25])
    assert movie_scale(vs, two_d=False) == (1.0, 2.0, 0.5, 0.25)
    assert movie_scale(vs, two_d=True) == (1.0, 0.5, 0.25)


def test_tracks_layer_shows_only_linked_spots():
    data, graph = track_layer_data(_graph(), two_d=False)
    assert data.tolist() == [[1, 0, 2, 1, 5], [1, 1, 4, 2, 6]]  # node 9 has no link
    assert graph == {}
    assert track_layer_data(_graph().subgraph(edges=np.zeros(1, bool)), two_d=False) is None
    assert track_layer_data(None, two_d=True) is None
