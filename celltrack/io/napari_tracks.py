"""Tracks to and from the data of a napari Tracks layer.

napari's Tracks layer takes ``data``: one row per point, ``[track_id, t, z, y, x]`` (3D+t)
or ``[track_id, t, y, x]`` (2D+t), sorted by track then time; ``graph``: each track that
divided from another → [its parent track]; ``features``: one value per row. A napari
*track* is a chain of nodes without a division (a tracklet), numbered as in
:func:`~celltrack.io.track_table.track_table`, which :func:`to_napari_tracks` builds on.

Positions stay in µm: show the layer with ``scale=(1, 1, 1, 1)`` over an image layer
scaled by the voxel size (``scale=(1, *voxel_size)``).

    data, graph, features = to_napari_tracks(tracks)
    viewer.add_tracks(data, graph=graph, features=features)
    back = from_napari_tracks(layer.data, layer.graph, layer.features)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from celltrack.errors import GraphError, InvalidInputError, ShapeError
from celltrack.graph.trackgraph import TrackGraph
from celltrack.io.track_table import napari_graph, track_table

__all__ = ["from_napari_tracks", "to_napari_tracks"]

_COV6 = ("cov_zz", "cov_zy", "cov_zx", "cov_yy", "cov_yx", "cov_xx")
_IDX6 = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
#: track-table columns that are layout, not node data: not features, not rebuilt
_LAYOUT = ("track_id", "t", "z", "y", "x", "parent_track_id", "parent_id")
#: derived columns dropped when rebuilding a graph (the table recomputes them)
_DERIVED = ("track_id", "parent_track_id", "parent_id", "lineage_id")


def to_napari_tracks(
    graph: TrackGraph, *, ndim: int | None = None
) -> tuple[np.ndarray, dict[int, list[int]], dict[str, np.ndarray]]:
    """The ``data``, ``graph`` and ``features`` of a napari Tracks layer.

    Parameters
    ----------
    graph : TrackGraph
        A lineage forest (at most one parent per node), positions in µm.
    ndim : {3, 4}, optional
        Dimensions per point besides the track id: 4 = (t, z, y, x), 3 = (t, y, x) for
        2D+t data (needs every z equal; it is dropped). Default: 3 when every z is 0,
        else 4.

    Returns
    -------
    data : ndarray, shape (N, ndim + 1), float64
        Rows ``[track_id, t, z, y, x]`` (or ``[track_id, t, y, x]``), sorted by track id
        (from 1) then frame; positions in µm.
    graph : dict of int to list of int
        Each track that divided from another → ``[parent track]``.
    features : dict of str to ndarray, each of shape (N,)
        ``id`` (node id of each row), ``lineage_id`` (from 1) and the graph's other
        one-dimensional numeric node columns, the covariance as ``cov_zz`` … ``cov_xx``
        (µm²), row-aligned with ``data``.

    Raises
    ------
    InvalidInputError
        If ``graph`` is not a TrackGraph, ``ndim`` is not 3 or 4, or ``ndim=3`` for a
        graph whose z varies.
    GraphError
        If a node has several parents (napari tracks of a candidate graph).
    """
    if not isinstance(graph, TrackGraph):
        raise InvalidInputError(f"to_napari_tracks needs a TrackGraph, got {type(graph).__name__}")
    if graph.num_edges and graph.in_degree().max() > 1:
        bad = graph.ids[graph.in_degree() > 1][:5].tolist()
        raise GraphError(
            f"nodes {bad} have several parents; napari tracks are drawn from a lineage "
            "forest: solve the candidate graph into tracks first"
        )
    ndim = _ndim(graph, ndim)
    table = track_table(graph)
    axes = ("t", "z", "y", "x") if ndim == 4 else ("t", "y", "x")
    data = np.column_stack([table["track_id"], *(table[a] for a in axes)]).astype(np.float64)
    data = data.reshape(-1, ndim + 1)
    features = {"id": table["id"]}
    for name, col in table.items():
        if name in _LAYOUT or name == "id" or col.dtype.kind not in "iufb":
            continue
        features[name] = col
    return data, napari_graph(table), features


def _ndim(graph: TrackGraph, ndim: int | None) -> int:
    z = graph.nodes["z"]
    if ndim is None:
        return 3 if np.all(z == 0) else 4
    if ndim not in (3, 4) or isinstance(ndim, bool):
        raise InvalidInputError(
            f"ndim must be 4 (t, z, y, x) or 3 (t, y, x for 2D+t), got {ndim!r}"
        )
    if ndim == 3 and z.size and np.ptp(z) > 0:
        raise InvalidInputError(
            "ndim=3 drops z, but the graph's z varies (from "
            f"{z.min():g} to {z.max():g} µm): use ndim=4"
        )
    return ndim


def from_napari_tracks(
    data: Any,
    graph: Mapping[int, Any] | None = None,
    features: Any | None = None,
    *,
    ids: Any | None = None,
) -> TrackGraph:
    """Rebuild a :class:`TrackGraph` from napari Tracks layer data.

    Parameters
    ----------
    data : array_like, shape (N, 5) or (N, 4)
        Rows ``[track_id, t, z, y, x]`` or ``[track_id, t, y, x]`` (z = 0), positions in
        µm, sorted by track id then frame (as :func:`to_napari_tracks` gives them); track
        ids and frames whole numbers, frames >= 0.
    graph : dict of int to int or list of int, optional
        Track → parent track(s) (napari's ``graph``). Each parent's last point is linked
        to the child's first point, which must come at a later frame.
    features : mapping of str to array_like, or a pandas DataFrame, optional
        Per-row values, each of length N. ``id`` gives the node ids; ``cov_zz`` …
        ``cov_xx`` (all six) become ``covariance`` (N, 3, 3) µm²; the layout columns
        ``track_id, parent_track_id, parent_id, lineage_id`` are dropped (they follow
        from the links); the others become node columns.
    ids : array_like of int, shape (N,), optional
        Node ids; default ``features["id"]`` when present, else ``0 … N-1``.

    Returns
    -------
    TrackGraph
        Nodes in the rows' order; edges parent → child between consecutive points of a
        track (across skipped frames too) and from parent tracks to their children.

    Raises
    ------
    ShapeError
        If ``data`` is not (N, 4) or (N, 5) or a feature or ``ids`` has not N values.
    InvalidInputError
        On non-finite values, track ids or frames that are not whole numbers, negative
        frames, or rows not sorted by track then frame.
    GraphError
        If ``graph`` names a track that is not in ``data``, a child track starts before
        its parent ends, or node ids repeat.
    """
    rows = _check_data(data)
    n = rows.shape[0]
    track = rows[:, 0].astype(np.int64)
    t = rows[:, 1].astype(np.int64)
    zyx = rows[:, 2:] if rows.shape[1] == 5 else np.column_stack([np.zeros(n), rows[:, 2:]])
    columns = _feature_columns(features, n)
    node_ids = _node_ids(ids, columns, n)
    nodes: dict[str, Any] = {"id": node_ids, "t": t, "z": zyx[:, 0], "y": zyx[:, 1],
                             "x": zyx[:, 2], **columns}
    src, tgt = _edges(track, t, graph)
    try:
        return TrackGraph(nodes, {"source": node_ids[src], "target": node_ids[tgt]})
    except GraphError as err:
        raise GraphError(f"napari tracks: {err}") from err


def _check_data(data: Any) -> np.ndarray:
    try:
        rows = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"napari tracks data must be numbers ({err})") from None
    if rows.ndim != 2 or rows.shape[1] not in (4, 5):
        raise ShapeError(
            "napari tracks data must be (N, 5) rows [track_id, t, z, y, x] or (N, 4) rows "
            f"[track_id, t, y, x], got shape {rows.shape}"
        )
    if not np.all(np.isfinite(rows)):
        raise InvalidInputError(f"napari tracks data has {int((~np.isfinite(rows)).sum())} "
                                "NaN/infinite values; every entry must be a finite number")
    for col, what in ((0, "track ids"), (1, "frames")):
        values = rows[:, col]
        if np.any(values != np.round(values)) or np.any(np.abs(values) > 2**53):
            raise InvalidInputError(f"napari tracks {what} (column {col}) must be whole numbers")
    if np.any(rows[:, 1] < 0):
        raise InvalidInputError("napari tracks frames (column 1) must be >= 0")
    track, t = rows[:, 0], rows[:, 1]
    step = (np.diff(track) > 0) | ((np.diff(track) == 0) & (np.diff(t) > 0))
    if not np.all(step):
        row = int(np.flatnonzero(~step)[0]) + 1
        raise InvalidInputError(
            f"napari tracks data row {row} (track {track[row]:g}, t {t[row]:g}) is out of "
            "order: rows must be sorted by track id, then strictly by frame (one point per "
            "track and frame); sort with order = np.lexsort((data[:, 1], data[:, 0])) and "
            "apply the order to the features too"
        )
    return rows


def _feature_columns(features: Any | None, n: int) -> dict[str, np.ndarray]:
    if features is None:
        return {}
    try:
        names = [str(k) for k in features]
        columns = {name: np.asarray(features[name]) for name in names}
    except (TypeError, KeyError) as err:
        raise InvalidInputError(
            "features must be a mapping of name to per-row values or a pandas DataFrame, "
            f"got {type(features).__name__} ({err})"
        ) from None
    for name, col in columns.items():
        if col.ndim != 1 or col.shape[0] != n:
            raise ShapeError(f"feature {name!r} has shape {col.shape}; expected ({n},), one "
                             "value per row of data")
    for name in _DERIVED:
        columns.pop(name, None)
    if all(c in columns for c in _COV6):
        cov = np.zeros((n, 3, 3))
        for c, (i, j) in zip(_COV6, _IDX6):
            cov[:, i, j] = cov[:, j, i] = np.asarray(columns.pop(c), np.float64)
        columns["covariance"] = cov
    for name in ("t", "z", "y", "x"):
        columns.pop(name, None)
    return columns


def _node_ids(ids: Any | None, columns: dict[str, np.ndarray], n: int) -> np.ndarray:
    given = columns.pop("id", None) if ids is None else np.asarray(ids)
    columns.pop("id", None)
    if given is None:
        return np.arange(n, dtype=np.int64)
    given = np.asarray(given)
    if given.ndim != 1 or given.shape[0] != n:
        raise ShapeError(f"node ids have shape {np.shape(given)}; expected ({n},), one per row")
    if given.dtype.kind not in "iu" and not (
        given.dtype.kind == "f" and np.all(given == np.round(given))
    ):
        raise InvalidInputError("node ids must be whole numbers")
    return given.astype(np.int64)


def _edges(track: np.ndarray, t: np.ndarray,
           graph: Mapping[int, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (source, target) of every link: within tracks, then parent → child."""
    n = track.size
    same = np.flatnonzero(track[1:] == track[:-1]) if n else np.zeros(0, np.int64)
    src, tgt = [same], [same + 1]
    if graph:
        if not isinstance(graph, Mapping):
            raise InvalidInputError(
                f"graph must be a dict of track id → parent track id(s), got "
                f"{type(graph).__name__}"
            )
        tracks, first = np.unique(track, return_index=True)
        last = np.r_[first[1:] - 1, n - 1] if n else first
        children, parents = _graph_pairs(graph)
        for what, values in (("track", children), ("parent track", parents)):
            missing = np.setdiff1d(values, tracks)
            if missing.size:
                raise GraphError(
                    f"napari graph names {what} {missing[:5].tolist()}, which has no rows "
                    "in data; remove it from the graph or add its points"
                )
        child_row = first[np.searchsorted(tracks, children)]
        parent_row = last[np.searchsorted(tracks, parents)]
        early = t[child_row] <= t[parent_row]
        if np.any(early):
            k = int(np.flatnonzero(early)[0])
            raise GraphError(
                f"napari track {int(children[k])} starts at frame {int(t[child_row[k]])}, "
                f"not after its parent track {int(parents[k])} ends (frame "
                f"{int(t[parent_row[k]])}); a child track must start after its parent"
            )
        src.append(parent_row)
        tgt.append(child_row)
    return np.concatenate(src).astype(np.int64), np.concatenate(tgt).astype(np.int64)


def _graph_pairs(graph: Mapping[int, Any]) -> tuple[np.ndarray, np.ndarray]:
    children: list[int] = []
    parents: list[int] = []
    for child, value in graph.items():
        for parent in (value if isinstance(value, (list, tuple, np.ndarray)) else [value]):
            try:
                children.append(int(child))
                parents.append(int(parent))
            except (TypeError, ValueError):
                raise InvalidInputError(
                    f"napari graph entry {child!r}: {value!r} is not track id → parent id(s)"
                ) from None
    return np.asarray(children, np.int64), np.asarray(parents, np.int64)
