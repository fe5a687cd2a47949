"""Tracking metrics: CTC AOGM/DET/TRA/LNK, division F1, Linajea sparse-GT errors.

Entry points: :func:`evaluate` for point graphs (TrackGraph vs TrackGraph) and
:func:`evaluate_ctc` for Cell Tracking Challenge folders. Plots live in
:mod:`celltrack.eval.plots` (matplotlib is imported only there).
"""

from celltrack.eval.ctc import CTC_WEIGHTS, AOGMCounts, aogm_counts, parent_link_mask
from celltrack.eval.ctc_folder import evaluate_ctc, match_masks, read_track_file
from celltrack.eval.divisions import DivisionScores, division_scores
from celltrack.eval.linajea import EdgeMatching, LinajeaScores, linajea_scores, match_edges
from celltrack.eval.matching import NodeMatching, match_nodes
from celltrack.eval.scores import TrackingScores, evaluate

__all__ = [
    "CTC_WEIGHTS",
    "AOGMCounts",
    "DivisionScores",
    "EdgeMatching",
    "LinajeaScores",
    "NodeMatching",
    "TrackingScores",
    "aogm_counts",
    "division_scores",
    "evaluate",
    "evaluate_ctc",
    "linajea_scores",
    "match_edges",
    "match_masks",
    "match_nodes",
    "parent_link_mask",
    "read_track_file",
]
