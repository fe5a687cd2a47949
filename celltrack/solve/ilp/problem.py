"""The linking problem as arrays: node/edge features, free-appear masks and pins.

:class:`LinkingProblem` is read once from a candidate :class:`~celltrack.graph.TrackGraph`
and is all that cost and constraint terms look at, so they never touch the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from celltrack.graph import TrackGraph
from celltrack.solve.validate import check_graph, edge_feature, node_feature, pins, roi_um

__all__ = ["LinkingProblem", "spatial_roi"]


def spatial_roi(graph: TrackGraph) -> tuple[np.ndarray, np.ndarray]:
    """Frame range and spatial box of a graph.

    Returns
    -------
    t_range : ndarray, shape (2,)
        First and last frame (inclusive), from ``attrs["roi_um"][0]`` or the nodes.
    box : ndarray, shape (3, 2)
        ``[[z_lo, z_hi], [y_lo, y_hi], [x_lo, x_hi]]`` in µm, from ``attrs["roi_um"]`` or
        the bounding box of the nodes.
    """
    roi = roi_um(graph)
    if roi is not None:
        return roi[0], roi[1:]
    pos = graph.positions
    t = graph.t
    return (
        np.array([t.min(), t.max()], np.float64),
        np.stack([pos.min(axis=0), pos.max(axis=0)], axis=1),
    )


@dataclass
class LinkingProblem:
    """Array view of a candidate graph for the tree ILP.

    Attributes
    ----------
    num_nodes, num_edges : int
        N and E.
    src, tgt : ndarray of int64, shape (E,)
        Row indices of each edge's parent (earlier) and child (later) node.
    t : ndarray of int64, shape (N,)
        Node frames.
    positions : ndarray, shape (N, 3)
        Node positions (z, y, x) in µm.
    score : ndarray, shape (N,)
        Node column ``score`` (0 where absent).
    edge_columns : dict of str to ndarray
        All edge columns, each shape (E,).
    t_range : ndarray, shape (2,)
        First and last frame of the roi (inclusive).
    box : ndarray, shape (3, 2)
        Spatial roi in µm.
    appear_free : ndarray of bool, shape (N,)
        Node column ``appear_free`` (False where absent).
    disappear_free : ndarray of bool, shape (N,)
        Node column ``disappear_free`` (False where absent): ending a track here is free
        (e.g. at the end of a block's context in block-wise solving).
    node_pin, edge_pin : ndarray of int8, shapes (N,), (E,)
        1 = must be selected, 0 = must be excluded, -1 = free.
    """

    num_nodes: int
    num_edges: int
    src: np.ndarray
    tgt: np.ndarray
    t: np.ndarray
    positions: np.ndarray
    score: np.ndarray
    edge_columns: dict[str, np.ndarray]
    t_range: np.ndarray
    box: np.ndarray
    appear_free: np.ndarray
    disappear_free: np.ndarray
    node_pin: np.ndarray
    edge_pin: np.ndarray

    @classmethod
    def from_graph(cls, graph: TrackGraph) -> LinkingProblem:
        """Read a candidate graph, validated by :mod:`celltrack.solve.validate`.

        Raises
        ------
        InvalidInputError, GraphError
            Not a non-empty TrackGraph, a bad ``pin`` or ``score`` column or ``roi_um``.
        """
        check_graph(graph, "the tree ILP")
        src, tgt = graph.edge_index()
        n, m = graph.num_nodes, graph.num_edges
        nodes, edges = graph.nodes, graph.edges
        score = node_feature(graph, "score", 0.0)
        appear_free, disappear_free = (
            np.asarray(nodes[name]).astype(bool) if name in nodes else np.zeros(n, bool)
            for name in ("appear_free", "disappear_free")
        )
        node_pin = pins(graph, "node")
        edge_pin = pins(graph, "edge")
        t_range, box = spatial_roi(graph)
        return cls(
            num_nodes=n,
            num_edges=m,
            src=np.asarray(src, np.int64),
            tgt=np.asarray(tgt, np.int64),
            t=np.asarray(graph.t, np.int64),
            positions=graph.positions,
            score=score,
            edge_columns={k: np.asarray(v) for k, v in edges.items()},
            t_range=t_range,
            box=box,
            appear_free=appear_free,
            disappear_free=disappear_free,
            node_pin=node_pin,
            edge_pin=edge_pin,
        )

    def edge_feature(self, name: str) -> np.ndarray:
        """Edge column ``name`` as float64 (E,); error if missing or not finite."""
        return edge_feature(self.edge_columns, name, setting="ILPConfig.edge_feature")

    def near_border(self, distance_um: float) -> np.ndarray:
        """Nodes closer than ``distance_um`` to the spatial roi border, bool (N,).

        Axes whose roi extent is zero (2D+t data: z) are ignored.
        """
        if distance_um <= 0:
            return np.zeros(self.num_nodes, bool)
        lo, hi = self.box[:, 0], self.box[:, 1]
        flat = (hi - lo) <= 0
        gap = np.minimum(self.positions - lo, hi - self.positions)
        gap[:, flat] = np.inf
        return np.any(gap < distance_um, axis=1)

    def in_degree(self) -> np.ndarray:
        """Candidate parents per node, (N,)."""
        return np.bincount(self.tgt, minlength=self.num_nodes)

    def out_degree(self) -> np.ndarray:
        """Candidate children per node, (N,)."""
        return np.bincount(self.src, minlength=self.num_nodes)
