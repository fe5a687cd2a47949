"""Tracking metrics: CTC AOGM/DET/TRA/LNK, division F1, Linajea sparse-GT errors.

Entry points: :func:`evaluate` for point graphs (TrackGraph vs TrackGraph) and
:func:`evaluate_ctc` for Cell Tracking Challenge folders. Plots
(:func:`plot_scores` and friends) import matplotlib only when they draw.
"""

from celltrack.eval.annotator import (
    EffortCurve,
    EffortRow,
    RoundReport,
    SimulatedAnnotator,
    run_effort_curve,
)
from celltrack.eval.ctc import CTC_WEIGHTS, AOGMCounts, aogm_counts, parent_link_mask
from celltrack.eval.ctc_folder import evaluate_ctc, match_masks, read_track_file
from celltrack.eval.divisions import DivisionScores, division_scores
from celltrack.eval.linajea import EdgeMatching, LinajeaScores, linajea_scores, match_edges
from celltrack.eval.matching import NodeMatching, match_nodes, node_pairs
from celltrack.eval.plots import (
    plot_effort_curve,
    plot_error_counts,
    plot_error_free_segments,
    plot_scores,
)
from celltrack.eval.scores import TrackingScores, evaluate

__all__ = [
    "CTC_WEIGHTS",
    "AOGMCounts",
    "DivisionScores",
    "EdgeMatching",
    "EffortCurve",
    "EffortRow",
    "LinajeaScores",
    "NodeMatching",
    "RoundReport",
    "SimulatedAnnotator",
    "TrackingScores",
    "aogm_counts",
    "division_scores",
    "evaluate",
    "evaluate_ctc",
    "linajea_scores",
    "match_edges",
    "match_masks",
    "match_nodes",
    "node_pairs",
    "parent_link_mask",
    "plot_effort_curve",
    "plot_error_counts",
    "plot_error_free_segments",
    "plot_scores",
    "read_track_file",
    "run_effort_curve",
]
