"""Per-spot predicted parent positions from a flow field.

Each spot at frame t gets ``parent_z, parent_y, parent_x`` (µm): its centre plus the
mean backward flow over the voxels of its ellipsoid, i.e. where the nucleus is
predicted to have been at frame t−1. Linkers compare candidate parents with this
position instead of the spot's own (see ``pred_distance`` in the candidate graph).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from celltrack.config.flow import FlowConfig
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size, ellipsoid_mask, sphere_covariances
from celltrack.graph import TrackGraph
from celltrack.io import as_movie
from celltrack.progress import progress_bar

__all__ = ["PARENT_COLUMNS", "displace", "predict_parents"]

logger = logging.getLogger(__name__)

#: Node columns written by :func:`displace` (µm).
PARENT_COLUMNS = ("parent_z", "parent_y", "parent_x")


def _check_flow(flow: Any, t: int | None) -> np.ndarray:
    arr = np.asarray(flow)
    if arr.ndim != 4 or arr.shape[0] != 3:
        raise ShapeError(
            f"flow{'' if t is None else f' of frame {t}'} must be (3, Z, Y, X) in µm as "
            f"returned by predict_flow, got shape {arr.shape}"
        )
    return arr


def _mean_flow(
    centers: np.ndarray,
    covs: np.ndarray,
    flow: np.ndarray,
    vs: np.ndarray,
    min_voxels: int,
) -> np.ndarray:
    """Mean flow (N, 3) µm over each ellipsoid; the centre voxel's flow if none is inside."""
    shape = flow.shape[1:]
    out = np.zeros((centers.shape[0], 3))
    idx = np.clip(np.rint(centers / vs).astype(int), 0, np.asarray(shape) - 1)
    fallback = flow[:, idx[:, 0], idx[:, 1], idx[:, 2]].T
    # one rasterisation per spot: the shared rasteriser works per ellipsoid
    for i in range(centers.shape[0]):
        sl, mask = ellipsoid_mask(centers[i], covs[i], vs, shape, min_voxels=min_voxels)
        if mask.any():
            out[i] = flow[(slice(None), *sl)][:, mask].mean(axis=1)
        else:
            out[i] = fallback[i]
    return out


def check_radii(min_voxels: int, default_radius_um: float) -> None:
    """Raise InvalidInputError unless ``min_voxels ≥ 0`` and ``default_radius_um > 0`` µm."""
    if min_voxels < 0 or default_radius_um <= 0:
        raise InvalidInputError(
            f"min_voxels must be ≥ 0 and default_radius_um > 0 µm, got {min_voxels} and "
            f"{default_radius_um}"
        )


def starting_parents(
    spots: TrackGraph, default_radius_um: float
) -> tuple[np.ndarray, np.ndarray]:
    """Parent positions before any flow, and the covariances the flow is averaged over.

    Returns
    -------
    parent : ndarray, shape (N, 3), float64
        Earlier parent columns where present, else each spot's own position (µm).
    covariances : ndarray, shape (N, 3, 3), float64
        The spots' covariances (µm²), or spheres of ``default_radius_um`` without them.
    """
    pos = spots.positions
    parent = np.stack(
        [np.asarray(spots.nodes[c], np.float64) if c in spots.nodes else pos[:, i]
         for i, c in enumerate(PARENT_COLUMNS)],
        axis=1,
    )
    if "covariance" in spots.nodes:
        covs = np.asarray(spots.nodes["covariance"], np.float64)
    else:
        covs = sphere_covariances(spots.num_nodes, default_radius_um)
    return parent, covs


def with_parents(spots: TrackGraph, parent: np.ndarray) -> TrackGraph:
    """A copy of ``spots`` with ``parent`` (N, 3) µm as the parent columns."""
    out = spots.copy()
    for i, c in enumerate(PARENT_COLUMNS):
        out.set_node_column(c, parent[:, i])
    return out


