"""Tiny hand-built graphs for the eval tests."""

from __future__ import annotations

import numpy as np

from celltrack.graph import TrackGraph


def graph(nodes, edges=()) -> TrackGraph:
    """Build a graph from ``nodes = [(id, t, x), ...]`` (or ``(id, t, z, y, x)``) and
    ``edges = [(source, target), ...]``; unspecified z and y are 0 µm."""
    rows = [n if len(n) == 5 else (n[0], n[1], 0.0, 0.0, n[2]) for n in nodes]
    arr = np.array(rows, dtype=float).reshape(-1, 5)
    e = np.array(edges, dtype=np.int64).reshape(-1, 2)
    return TrackGraph(
        {"id": arr[:, 0].astype(int), "t": arr[:, 1].astype(int), "z": arr[:, 2],
         "y": arr[:, 3], "x": arr[:, 4]},
        {"source": e[:, 0], "target": e[:, 1]},
    )
