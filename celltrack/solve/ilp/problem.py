"""The linking problem as arrays: node/edge features, free-appear masks and pins.

:class:`LinkingProblem` is read once from a candidate :class:`~celltrack.graph.TrackGraph`
and is all that cost and constraint terms look at, so they never touch the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from celltrack.errors import GraphError, InvalidInputError
from celltrack.graph import TrackGraph

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
    roi = graph.attrs.get("roi_um")
    if roi is not None:
        try:
            arr = np.asarray(roi, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.shape != (4, 2) or not np.all(np.isfinite(arr)):
            raise InvalidInputError(
                "graph attrs['roi_um'] must be [[t_min, t_max], [z_lo, z_hi], [y_lo, y_hi], "
                f"[x_lo, x_hi]] (frames, µm), got {roi!r}"
            )
        return arr[0], arr[1:]
    pos = graph.positions
    t = graph.t
    return (
        np.array([t.min(), t.max()], np.float64),
        np.stack([pos.min(axis=0), pos.max(axis=0)], axis=1),
    )


def _pin_column(values: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        return arr.astype(np.int8)
    if arr.dtype.kind == "f":
        arr = np.where(np.isnan(arr), -1, arr)
    if arr.dtype.kind not in "iuf" or not np.all(np.isin(arr, (-1, 0, 1))):
        raise InvalidInputError(
            f"{what} column 'pin' must hold -1 (free), 0 (excluded) or 1 (selected), got "
            f"values {np.unique(arr)[:5].tolist()}"
        )
    return arr.astype(np.int8)


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
        """Read a candidate graph; raise :class:`InvalidInputError` on unusable input."""
        if not isinstance(graph, TrackGraph):
            raise InvalidInputError(
                f"the ILP links a celltrack TrackGraph of candidates, got {type(graph).__name__}"
            )
        if graph.num_nodes == 0:
            raise GraphError(
                "the candidate graph has no nodes: nothing to link. Check the detection step "
                "(score threshold) or the roi the graph was cut to."
            )
        src, tgt = graph.edge_index()
        n, m = graph.num_nodes, graph.num_edges
        nodes, edges = graph.nodes, graph.edges
        score = np.zeros(n)
        if "score" in nodes:
            score = np.asarray(nodes["score"], dtype=np.float64)
            if score.ndim != 1 or not np.all(np.isfinite(score)):
                raise InvalidInputError(
                    "node column 'score' must be finite numbers (one per node); found NaN/inf"
                )
        appear_free, disappear_free = (
            np.asarray(nodes[name]).astype(bool) if name in nodes else np.zeros(n, bool)
            for name in ("appear_free", "disappear_free")
        )
        node_pin = np.full(n, -1, np.int8)
        if "pin" in nodes:
            node_pin = _pin_column(nodes["pin"], "node")
        edge_pin = np.full(m, -1, np.int8)
        if "pin" in edges and m:
            edge_pin = _pin_column(edges["pin"], "edge")
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
        if name not in self.edge_columns:
            raise InvalidInputError(
                f"edge feature '{name}' is not an edge column; available: "
                f"{sorted(self.edge_columns)}. Build candidates with "
                "celltrack.graph.candidates.build_candidates or set ILPConfig.edge_feature."
            )
        values = np.asarray(self.edge_columns[name], dtype=np.float64)
        if values.ndim != 1 or not np.all(np.isfinite(values)):
            raise InvalidInputError(f"edge column '{name}' must be finite numbers, found NaN/inf")
        return values

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
