"""Candidate graph: every plausible parent → child link between detections.

From every node at frame t, candidate edges reach the nodes at frames t − 1 … t − k
(k = ``max_gap_frames``) that lie within ``max_distance_um`` of the node's *predicted
parent position*. The predicted parent position comes from the optional node columns
``parent_z, parent_y, parent_x`` (µm, e.g. written by the flow model: where the nucleus
was one frame earlier); where they are absent or NaN the node's own position is used.
For a gap of k frames the prediction is extrapolated linearly,
``query = pos + k · (parent − pos)``.

Every edge gets the features

- ``distance`` (µm): between the parent node and the child node,
- ``pred_distance`` (µm): between the parent node and the child's (extrapolated)
  predicted parent position (equal to ``distance`` without a prediction),
- ``frame_gap`` (int ≥ 1): ``t_child − t_parent``.

All node columns (``score``, ``covariance``, ``tag``, ``parent_*`` …) are kept. The search
uses one :class:`scipy.spatial.cKDTree` per frame and is vectorised per frame pair, so
10⁶ nodes take seconds.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from pydantic import Field, field_validator

from celltrack.config import Config
from celltrack.errors import InvalidInputError
from celltrack.graph.tags import PINNED_IN, PINNED_OUT, approved_mask, tags_of
from celltrack.graph.trackgraph import TrackGraph

__all__ = [
    "PARENT_COLUMNS",
    "CandidateConfig",
    "build_candidates",
    "pins_from_tags",
    "predicted_parent",
]

logger = logging.getLogger(__name__)

#: Node columns holding the predicted parent position (µm, z/y/x).
PARENT_COLUMNS = ("parent_z", "parent_y", "parent_x")


class CandidateConfig(Config):
    """How candidate edges are built (all distances in µm)."""

    max_distance_um: float = Field(
        20.0,
        gt=0,
        description="search radius around the child's predicted parent position (µm)",
    )
    max_gap_frames: int = Field(
        1,
        ge=1,
        description="link to parents up to this many frames back (frames; 1 = consecutive only)",
    )
    max_candidates: int | None = Field(
        None,
        ge=1,
        description="at most this many nearest parents per child and frame gap (count); "
        "None = all",
    )
    use_predicted_position: bool = Field(
        True,
        description="search around parent_z/y/x when those node columns exist "
        "(else around the node)",
    )
    field_of_view_um: (
        tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | None
    ) = Field(
        None,
        description="spatial extent ((z_lo, z_hi), (y_lo, y_hi), (x_lo, x_hi)) of the field of "
        "view (µm); None = bounding box of the nodes; stored in graph attrs['roi_um']",
    )

    @field_validator("field_of_view_um")
    @classmethod
    def _check_fov(cls, value):
        if value is not None:
            for lo, hi in value:
                if not hi >= lo:
                    raise ValueError(f"field_of_view_um needs lo <= hi per axis, got ({lo}, {hi})")
        return value


def predicted_parent(graph: TrackGraph, use_prediction: bool = True) -> np.ndarray:
    """Predicted parent position of every node, shape (N, 3) in µm (z, y, x).

    Uses the node columns ``parent_z/y/x`` where present and finite, else the node's own
    position.
    """
    pos = graph.positions
    if not use_prediction or not all(c in graph.nodes for c in PARENT_COLUMNS):
        return pos
    pred = np.stack([np.asarray(graph.nodes[c], dtype=np.float64) for c in PARENT_COLUMNS], axis=1)
    bad = ~np.all(np.isfinite(pred), axis=1)
    pred[bad] = pos[bad]
    return pred


def _roi(graph: TrackGraph, fov) -> list[list[float]]:
    t = graph.t
    pos = graph.positions
    trange = [int(t.min()), int(t.max())] if t.size else [0, -1]
    if fov is not None:
        space = [[float(lo), float(hi)] for lo, hi in fov]
    elif pos.shape[0]:
        space = [[float(lo), float(hi)] for lo, hi in zip(pos.min(axis=0), pos.max(axis=0))]
    else:
        space = [[0.0, 0.0]] * 3
    return [trange, *space]


def _pairs_within(
    parent_pos: np.ndarray, query: np.ndarray, radius: float, k: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (parent_row, query_row) with ‖parent − query‖ ≤ radius (local rows)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(parent_pos)
    if k is not None:
        kk = min(k, parent_pos.shape[0])
        dist, idx = tree.query(query, k=kk, distance_upper_bound=radius)
        dist = dist.reshape(query.shape[0], kk)
        idx = idx.reshape(query.shape[0], kk)
        ok = np.isfinite(dist) & (dist <= radius)
        qrow = np.broadcast_to(np.arange(query.shape[0])[:, None], idx.shape)
        return idx[ok].astype(np.int64), qrow[ok].astype(np.int64)
    qtree = cKDTree(query)
    pairs = tree.sparse_distance_matrix(qtree, radius, output_type="ndarray")
    return pairs["i"].astype(np.int64), pairs["j"].astype(np.int64)


def build_candidates(
    spots: TrackGraph, cfg: CandidateConfig | None = None, *, progress: bool = False
) -> TrackGraph:
    """Build the candidate graph of ``spots``.

    Parameters
    ----------
    spots : TrackGraph
        Detections (N nodes, positions in µm). Existing edges are ignored and dropped.
        Optional node columns ``parent_z/y/x`` (µm) give each node's predicted position
        one frame earlier.
    cfg : CandidateConfig, optional
        Search radius (µm), frame gap, k nearest; defaults if omitted.
    progress : bool
        Show a tqdm progress bar over frames.

    Returns
    -------
    TrackGraph
        Same nodes and node columns; edges parent (t − k) → child (t) with columns
        ``distance`` (µm), ``pred_distance`` (µm) and ``frame_gap`` (int64), ordered by
        child frame, then child, then ``pred_distance``. ``attrs['roi_um']`` holds
        ``[[t_min, t_max], [z_lo, z_hi], [y_lo, y_hi], [x_lo, x_hi]]`` and
        ``attrs['candidates']`` the config dump.

    Raises
    ------
    InvalidInputError
        If ``spots`` is not a TrackGraph.

    Examples
    --------
    >>> g = TrackGraph.from_positions([0, 1], [[0, 0, 0], [0, 0, 3]])
    >>> build_candidates(g, CandidateConfig(max_distance_um=5)).num_edges
    1
    """
    if not isinstance(spots, TrackGraph):
        raise InvalidInputError(
            f"build_candidates needs a TrackGraph of spots, got {type(spots).__name__}"
        )
    cfg = CandidateConfig() if cfg is None else cfg
    if not isinstance(cfg, CandidateConfig):
        raise InvalidInputError(f"cfg must be a CandidateConfig, got {type(cfg).__name__}")
    start = time.perf_counter()
    n = spots.num_nodes
    t = spots.t
    pos = spots.positions
    pred = predicted_parent(spots, cfg.use_predicted_position)
    order = np.argsort(t, kind="stable")
    ts = t[order]
    frames, first = np.unique(ts, return_index=True)
    bounds = dict(zip(frames.tolist(), zip(first.tolist(), [*first[1:].tolist(), n])))

    src_parts, tgt_parts, gap_parts = [], [], []
    frame_iter = frames.tolist()
    if progress:
        from tqdm import tqdm

        frame_iter = tqdm(frame_iter, desc="candidates", unit="frame")
    for frame in frame_iter:
        lo, hi = bounds[frame]
        child_rows = order[lo:hi]
        for gap in range(1, cfg.max_gap_frames + 1):
            if frame - gap not in bounds:
                continue
            plo, phi = bounds[frame - gap]
            parent_rows = order[plo:phi]
            query = pos[child_rows] + gap * (pred[child_rows] - pos[child_rows])
            p_local, c_local = _pairs_within(
                pos[parent_rows], query, cfg.max_distance_um, cfg.max_candidates
            )
            src_parts.append(parent_rows[p_local])
            tgt_parts.append(child_rows[c_local])
            gap_parts.append(np.full(p_local.size, gap, np.int64))

    src = np.concatenate(src_parts) if src_parts else np.zeros(0, np.int64)
    tgt = np.concatenate(tgt_parts) if tgt_parts else np.zeros(0, np.int64)
    gap = np.concatenate(gap_parts) if gap_parts else np.zeros(0, np.int64)
    distance = np.linalg.norm(pos[src] - pos[tgt], axis=1)
    query = pos[tgt] + gap[:, None] * (pred[tgt] - pos[tgt])
    pred_distance = np.linalg.norm(pos[src] - query, axis=1)
    edge_order = np.lexsort((pred_distance, tgt, t[tgt]))
    ids = spots.ids
    edges = {
        "source": ids[src[edge_order]],
        "target": ids[tgt[edge_order]],
        "distance": distance[edge_order],
        "pred_distance": pred_distance[edge_order],
        "frame_gap": gap[edge_order],
    }
    attrs = dict(spots.attrs)
    attrs["roi_um"] = _roi(spots, cfg.field_of_view_um)
    attrs["candidates"] = cfg.model_dump(mode="json")
    nodes = {name: np.asarray(col) for name, col in spots.nodes.items()}
    out = TrackGraph(nodes, edges, attrs=attrs, validate=False)
    logger.info(
        "candidate graph: %d nodes, %d edges (%.2f per node) in %.2f s",
        n,
        out.num_edges,
        out.num_edges / max(n, 1),
        time.perf_counter() - start,
    )
    return out


def pins_from_tags(graph: TrackGraph) -> TrackGraph:
    """Copy of ``graph`` with ``pin`` columns derived from proofreading annotations.

    Node ``pin`` (int8): 1 for tags ``tp``/``fn`` (must be selected), 0 for ``fp``/``tn``
    (must be excluded), −1 otherwise (free; also when there is no ``tag`` column).
    Edge ``pin`` (int8): 1 where the edge column ``approved`` is True, else −1. Existing
    ``pin`` columns are replaced.

    Parameters
    ----------
    graph : TrackGraph
        A candidate graph, optionally with node column ``tag`` and edge column ``approved``.

    Returns
    -------
    TrackGraph
        A new graph; ``graph`` is not modified.
    """
    if not isinstance(graph, TrackGraph):
        raise InvalidInputError(f"pins_from_tags needs a TrackGraph, got {type(graph).__name__}")
    out = graph.copy()
    node_pin = np.full(graph.num_nodes, -1, np.int8)
    if "tag" in graph.nodes:
        tag = tags_of(graph)
        node_pin[np.isin(tag, PINNED_IN)] = 1
        node_pin[np.isin(tag, PINNED_OUT)] = 0
    out.set_node_column("pin", node_pin)
    edge_pin = np.full(graph.num_edges, -1, np.int8)
    edge_pin[approved_mask(graph)] = 1
    out.set_edge_column("pin", edge_pin)
    return out
