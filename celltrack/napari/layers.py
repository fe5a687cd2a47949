"""What napari's layers show of a :class:`~celltrack.project.Project`: pure array data.

World coordinates are (t, z, y, x) with t in frames and z, y, x in µm, the project's
units: the movie layer is scaled by the voxel size, spots and tracks are placed at their
µm positions. A 2D+t movie (Z = 1) drops the z axis everywhere, so it is shown as (t, y, x).
Nothing here needs napari or Qt; :mod:`celltrack.napari.session` puts the data into layers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from celltrack.graph import TrackGraph
from celltrack.graph.tags import tags_of
from celltrack.io import ImageSeries
from celltrack.io.napari_tracks import to_napari_tracks

__all__ = [
    "TAG_COLORS",
    "lazy_movie",
    "movie_scale",
    "spot_colors",
    "spot_coordinates",
    "spot_diameters_um",
    "spot_features",
    "track_layer_data",
]

#: Face colour (RGBA) of each tag: reviewed nuclei green (accepted) or cyan (added by
#: hand), rejected predictions magenta, background marks orange/brown, periphery marks
#: blue/red, unreviewed predictions grey.
TAG_COLORS: dict[str, tuple[float, float, float, float]] = {
    "tp": (0.10, 0.85, 0.20, 1.0),
    "fn": (0.00, 0.80, 1.00, 1.0),
    "fp": (1.00, 0.10, 0.90, 1.0),
    "tn": (1.00, 0.55, 0.00, 1.0),
    "tb": (0.25, 0.40, 1.00, 1.0),
    "fb": (0.90, 0.15, 0.15, 1.0),
    "unlabeled": (0.75, 0.75, 0.75, 1.0),
}


def is_two_d(shape: tuple[int, ...]) -> bool:
    """Whether a (T, Z, Y, X) movie is 2D+t (one z plane)."""
    return int(shape[1]) == 1


def movie_scale(voxel_size: np.ndarray, two_d: bool) -> tuple[float, ...]:
    """The movie layer's scale: 1 frame, then µm per voxel (z, y, x or y, x)."""
    vs = [float(v) for v in voxel_size]
    return (1.0, *(vs[1:] if two_d else vs))


def lazy_movie(images: ImageSeries) -> Any:
    """The movie as a dask array read one frame at a time, (T, Z, Y, X) or (T, Y, X) for 2D+t.

    napari slices it per frame, so only the frames on screen are read from disk.
    """
    import dask
    import dask.array as da

    shape = tuple(int(s) for s in images.shape)
    two_d = is_two_d(shape)
    frame_shape = shape[2:] if two_d else shape[1:]

    def frame(t: int) -> np.ndarray:
        data = np.asarray(images[t])
        return data[0] if two_d else data

    frames = [
        da.from_delayed(dask.delayed(frame)(t), frame_shape, dtype=images.dtype)
        for t in range(shape[0])
    ]
    return da.stack(frames)


def spot_coordinates(graph: TrackGraph, two_d: bool) -> np.ndarray:
    """Points-layer coordinates, shape (N, 4) ``[t, z, y, x]`` or (N, 3) ``[t, y, x]`` (µm)."""
    axes = ("y", "x") if two_d else ("z", "y", "x")
    columns = [np.asarray(graph.t, np.float64)]
    columns += [np.asarray(graph.nodes[a], np.float64) for a in axes]
    return np.stack(columns, axis=1) if graph.num_nodes else np.zeros((0, len(columns)))


def spot_diameters_um(graph: TrackGraph, default_radius_um: float) -> np.ndarray:
    """Displayed diameter (µm) of each spot, shape (N,).

    Twice the root-mean-square radius of the ellipsoid (``sqrt(trace(covariance) / 3)``);
    ``2 * default_radius_um`` for spots without a covariance.
    """
    if "covariance" not in graph.nodes:
        return np.full(graph.num_nodes, 2.0 * float(default_radius_um))
    cov = np.asarray(graph.nodes["covariance"], np.float64)
    return 2.0 * np.sqrt(np.trace(cov, axis1=1, axis2=2) / 3.0)


def spot_colors(tags: np.ndarray) -> np.ndarray:
    """RGBA face colours of tags, shape (N, 4) (see :data:`TAG_COLORS`)."""
    tags = np.asarray(tags).astype(str)
    colors = np.empty((tags.size, 4))
    for tag, rgba in TAG_COLORS.items():
        colors[tags == tag] = rgba
    return colors


def spot_features(graph: TrackGraph) -> dict[str, np.ndarray]:
    """The columns napari shows on hover: ``id``, ``tag`` and ``score`` (each (N,))."""
    score = (
        np.asarray(graph.nodes["score"], np.float64)
        if "score" in graph.nodes
        else np.full(graph.num_nodes, np.nan)
    )
    return {
        "id": np.asarray(graph.ids, np.int64),
        "tag": tags_of(graph).astype(str),
        "score": np.round(score, 3),
    }


def track_layer_data(
    graph: TrackGraph | None, two_d: bool
) -> tuple[np.ndarray, dict[int, list[int]]] | None:
    """Tracks-layer ``data`` and ``graph`` of the linked nodes of ``graph`` (None if none).

    Parameters
    ----------
    graph : TrackGraph or None
        Tracks or annotations (µm); only nodes with a link are shown.
    two_d : bool
        Drop the z axis (2D+t movie).

    Returns
    -------
    (ndarray, dict) or None
        ``data`` of shape (N, 5) ``[track_id, t, z, y, x]`` (N, 4 without z) and napari's
        ``graph`` {track: [parent track]}; None when ``graph`` has no links.
    """
    if graph is None or graph.num_edges == 0:
        return None
    src, tgt = graph.edge_index()
    linked = np.zeros(graph.num_nodes, bool)
    linked[src] = linked[tgt] = True
    data, tracks_graph, _features = to_napari_tracks(
        graph.subgraph(nodes=linked), ndim=3 if two_d else 4
    )
    return data, tracks_graph
