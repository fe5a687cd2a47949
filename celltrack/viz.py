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

__all__ = ["plot_lineage_tree", "plot_loss_curves", "plot_tracks_projection", "save_figure"]


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

    Parameters
    ----------
    image : ndarray, shape (T, Z, Y, X) or (Z, Y, X)
        The movie, or only the volume of ``frame`` (saves loading a lazy movie).
    graph : TrackGraph
        Tracks in µm; coloured by lineage.
    voxel_size : sequence of 3 float
        (z, y, x) µm, to place µm positions on the pixel grid.
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
    ax = _axes(ax, (6, 6))
    ax.imshow(volume.max(axis=0), cmap="gray", interpolation="nearest")
    if graph.num_nodes:
        lineage = graph.lineages()
        colors = _pyplot().get_cmap("tab20")(lineage % 20)
        yx = graph.positions[:, 1:] / vs[1:]
        t = graph.t
        if graph.num_edges:
            src, tgt = graph.edge_index()
            recent = (t[tgt] <= frame) & (t[tgt] > frame - tail)
            from matplotlib.collections import LineCollection

            segments = np.stack([yx[src[recent]][:, ::-1], yx[tgt[recent]][:, ::-1]], axis=1)
            ax.add_collection(LineCollection(segments, colors=colors[tgt[recent]], linewidths=1))
        now = t == frame
        ax.scatter(yx[now, 1], yx[now, 0], s=12, c=colors[now], edgecolors="white", linewidths=0.3)
    ax.set_title(title or f"max projection, frame {frame}")
    ax.set_axis_off()
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
    ax.set_ylabel("frame")
    ax.set_xticks([])
    ax.set_title(title or f"lineage trees ({len(keep)} largest)")
    return ax


def plot_loss_curves(
    histories: Mapping[str, Sequence[float]], *, ax: Any = None, title: str = "training loss"
) -> Any:
    """Plot one loss curve per named history (e.g. ``{"detection": [...], "flow": [...]}``)."""
    ax = _axes(ax, (6, 4))
    for name, values in histories.items():
        values = np.asarray(values, dtype=float)
        if values.size:
            ax.plot(np.arange(1, values.size + 1), values, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if any(len(v) for v in histories.values()):
        ax.legend()
        if all(np.all(np.asarray(v) > 0) for v in histories.values() if len(v)):
            ax.set_yscale("log")
    ax.set_title(title)
    return ax
