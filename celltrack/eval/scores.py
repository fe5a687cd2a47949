"""One entry point for scoring a predicted lineage graph against ground truth."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from celltrack._version import __version__
from celltrack.errors import InvalidInputError
from celltrack.eval.ctc import CTC_WEIGHTS, AOGMCounts, aogm_counts, parent_link_mask
from celltrack.eval.divisions import DivisionScores, division_scores
from celltrack.eval.linajea import LinajeaScores, linajea_scores
from celltrack.eval.matching import (
    POSITION_COLUMNS,
    NodeMatching,
    check_positive,
    match_nodes,
    node_pairs,
)
from celltrack.graph.trackgraph import TrackGraph

__all__ = ["TrackingScores", "evaluate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingScores:
    """All scores of one prediction against one ground truth.

    Attributes
    ----------
    aogm : AOGMCounts
        CTC error counts (NS, FN, FP nodes; ED, EA, EC edges) with AOGM, AOGM₀, DET,
        TRA, LNK as properties.
    divisions : DivisionScores or None
        Division precision / recall / F1 at the frame tolerance (None for many-to-one
        mask matchings).
    linajea : LinajeaScores or None
        Linajea error counts and error-free segment curve (None for CTC folders).
    num_gt_nodes, num_pred_nodes, num_gt_edges, num_pred_edges, num_matched : int
        Sizes and the number of matched node pairs.
    parameters : dict
        Parameters of the evaluation (threshold, sparse flag, tolerance, source).
    version : str
        celltrack version that computed the scores.
    """

    aogm: AOGMCounts
    divisions: DivisionScores | None
    linajea: LinajeaScores | None
    num_gt_nodes: int
    num_pred_nodes: int
    num_gt_edges: int
    num_pred_edges: int
    num_matched: int
    parameters: dict[str, Any] = field(default_factory=dict)
    version: str = __version__

    @property
    def det(self) -> float:
        """CTC DET."""
        return self.aogm.det

    @property
    def tra(self) -> float:
        """CTC TRA."""
        return self.aogm.tra

    @property
    def lnk(self) -> float:
        """CTC LNK."""
        return self.aogm.lnk

    def to_dict(self) -> dict[str, Any]:
        """Nested plain-Python dictionary (JSON-serialisable)."""
        return {
            "det": self.det,
            "tra": self.tra,
            "lnk": self.lnk,
            "aogm": self.aogm.to_dict(),
            "divisions": None if self.divisions is None else self.divisions.to_dict(),
            "linajea": None if self.linajea is None else self.linajea.to_dict(),
            "num_gt_nodes": self.num_gt_nodes,
            "num_pred_nodes": self.num_pred_nodes,
            "num_gt_edges": self.num_gt_edges,
            "num_pred_edges": self.num_pred_edges,
            "num_matched": self.num_matched,
            "parameters": dict(self.parameters),
            "version": self.version,
        }

    def table(self) -> str:
        """A readable multi-line table of the headline numbers."""
        rows: list[tuple[str, str]] = [
            ("DET", _fmt(self.det)),
            ("TRA", _fmt(self.tra)),
            ("LNK", _fmt(self.lnk)),
            ("AOGM / AOGM0", f"{_fmt(self.aogm.aogm, 1)} / {_fmt(self.aogm.aogm0, 1)}"),
        ]
        a = self.aogm
        w = CTC_WEIGHTS
        for label, key, count in (
            ("NS  (merged nodes)", "ns", a.ns), ("FN  nodes", "fn", a.fn_nodes),
            ("FP  nodes", "fp", a.fp_nodes), ("ED  extra edges", "ed", a.ed),
            ("EA  missing edges", "ea", a.ea), ("EC  wrong semantics", "ec", a.ec),
        ):
            rows.append((f"  {label}", f"{count}  (x{w[key]:g})"))
        rows.append(("nodes gt / pred / matched",
                     f"{self.num_gt_nodes} / {self.num_pred_nodes} / {self.num_matched}"))
        rows.append(("edges gt / pred", f"{self.num_gt_edges} / {self.num_pred_edges}"))
        d = self.divisions
        if d is not None:
            rows.append((f"divisions (tolerance {d.tolerance})",
                         f"P {_fmt(d.precision)}  R {_fmt(d.recall)}  F1 {_fmt(d.f1)}"))
            rows.append(("  tp / fp / fn / wrong children",
                         f"{d.tp} / {d.fp} / {d.fn} / {d.wrong_children}"))
        s = self.linajea
        if s is not None:
            kind = "sparse" if s.sparse else "dense"
            rows.append((f"Linajea ({kind} GT) sum of errors", str(s.sum_errors)))
            rows.append(("  FN edges / FP edges", f"{s.fn_edges} / {s.fp_edges}"))
            rows.append(("  identity switches", str(s.identity_switches)))
            rows.append(("  FP / FN divisions", f"{s.fp_divisions} / {s.fn_divisions}"))
            rows.append(("  edge P / R / F1", f"{_fmt(s.edge_precision)} / "
                         f"{_fmt(s.edge_recall)} / {_fmt(s.edge_f1)}"))
            frac = s.error_free_fraction
            for length in (1, 5, 10, 20, 50, 100, 200):
                if length <= frac.size:
                    rows.append((f"  error-free segments L={length}", _fmt(frac[length - 1])))
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)

    def __str__(self) -> str:
        return self.table()


def _fmt(value: float, digits: int = 6) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _check_graph(graph: Any, what: str) -> TrackGraph:
    if not isinstance(graph, TrackGraph):
        raise InvalidInputError(
            f"{what} must be a celltrack TrackGraph, got {type(graph).__name__}; convert "
            "networkx graphs with TrackGraph.from_networkx"
        )
    return graph


def evaluate(
    gt: TrackGraph,
    pred: TrackGraph,
    max_distance: float,
    *,
    sparse_gt: bool = False,
    division_tolerance: int = 1,
    position_columns: Sequence[str] = POSITION_COLUMNS,
    max_segment_length: int | None = None,
) -> TrackingScores:
    """Score a predicted lineage graph against ground truth, both as point graphs.

    Nodes are matched one-to-one per frame within ``max_distance`` µm
    (:func:`~celltrack.eval.matching.match_nodes`); the CTC measures (AOGM and its
    components, DET, TRA, LNK) are computed on that matching (NS is then always 0),
    divisions are scored with a frame tolerance, and Linajea's error counts and
    error-free segment curve are computed from an edge matching with the same
    threshold.

    Parameters
    ----------
    gt, pred : TrackGraph
        Ground truth and prediction; positions in µm; edges parent → child, skip edges
        (gaps) allowed.
    max_distance : float
        Matching threshold (µm, inclusive); > 0.
    sparse_gt : bool
        The ground truth annotates only some cells: Linajea's FP edges and FP divisions
        then only count where ground truth exists. CTC measures and division precision
        assume dense ground truth; read their FP-based parts with care.
    division_tolerance : int
        Frames by which a division may be shifted and still count (≥ 0).
    position_columns : sequence of str
        Node coordinate columns (default ``("z", "y", "x")``).
    max_segment_length : int, optional
        Longest error-free segment length (edges) to report; default: all.

    Returns
    -------
    TrackingScores

    Raises
    ------
    InvalidInputError
        On non-positive thresholds, missing position columns, a negative tolerance, or
        graphs that share no frame.

    Examples
    --------
    >>> from celltrack.graph import TrackGraph
    >>> g = TrackGraph({"id": [1, 2], "t": [0, 1], "z": [0, 0], "y": [0, 0], "x": [0, 1]},
    ...                {"source": [1], "target": [2]})
    >>> evaluate(g, g, max_distance=1.0).tra
    1.0
    """
    gt = _check_graph(gt, "gt")
    pred = _check_graph(pred, "pred")
    thr = check_positive(max_distance, "max_distance")
    tol = division_tolerance
    if isinstance(tol, bool) or not isinstance(tol, (int, np.integer)):
        raise InvalidInputError(
            f"division_tolerance must be an integer >= 0 (frames), got {division_tolerance!r}"
        )
    if division_tolerance < 0:
        raise InvalidInputError(
            f"division_tolerance must be >= 0 frames, got {division_tolerance}"
        )
    if gt.num_nodes and pred.num_nodes and np.intersect1d(gt.frames, pred.frames).size == 0:
        raise InvalidInputError(
            f"gt and pred share no frame: gt has frames {_span(gt.frames)}, pred has "
            f"{_span(pred.frames)}; check that both use the same 0-based frame index"
        )
    if gt.num_nodes == 0:
        logger.warning("the ground truth has no nodes: DET/TRA are undefined (NaN)")
    pairs = node_pairs(gt, pred, thr, position_columns=position_columns)
    matching = match_nodes(gt, pred, thr, pairs=pairs)
    aogm = _aogm_from_matching(gt, pred, matching)
    g_src, g_tgt = gt.edge_index()
    p_src, p_tgt = pred.edge_index()
    div = division_scores(
        gt.t, g_src, g_tgt, pred.t, p_src, p_tgt,
        matching.gt_to_pred(), matching.pred_to_gt(), int(division_tolerance),
    )
    lin = linajea_scores(
        gt, pred, thr, sparse_gt=sparse_gt, max_segment_length=max_segment_length,
        position_columns=position_columns, pairs=pairs,
    )
    return TrackingScores(
        aogm=aogm,
        divisions=div,
        linajea=lin,
        num_gt_nodes=gt.num_nodes,
        num_pred_nodes=pred.num_nodes,
        num_gt_edges=gt.num_edges,
        num_pred_edges=pred.num_edges,
        num_matched=matching.num_matches,
        parameters={
            "source": "points",
            "max_distance_um": thr,
            "sparse_gt": bool(sparse_gt),
            "division_tolerance": int(division_tolerance),
            "position_columns": list(position_columns),
        },
    )


def _span(frames: np.ndarray) -> str:
    return f"{int(frames.min())}..{int(frames.max())}" if frames.size else "none"


def _aogm_from_matching(gt: TrackGraph, pred: TrackGraph, matching: NodeMatching) -> AOGMCounts:
    g_src, g_tgt = gt.edge_index()
    p_src, p_tgt = pred.edge_index()
    return aogm_counts(
        gt.num_nodes, g_src, g_tgt, parent_link_mask(gt.t, g_src, g_tgt, gt.num_nodes),
        pred.num_nodes, p_src, p_tgt, parent_link_mask(pred.t, p_src, p_tgt, pred.num_nodes),
        matching.gt_rows, matching.pred_rows,
    )
