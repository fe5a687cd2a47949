"""Plots of tracking scores (matplotlib, imported only when a plot is drawn)."""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from celltrack.errors import DependencyError, InvalidInputError
from celltrack.eval.scores import TrackingScores

__all__ = [
    "ERROR_LABELS",
    "plot_effort_curve",
    "plot_error_counts",
    "plot_error_free_segments",
    "plot_scores",
]


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


#: Metrics of the effort-curve plot: field of :class:`~celltrack.eval.annotator.EffortRow`
#: → axis label.
EFFORT_METRICS = {"det": "DET", "tra": "TRA", "division_f1": "division F1"}


def plot_effort_curve(
    curves: Any,
    *,
    metrics: tuple[str, ...] = ("det", "tra", "division_f1"),
    baselines: dict[str, dict[str, float]] | None = None,
    title: str | None = None,
) -> Any:
    """Scores against the cumulative number of clicks of a human-in-the-loop run.

    One panel per metric; each curve is one line with a marker per round (labelled with
    the round number), each baseline (a method that needs no clicks, e.g. a classical
    detector) a dashed horizontal line.

    Parameters
    ----------
    curves : EffortCurve or dict of str to EffortCurve
        One run, or several labelled runs.
    metrics : tuple of str
        Row fields to draw, among ``"det"``, ``"tra"``, ``"division_f1"``.
    baselines : dict of str to dict of str to float, optional
        ``{name: {metric: value}}`` drawn as horizontal lines (missing metrics skipped).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib Figure
    """
    from celltrack.eval.annotator import EffortCurve

    if isinstance(curves, EffortCurve):
        curves = {curves.label: curves}
    if not isinstance(curves, dict) or not all(isinstance(c, EffortCurve) for c in curves.values()):
        raise InvalidInputError(
            f"expected an EffortCurve or a dict of name -> EffortCurve, got {type(curves).__name__}"
        )
    bad = [m for m in metrics if m not in EFFORT_METRICS]
    if bad or not metrics:
        raise InvalidInputError(
            f"metrics must be among {list(EFFORT_METRICS)}, got {list(metrics)}"
        )
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2"])
    for ax, metric in zip(axes[0], metrics):
        for k, (name, curve) in enumerate(curves.items()):
            x = curve.column("cumulative_clicks").astype(float)
            y = curve.column(metric).astype(float)
            colour = colours[k % len(colours)]
            ax.plot(x, y, marker="o", color=colour, label=name)
            for r, xi, yi in zip(curve.column("round"), x, y):
                if np.isfinite(yi):
                    ax.annotate(f"r{int(r)}", (xi, yi), textcoords="offset points",
                                xytext=(3, -10), fontsize=7, color=colour)
        for j, (name, values) in enumerate((baselines or {}).items()):
            value = values.get(metric)
            if value is None or not np.isfinite(value):
                continue
            ax.axhline(value, linestyle="--", color=f"C{(len(curves) + j) % 10}",
                       label=f"{name} ({value:.3f})")
        ax.set_xlabel("cumulative clicks (accept / reject / add / link)")
        ax.set_ylabel(f"{EFFORT_METRICS[metric]} (higher is better)")
        shown = [v for c in curves.values() for v in c.column(metric).astype(float)]
        shown += [b[metric] for b in (baselines or {}).values() if b.get(metric) is not None]
        shown = [v for v in shown if np.isfinite(v)]
        low = max(0.0, np.floor((min(shown) - 0.05) * 10) / 10) if shown else 0.0
        ax.set_ylim(low, 1.01)
        ax.margins(x=0.08)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