def displace(
    spots: TrackGraph,
    flow: np.ndarray | Mapping[int, np.ndarray],
    voxel_size: Sequence[float],
    *,
    frame: int | None = None,
    min_voxels: int = 9,
    default_radius_um: float = 3.0,
) -> TrackGraph:
    """Add predicted parent positions ``parent_z, parent_y, parent_x`` (µm) to spots.

    Parameters
    ----------
    spots : TrackGraph
        Spots (positions µm, optional ``covariance`` µm²).
    flow : ndarray (3, Z, Y, X) or mapping of int to such arrays
        Backward flow in µm from :func:`celltrack.flow.predict_flow`: one frame's field,
        or ``{t: field}`` for several frames (field of frame t points to t−1).
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm of the flow arrays.
    frame : int, optional
        Frame a single field belongs to; may be omitted when all spots are in one frame.
    min_voxels : int
        Minimum voxels averaged per spot (the ellipsoid grows until it covers them).
    default_radius_um : float
        Sphere radius (µm) for spots without covariance.

    Returns
    -------
    TrackGraph
        A copy of ``spots`` with the three parent columns. Spots in frames without a flow
        field keep earlier parent columns if present, otherwise their own position (no
        motion assumed).

    Raises
    ------
    InvalidInputError
        If a single field is given for spots spanning several frames without ``frame``.
    ShapeError
        If a flow field is not (3, Z, Y, X).

    Examples
    --------
    >>> g = TrackGraph.from_positions([1], [[0.0, 4.0, 4.0]])
    >>> f = np.zeros((3, 1, 9, 9), np.float32); f[1] = 2.0
    >>> displace(g, f, (1, 1, 1)).nodes["parent_y"].tolist()
    [6.0]
    """
    if not isinstance(spots, TrackGraph):
        raise InvalidInputError(f"spots must be a TrackGraph, got {type(spots).__name__}")
    vs = check_voxel_size(voxel_size)
    check_radii(min_voxels, default_radius_um)
    if isinstance(flow, Mapping):
        fields = {int(t): _check_flow(f, int(t)) for t, f in flow.items()}
    else:
        if frame is None:
            frames = spots.frames
            if frames.size > 1:
                raise InvalidInputError(
                    f"one flow field was given but the spots span frames {frames.tolist()}; "
                    "pass frame=t or a mapping {t: flow}"
                )
            frame = int(frames[0]) if frames.size else 0
        fields = {int(frame): _check_flow(flow, int(frame))}
    pos = spots.positions
    parent, covs = starting_parents(spots, default_radius_um)
    for t, field in fields.items():
        rows = np.flatnonzero(spots.t == t)
        if rows.size == 0:
            continue
        mean = _mean_flow(pos[rows], covs[rows], field, vs, min_voxels)
        parent[rows] = pos[rows] + mean
    return with_parents(spots, parent)


def predict_parents(
    model: Any,
    images: Any,
    spots: TrackGraph,
    voxel_size: Sequence[float],
    cfg: FlowConfig | None = None,
    *,
    frames: Sequence[int] | None = None,
    progress: bool = False,
) -> TrackGraph:
    """Predict flow frame by frame and add parent columns to every spot (t ≥ 1).

    Parameters
    ----------
    model : FlowUNet
        Trained flow model.
    images : array_like, path or ImageSeries
        Raw movie, opened by :func:`celltrack.io.as_movie` (4-D (T, Z, Y, X), 3-D
        (T, Y, X) 2D+t).
    spots : TrackGraph
        Detected spots (µm).
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) µm.
    cfg : FlowConfig, optional
        Tiling and label geometry (``cfg.label.min_voxels``, ``default_radius_um``).
    frames : sequence of int, optional
        Frames to process (default: every frame ≥ 1 holding spots).
    progress : bool
        Progress bar over frames.

    Returns
    -------
    TrackGraph
        ``spots`` with ``parent_z, parent_y, parent_x`` (frame-0 spots keep their position).
    """
    from celltrack.flow.predict import predict_flow

    cfg = cfg or FlowConfig()
    movie = as_movie(images, voxel_size=check_voxel_size(voxel_size))
    todo = spots.frames if frames is None else np.asarray(list(frames), np.int64)
    todo = [int(t) for t in todo if 1 <= int(t) < movie.shape[0]]
    out = displace(spots, {}, voxel_size)
    for t in progress_bar(todo, desc="flow", disable=not progress, leave=False):
        field = predict_flow(model, movie[t - 1], movie[t], cfg)
        out = displace(
            out,
            field,
            voxel_size,
            frame=t,
            min_voxels=cfg.label.min_voxels,
            default_radius_um=cfg.label.default_radius_um,
        )
    return out
