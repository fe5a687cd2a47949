"""Tracks as one table in the layout napari's Tracks layer and TrackMate users expect.

One row per node, sorted by track then time, with the columns

``track_id, t, z, y, x, parent_track_id, id, parent_id, lineage_id`` and then every other
one-dimensional node column (``score``, ``tag``, …) and the covariance's six unique
entries (``cov_zz, cov_zy, cov_zx, cov_yy, cov_yx, cov_xx``, µm²).

- ``track_id`` (from 1) numbers the *tracks*: chains of nodes without a division, the
  segments napari draws as one line and the Cell Tracking Challenge labels as one cell.
  Tracks are numbered in order of their first frame (then of their first node id).
- ``t`` is the frame; ``z, y, x`` are positions in µm (a napari Tracks layer shows them at
  the right size with ``scale=(1, 1, 1, 1)``; divide by the voxel size for voxels).
- ``parent_track_id`` is the track a track divided from (-1 for a track that starts
  without a parent) — napari's ``graph`` and ultrack's column of the same name.
- ``id`` and ``parent_id`` are the node's and its parent node's ids (-1: none), so
  :func:`celltrack.io.read_tracks` reads the table back as the same forest.
- ``lineage_id`` (from 1) numbers the lineages: a root and all its descendants (TrackMate's
  ``TRACK_ID``).

In napari::

    table = track_table(graph)
    data = np.column_stack([table[c] for c in ("track_id", "t", "z", "y", "x")])
    viewer.add_tracks(data, graph=napari_graph(table))
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np

from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.io.atomic import atomic_write_text, refuse_existing

__all__ = ["TRACK_TABLE_COLUMNS", "napari_graph", "track_table", "write_track_table"]

logger = logging.getLogger(__name__)

#: The leading columns of every track table, in order.
TRACK_TABLE_COLUMNS = (
    "track_id",
    "t",
    "z",
    "y",
    "x",
    "parent_track_id",
    "id",
    "parent_id",
    "lineage_id",
)

_COV6 = ("cov_zz", "cov_zy", "cov_zx", "cov_yy", "cov_yx", "cov_xx")
_IDX6 = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def _rank_labels(labels: np.ndarray, t: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Renumber ``labels`` 1, 2, … in order of each label's first (t, id)."""
    if labels.size == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((ids, t))  # rows by time, then node id
    seen_labels, first = np.unique(labels[order], return_index=True)
    rank = np.empty(seen_labels.size, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, seen_labels.size + 1)
    return rank[np.searchsorted(seen_labels, labels)]


def track_table(graph: TrackGraph) -> dict[str, np.ndarray]:
    """The tracks of ``graph`` as columns, one row per node, sorted by track then time.

    Parameters
    ----------
    graph : TrackGraph
        Tracks (µm), edges parent → child. A node with several parents (not a forest)
        gets one of them as ``parent_id``.

    Returns
    -------
    dict of str to ndarray, each of shape (N,)
        :data:`TRACK_TABLE_COLUMNS` first (int64 ids and frames, float64 positions in µm),
        then the other one-dimensional node columns in the graph's order, then the
        covariance's six unique entries (µm²) when the graph has one. Columns with more
        dimensions are left out (with a logged warning).

    Raises
    ------
    InvalidInputError
        If ``graph`` is not a TrackGraph.

    Examples
    --------
    >>> g = TrackGraph.from_positions([0, 1, 2, 2], np.zeros((4, 3)))
    >>> g = g.add_edges({"source": [0, 1, 1], "target": [1, 2, 3]})  # 1 divides into 2, 3
    >>> table = track_table(g)
    >>> table["track_id"].tolist(), table["parent_track_id"].tolist()
    ([1, 1, 2, 3], [-1, -1, 1, 1])
    """
    if not isinstance(graph, TrackGraph):
        raise InvalidInputError(f"track_table needs a TrackGraph, got {type(graph).__name__}")
    nodes = graph.nodes
    ids = np.asarray(nodes["id"], np.int64)
    t = np.asarray(nodes["t"], np.int64)
    n = graph.num_nodes
    track = _rank_labels(graph.tracklets(), t, ids)
    lineage = _rank_labels(graph.lineages(), t, ids)
    parent = np.full(n, -1, np.int64)
    parent_row = np.full(n, -1, np.int64)
    if graph.num_edges:
        src, tgt = graph.edge_index()
        parent_row[tgt] = src
        parent[tgt] = ids[src]
    # a track's parent: the track of its first node's parent (rows of one track share it
    # only at the first node; later nodes' parents are in the same track)
    parent_track = np.where(parent_row >= 0, track[np.maximum(parent_row, 0)], -1)
    parent_track = np.where(parent_track == track, -1, parent_track)
    first_parent = np.full(int(track.max(initial=0)) + 1, -1, np.int64)
    has = parent_track >= 0
    first_parent[track[has]] = parent_track[has]
    parent_track = first_parent[track]

    columns: dict[str, np.ndarray] = {
        "track_id": track,
        "t": t,
        "z": np.asarray(nodes["z"], np.float64),
        "y": np.asarray(nodes["y"], np.float64),
        "x": np.asarray(nodes["x"], np.float64),
        "parent_track_id": parent_track,
        "id": ids,
        "parent_id": parent,
        "lineage_id": lineage,
    }
    for name, col in nodes.items():
        if name in columns or name == "covariance":
            continue
        if col.ndim != 1:
            logger.warning("node column '%s' with shape %s is not in the table", name, col.shape)
            continue
        columns[name] = col
    if "covariance" in nodes:
        cov = np.asarray(nodes["covariance"], np.float64)
        for name, (i, j) in zip(_COV6, _IDX6):
            columns[name] = cov[:, i, j]
    order = np.lexsort((ids, t, track))
    return {name: col[order] for name, col in columns.items()}


def napari_graph(table: dict[str, np.ndarray]) -> dict[int, list[int]]:
    """napari's Tracks ``graph``: each track that divided from another → [its parent track].

    Parameters
    ----------
    table : dict of str to ndarray
        A :func:`track_table` (needs ``track_id`` and ``parent_track_id``).

    Returns
    -------
    dict of int to list of int
    """
    missing = [c for c in ("track_id", "parent_track_id") if c not in table]
    if missing:
        raise InvalidInputError(f"napari_graph needs a track table; columns {missing} missing")
    pairs = {
        int(k): int(p)
        for k, p in zip(table["track_id"].tolist(), table["parent_track_id"].tolist())
        if p >= 0
    }
    return {k: [p] for k, p in sorted(pairs.items())}


def _cell(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else repr(float(value))
    return "" if value is None else str(value)


def write_track_table(graph: TrackGraph, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write :func:`track_table` of ``graph`` as one CSV file (atomically).

    The file reads back with :func:`celltrack.io.read_tracks` (its ``id`` / ``parent_id``
    columns give the links) as long as no ``<stem>_links.csv`` lies next to it.

    Parameters
    ----------
    graph : TrackGraph
        Tracks (µm).
    path : str or Path
        ``.csv`` output.
    overwrite : bool
        Replace an existing file; otherwise an existing ``path`` is an error and nothing
        is written.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False (CLI: ``--force``).
    InvalidInputError
        If ``path`` does not end in ``.csv`` or ``graph`` is not a TrackGraph.
    """
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise InvalidInputError(f"write_track_table writes a .csv file, got {path.name!r}")
    table = track_table(graph)
    refuse_existing(path, overwrite)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = list(table)
    writer.writerow(names)
    for row in zip(*(table[n].tolist() for n in names)):
        writer.writerow([_cell(v) for v in row])
    return atomic_write_text(path, buffer.getvalue())
