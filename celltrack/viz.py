"""Figures people would rather look at than read: tracks over a max projection, lineage
trees, training-loss curves. Each function draws into a matplotlib Axes (created if not
given) and can save a PNG; matplotlib is imported lazily with a non-interactive backend
when no display is available.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph

__all__ = [
    "add_scale_bar",
    "plot_lineage_tree",
    "plot_loss_curves",
    "plot_tracks_projection",
    "save_figure",
]


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        try:
            import IPython  # noqa: F401
        except ImportError:
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    plt = _pyplot()
    _, ax = plt.subplots(figsize=figsize)
    return ax


def save_figure(ax: Any, path: str | Path, dpi: int = 120) -> Path:
    """Save the figure owning ``ax`` to ``path`` (PNG) atomically and close it."""
    from celltrack.io.atomic import atomic_path

    path = Path(path)
    fig = ax.figure
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    _pyplot().close(fig)
    return path


def _nice_length(length: float) -> float:
    """A round scale-bar length (1, 2 or 5 × 10^k) close to ``length``."""
    if length <= 0:
        return 1.0
    exp = np.floor(np.log10(length))
    for m in (5.0, 2.0, 1.0):
        if m * 10**exp <= length:
            return float(m * 10**exp)
    return float(10**exp)


def add_scale_bar(ax: Any, width_um: float, height_um: float) -> float:
    """Draw a white scale bar (≈ 1/5 of the width, a round number of µm) bottom left.

    Parameters
    ----------
    ax : matplotlib Axes
        Axes whose data coordinates are µm (y pointing down).
    width_um, height_um : float
        Extent of the image (µm).

    Returns
    -------
    float
        The bar's length (µm).
    """
    length = _nice_length(width_um / 5)
    x0, y0 = 0.05 * width_um, 0.93 * height_um
    ax.plot([x0, x0 + length], [y0, y0], color="white", linewidth=3, solid_capstyle="butt")
    label = f"{length:g} µm"
    ax.text(
        x0 + length / 2,
        y0 - 0.02 * height_um,
        label,
        color="white",
        ha="center",
        va="bottom",
        fontsize=9,
    )
    return length


def plot_tracks_projection(
    image: np.ndarray,
    graph: TrackGraph,
    voxel_size: Sequence[float],
    *,
    frame: int | None = None,
    tail: int = 10,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Maximum-intensity projection along z with track tails and detections overlaid.

    Axes are in µm with a scale bar; each cell present in ``frame`` is a dot, and its
    path over the last ``tail`` frames a line, coloured by lineage. Tracks that ended
    before ``frame`` are not drawn (no floating tails).

    Parameters
    ----------
    image : ndarray, shape (T, Z, Y, X) or (Z, Y, X)
        The movie, or only the volume of ``frame`` (saves loading a lazy movie).
    graph : TrackGraph
        Tracks in µm; coloured by lineage.
    voxel_size : sequence of 3 float
        (z, y, x) µm, to place the image on the µm grid of the positions.
    frame : int, optional
        Frame to show (default: the movie's last frame, or the graph's last frame when
        ``image`` is one volume).
    tail : int
        Frames of history drawn behind each cell.
    ax : matplotlib Axes, optional
        Where to draw.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib Axes
    """
    vs = check_voxel_size(voxel_size)
    if image.ndim == 3:
        frame = int(graph.t.max()) if frame is None and graph.num_nodes else (frame or 0)
        volume = np.asarray(image)
    elif image.ndim == 4:
        frame = image.shape[0] - 1 if frame is None else int(frame)
        if not 0 <= frame < image.shape[0]:
            raise InvalidInputError(f"frame {frame} is outside the movie (0..{image.shape[0] - 1})")
        volume = np.asarray(image[frame])
    else:
        raise ShapeError(f"image must be (T, Z, Y, X) or (Z, Y, X), got shape {image.shape}")
    ax = _axes(ax, (6.5, 6.5))
    height_um, width_um = volume.shape[1] * vs[1], volume.shape[2] * vs[2]
    ax.imshow(
        volume.max(axis=0),
        cmap="gray",
        interpolation="nearest",
        extent=(0.0, width_um, height_um, 0.0),
    )
    n_now = 0
    if graph.num_nodes:
        plt = _pyplot()
        from matplotlib.lines import Line2D

        lineage = graph.lineages()
        colors = plt.get_cmap("tab20")(lineage % 20)
        yx = graph.positions[:, 1:]
        t = graph.t
        now = t == frame
        n_now = int(now.sum())
        if graph.num_edges:
            src, tgt = graph.edge_index()
            # nodes on the path of a cell present now, up to ``tail`` frames back
            alive = now.copy()
            parent = np.full(graph.num_nodes, -1, np.int64)
            parent[tgt] = src
            frontier = np.flatnonzero(now)
            for _ in range(max(int(tail), 0)):
                frontier = parent[frontier]
                frontier = frontier[frontier >= 0]
                if frontier.size == 0:
                    break
                alive[frontier] = True
            recent = alive[tgt] & alive[src] & (t[tgt] <= frame) & (t[tgt] > frame - tail)
            from matplotlib.collections import LineCollection

            segments = np.stack([yx[src[recent]][:, ::-1], yx[tgt[recent]][:, ::-1]], axis=1)
            ax.add_collection(LineCollection(segments, colors=colors[tgt[recent]], linewidths=1.2))
        ax.scatter(yx[now, 1], yx[now, 0], s=16, c=colors[now], edgecolors="white", linewidths=0.4)
        handles = [
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor="tab:orange",
                markeredgecolor="white",
                label=f"cell in frame {frame} ({n_now})",
            ),
            Line2D([], [], color="tab:orange", label=f"its path, last {tail} frames"),
        ]
        ax.legend(
            handles=handles,
            loc="upper right",
            fontsize=8,
            framealpha=0.8,
            title="colour = lineage",
            title_fontsize=8,
        )
    add_scale_bar(ax, width_um, height_um)
    ax.set_xlim(0, width_um)
    ax.set_ylim(height_um, 0)
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.set_title(title or f"frame {frame}: tracked cells (brightest z shown)")
    return ax


