"""Plots of tracking scores (matplotlib, imported only when a plot is drawn)."""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from celltrack.errors import DependencyError, InvalidInputError
from celltrack.eval.scores import TrackingScores

__all__ = ["plot_error_counts", "plot_error_free_segments", "plot_scores"]


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
        ax.plot(x, s.linajea.error_free_fraction, label=name)
    ax.set_xlabel("segment length" + (" (units)" if frames_per_unit else " (edges)"))
    ax.set_ylabel("fraction error-free")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if len(runs) > 1:
        ax.legend()
    return ax


def plot_error_counts(scores: TrackingScores | dict[str, TrackingScores], ax: Any = None) -> Any:
    """Bar chart of the error counts per type (CTC and, when present, Linajea).

    Returns
    -------
    matplotlib Axes
    """
    runs = _scores_list(scores)
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    names = ["NS", "FN nodes", "FP nodes", "ED", "EA", "EC", "IS", "FP div", "FN div"]
    width = 0.8 / len(runs)
    x = np.arange(len(names))
    for k, (name, s) in enumerate(runs.items()):
        a, lin = s.aogm, s.linajea
        vals = [a.ns, a.fn_nodes, a.fp_nodes, a.ed, a.ea, a.ec]
        vals += [lin.identity_switches, lin.fp_divisions, lin.fn_divisions] if lin else [0, 0, 0]
        ax.bar(x + k * width - 0.4 + width / 2, vals, width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("count")
    if len(runs) > 1:
        ax.legend()
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
