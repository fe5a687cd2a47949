"""ELEPHANT's proofreading bookkeeping on a project graph: merging a frame's new predictions.

The tag vocabulary and its re-check tables live in :mod:`celltrack.graph.tags`.

Node tags (see DESIGN.md, "Annotation tags"): ``tp`` confirmed nucleus, ``fn`` nucleus a
person added (the model missed it), ``fp`` prediction a person rejected, ``tn`` rejected
region the model no longer fires on, ``tb`` / ``fb`` true / false periphery marks,
``unlabeled`` prediction nobody reviewed. The rules:

- a person adds a spot → ``fn``; accepts a prediction → ``tp``; rejects it → ``fp``;
- before new predictions replace frame t's, the frame's tags are reset *pessimistically*
  (:func:`reset_tags`: tp → fn, fp → tn, fb → tb), and its ``unlabeled`` spots that carry
  no approved link are deleted;
- each new prediction is matched to the nearest remaining spot of the frame closer than
  the suppression distance: the spot is re-tagged (:func:`found_tags`: fn → tp, the model
  finds it; tn → fp, the model still fires there; tb → fb) and the prediction dropped;
  an unmatched prediction is added as ``unlabeled``;
- only reviewed spots (any tag but ``unlabeled``) train the detector; only approved links
  train the flow model and pin the linkers.

Nothing here touches files or models: every function returns new arrays or graphs.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from celltrack.errors import GraphError, InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.graph.tags import TAG_DTYPE, Tag, approved_mask, found_tags, reset_tags, tags_of
from celltrack.graph.trackgraph import concat

__all__ = ["merge_predictions"]


def _frame_predictions(predictions: TrackGraph, frame: int) -> TrackGraph:
    if not isinstance(predictions, TrackGraph):
        raise InvalidInputError(
            f"predictions must be a TrackGraph, got {type(predictions).__name__}"
        )
    if predictions.num_nodes and np.any(predictions.t != frame):
        other = np.unique(predictions.t[predictions.t != frame])[:5].tolist()
        raise InvalidInputError(
            f"merge_predictions merges one frame ({frame}) but predictions also lie in "
            f"frames {other}; pass predictions.subgraph(nodes=predictions.t == {frame})"
        )
    return predictions


def merge_predictions(
    annotations: TrackGraph,
    predictions: TrackGraph,
    frame: int,
    distance_um: float,
    *,
    next_id: int | None = None,
) -> tuple[TrackGraph, dict[str, int]]:
    """Replace frame ``frame``'s predictions by new ones, with ELEPHANT's tag re-check.

    Steps (all on frame ``frame``; other frames are untouched):

    1. reset reviewed tags pessimistically (:func:`reset_tags`);
    2. delete ``unlabeled`` spots that carry no approved link (and their links);
    3. match every new prediction to the nearest remaining spot closer than
       ``distance_um``: the spot gets :func:`found_tags` (fn → tp, tn → fp, tb → fb) and
       the prediction is dropped (several predictions may land on one spot);
    4. add the unmatched predictions as ``unlabeled`` spots with fresh ids.

    Parameters
    ----------
    annotations : TrackGraph
        The project graph (node column ``tag``; edge column ``approved`` optional).
    predictions : TrackGraph
        New detections of ``frame`` only (``covariance``, ``score`` kept when present).
    frame : int
        The frame being re-predicted.
    distance_um : float
        Suppression distance (µm, ≥ 0; a prediction matches a spot closer than this).
    next_id : int, optional
        First id for added predictions (default: one above the largest id in use).

    Returns
    -------
    graph : TrackGraph
        The merged graph.
    stats : dict
        ``deleted`` (unreviewed spots removed), ``matched`` (spots re-found),
        ``suppressed`` (predictions dropped), ``added`` (new ``unlabeled`` spots).
    """
    if not isinstance(annotations, TrackGraph):
        raise InvalidInputError(
            f"annotations must be a TrackGraph, got {type(annotations).__name__}"
        )
    if not np.isfinite(distance_um) or distance_um < 0:
        raise InvalidInputError(f"distance_um must be a finite distance ≥ 0 µm, got {distance_um}")
    frame = int(frame)
    predictions = _frame_predictions(predictions, frame)
    graph = annotations.copy()
    n = graph.num_nodes
    tags = tags_of(graph)
    in_frame = graph.t == frame
    tags[in_frame] = reset_tags(tags[in_frame])

    approved = approved_mask(graph)
    on_approved = np.zeros(n, bool)
    if approved.any():
        src, tgt = graph.edge_index()
        on_approved[src[approved]] = True
        on_approved[tgt[approved]] = True
    delete = in_frame & (tags == Tag.UNLABELED) & ~on_approved
    graph.set_node_column("tag", tags)
    graph = graph.subgraph(nodes=~delete)
    stats = {"deleted": int(delete.sum()), "matched": 0, "suppressed": 0, "added": 0}

    keep_pred = np.ones(predictions.num_nodes, bool)
    rows = graph.rows_at(frame)
    if predictions.num_nodes and rows.size and distance_um > 0:
        tree = cKDTree(graph.positions[rows])
        dist, nearest = tree.query(predictions.positions, k=1)
        hit = np.isfinite(dist) & (dist < distance_um)
        matched_rows = np.unique(rows[nearest[hit]])
        tags = tags_of(graph)
        tags[matched_rows] = found_tags(tags[matched_rows])
        graph.set_node_column("tag", tags)
        keep_pred &= ~hit
        stats["matched"] = int(matched_rows.size)
        stats["suppressed"] = int(hit.sum())

    new = predictions.subgraph(nodes=keep_pred)
    if new.num_nodes:
        used = int(annotations.ids.max()) + 1 if n else 0
        start = used if next_id is None else int(next_id)
        if start < used:
            raise GraphError(f"next_id {start} would reuse a node id; give at least {used}")
        columns = {k: np.asarray(v) for k, v in new.nodes.items() if k not in ("id", "tag")}
        columns["id"] = np.arange(start, start + new.num_nodes, dtype=np.int64)
        columns["tag"] = np.full(new.num_nodes, Tag.UNLABELED.value, dtype=TAG_DTYPE)
        added = TrackGraph(columns, validate=False)
        attrs = dict(graph.attrs)
        graph = concat([graph, added])
        graph.attrs = attrs
        stats["added"] = new.num_nodes
    graph.set_node_column("tag", tags_of(graph))
    return graph, stats