def plot_lineage_tree(
    graph: TrackGraph, *, ax: Any = None, max_lineages: int = 30, title: str | None = None
) -> Any:
    """Draw lineage trees: time downwards, one column block per lineage, divisions as forks.

    Parameters
    ----------
    graph : TrackGraph
        A lineage forest (≤ 1 parent per node).
    ax : matplotlib Axes, optional
        Where to draw.
    max_lineages : int
        Draw only the largest lineages (by node count).
    title : str, optional
        Axes title.
    """
    ax = _axes(ax, (9, 5))
    if graph.num_nodes == 0:
        ax.set_title(title or "lineage trees (empty)")
        return ax
    lineage = graph.lineages()
    sizes = np.bincount(lineage)
    keep = np.argsort(-sizes, kind="stable")[:max_lineages]
    sub = graph.subgraph(nodes=np.isin(lineage, keep))
    tracklet = sub.tracklets()
    t = sub.t
    # x position of each tracklet: leaves get consecutive slots, parents sit between children
    n_tracks = int(tracklet.max()) + 1
    parent_track = np.full(n_tracks, -1)
    if sub.num_edges:
        src, tgt = sub.edge_index()
        split = tracklet[src] != tracklet[tgt]
        parent_track[tracklet[tgt[split]]] = tracklet[src[split]]
    children: dict[int, list[int]] = {}
    for child, parent in enumerate(parent_track.tolist()):
        if parent >= 0:
            children.setdefault(parent, []).append(child)
    start = np.full(n_tracks, np.iinfo(np.int64).max)
    np.minimum.at(start, tracklet, t)
    end = np.full(n_tracks, -1)
    np.maximum.at(end, tracklet, t)
    x = np.zeros(n_tracks)
    slot = 0.0

    def place(track: int) -> float:  # recursion depth = number of generations
        nonlocal slot
        kids = sorted(children.get(track, []), key=lambda k: start[k])
        if not kids:
            x[track] = slot
            slot += 1
        else:
            x[track] = float(np.mean([place(k) for k in kids]))
        return x[track]

    roots = [k for k in range(n_tracks) if parent_track[k] < 0]
    for root in sorted(roots, key=lambda k: start[k]):
        place(root)
        slot += 1
    colors = _pyplot().get_cmap("tab20")
    root_of = np.arange(n_tracks)
    for _ in range(n_tracks):
        nxt = np.where(parent_track[root_of] >= 0, parent_track[root_of], root_of)
        if np.array_equal(nxt, root_of):
            break
        root_of = nxt
    for k in range(n_tracks):
        color = colors(root_of[k] % 20)
        ax.plot([x[k], x[k]], [start[k], end[k]], color=color, linewidth=1.2)
        if parent_track[k] >= 0:
            p = parent_track[k]
            ax.plot([x[p], x[k]], [end[p], start[k]], color=color, linewidth=0.8)
    ax.invert_yaxis()
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("frame (time point)")
    ax.set_xlabel("cells side by side; a fork is a division, colour = lineage")
    ax.set_xticks([])
    ax.set_title(title or f"lineage trees (the {len(keep)} largest of {sizes.size})")
    return ax


