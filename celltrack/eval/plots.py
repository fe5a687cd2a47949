"""Plots of tracking scores (matplotlib, imported only when a plot is drawn)."""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from celltrack.errors import DependencyError, InvalidInputError
from celltrack.eval.scores import TrackingScores

__all__ = ["ERROR_LABELS", "plot_error_counts", "plot_error_free_segments", "plot_scores"]


def _pyplot():
    """matplotlib.pyplot, switched to the Agg backend on a headless Linux machine."""
    try:
        import matplotlib

        headless = sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        )
        if "matplotlib.pyplot" not in sys.modules and headless and not os.environ.get("MPLBACKEND"):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - matplotlib is a dependency
        raise DependencyError("plotting needs matplotlib: pip install matplotlib") from err
    return plt


def _scores_list(scores: TrackingScores | dict[str, TrackingScores]) -> dict[str, TrackingScores]:
    if isinstance(scores, TrackingScores):
        return {"prediction": scores}
    if isinstance(scores, dict) and all(isinstance(v, TrackingScores) for v in scores.values()):
        return dict(scores)
    raise InvalidInputError(
        f"expected TrackingScores or a dict of name -> TrackingScores, got {type(scores).__name__}"
    )


def plot_error_free_segments(
    scores: TrackingScores | dict[str, TrackingScores],
    ax: Any = None,
    *,
    frames_per_unit: float | None = None,
) -> Any:
    """Draw the fraction of error-free ground-truth segments against segment length.

    Parameters
    ----------
    scores : TrackingScores or dict of str to TrackingScores
        One result, or several labelled results drawn as separate curves.
    ax : matplotlib Axes, optional
        Axes to draw on (a new figure when None).
    frames_per_unit : float, optional
        Divide lengths by this (e.g. frames per hour) for the x axis.

    Returns
    -------
    matplotlib Axes
    """
    runs = _scores_list(scores)
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for name, s in runs.items():
        if s.linajea is None:
            raise InvalidInputError(f"scores {name!r} carry no Linajea segment curve (CTC folder?)")
        x = s.linajea.segment_lengths.astype(float)
        if frames_per_unit:
            x = x / float(frames_per_unit)
        ax.plot(x, s.linajea.error_free_fraction, marker="o", markersize=3, label=name)
    if frames_per_unit:
        ax.set_xlabel("length of a true track stretch (time units)")
    else:
        ax.set_xlabel("length of a true track stretch (links, i.e. frame-to-frame steps)")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("fraction tracked without any error")
    ax.set_title("error-free tracks: longer stretches are harder", fontsize=10)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(title="linker" if len(runs) > 1 else None, fontsize=8)
    return ax


#: Error types of the bar chart: (plain-language label, field), CTC / Linajea names kept in
#: parentheses so the numbers can be looked up in the papers.
ERROR_LABELS = (
    ("nucleus to split (NS)", "ns"),
    ("missed nucleus (FN)", "fn_nodes"),
    ("false detection (FP)", "fp_nodes"),
    ("wrong link (ED)", "ed"),
    ("missing link (EA)", "ea"),
    ("link with wrong division flag (EC)", "ec"),
    ("identity switch (IS)", "identity_switches"),
    ("false division (FP div)", "fp_divisions"),
    ("missed division (FN div)", "fn_divisions"),
)


def plot_error_counts(scores: TrackingScores | dict[str, TrackingScores], ax: Any = None) -> Any:
    """Bar chart of the error counts per type (CTC and, when present, Linajea).

    Returns
    -------
    matplotlib Axes
    """
    runs = _scores_list(scores)
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    names = [label for label, _ in ERROR_LABELS]
    height = 0.8 / len(runs)
    y = np.arange(len(names))
    for k, (name, s) in enumerate(runs.items()):
        a, lin = s.aogm, s.linajea
        vals = [a.ns, a.fn_nodes, a.fp_nodes, a.ed, a.ea, a.ec]
        vals += [lin.identity_switches, lin.fp_divisions, lin.fn_divisions] if lin else [0, 0, 0]
        bars = ax.barh(y + k * height - 0.4 + height / 2, vals, height, label=name)
        ax.bar_label(bars, fmt="%d", fontsize=7, padding=2)
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlabel("number of errors against the ground truth (fewer is better)")
    ax.set_title("tracking errors by type (Cell Tracking Challenge / Linajea names)", fontsize=10)
    ax.legend(title="linker" if len(runs) > 1 else None, fontsize=8)
    return ax


def plot_scores(scores: TrackingScores | dict[str, TrackingScores]) -> Any:
    """Figure with the error-free segment curve (when available) and the error bars.

    Returns
    -------
    matplotlib Figure
    """
    runs = _scores_list(scores)
    plt = _pyplot()
    has_curve = all(s.linajea is not None for s in runs.values())
    fig, axes = plt.subplots(1, 2 if has_curve else 1, figsize=(11 if has_curve else 6, 3.8))
    axes = np.atleast_1d(axes)
    if has_curve:
        plot_error_free_segments(runs, ax=axes[0])
    plot_error_counts(runs, ax=axes[-1])
    fig.tight_layout()
    return fig