def _field(record: Any, key: str, default: Any = None) -> Any:
    if isinstance(record, Mapping):
        return record.get(key, default)
    return getattr(record, key, default)


def _records(values: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(step, loss, mode) of a history: plain losses (one per step) or training records."""
    values = list(values)
    if not values or isinstance(values[0], (int, float, np.floating, np.integer)):
        loss = np.asarray(values, dtype=float)
        return np.arange(1, loss.size + 1, dtype=float), loss, ["step"] * loss.size
    step, loss, mode = [], [], []
    for i, record in enumerate(values):
        step.append(float(_field(record, "step", i + 1)))
        loss.append(float(_field(record, "loss")))
        mode.append(str(_field(record, "mode", "step")))
    return np.asarray(step), np.asarray(loss), mode


def plot_loss_curves(
    histories: Mapping[str, Sequence[Any]], *, ax: Any = None, title: str = "training loss"
) -> Any:
    """Plot each named training history in its own panel against optimisation steps.

    Parameters
    ----------
    histories : mapping of str to sequence
        Per model (e.g. ``"detection"``, ``"flow"``) either plain losses, one per
        optimisation step, or training records (:class:`celltrack.nn.history.TrainRecord`
        or dicts with ``mode``, ``step``, ``loss``). Records of one mode (``prior``,
        ``batch``, ``incremental``, ``flow``) are drawn together; a dotted line marks
        where one mode ends and the next begins (e.g. where prior training ends). Epoch
        means are drawn as dots at the step that ends the epoch.
    ax : matplotlib Axes, optional
        Draw every history into this one Axes (default: one panel per history).
    title : str
        Figure title.

    Returns
    -------
    matplotlib Axes
        The first panel (``ax.figure`` holds them all).
    """
    named = {k: _records(v) for k, v in histories.items() if len(v)}
    if ax is None:
        plt = _pyplot()
        n = max(len(named), 1)
        fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.8), squeeze=False)
        axes = list(axes[0])
        fig.suptitle(title)
    else:
        axes = [ax] * max(len(named), 1)
        ax.set_title(title)
    for panel, (name, (step, loss, mode)) in zip(axes, named.items()):
        modes = list(dict.fromkeys(mode))
        mode_arr = np.asarray(mode)
        for m in modes:
            sel = mode_arr == m
            per_epoch = m in ("batch", "flow") and np.any(np.diff(step[sel]) > 1)
            style = {"marker": "o", "markersize": 3} if per_epoch else {}
            what = "mean per epoch" if per_epoch else "per step"
            if m == "step":
                label = name
            else:  # one panel per model names it in the title; a shared Axes in the label
                label = f"{m} ({what})" if ax is None else f"{name}: {m} ({what})"
            panel.plot(step[sel], loss[sel], label=label, **style)
        for m in modes[:-1]:  # where one mode ends
            end = float(step[mode_arr == m].max())
            panel.axvline(end + 0.5, color="grey", linestyle=":", linewidth=1)
            panel.annotate(
                f"{m} ends",
                (end + 0.5, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
                color="grey",
            )
        panel.set_xlabel("optimisation step")
        panel.set_ylabel("loss")
        if np.all(loss > 0):
            panel.set_yscale("log")
        from matplotlib.ticker import MaxNLocator

        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        panel.legend(fontsize=8)
        if ax is None:
            panel.set_title(name)
    return axes[0]
