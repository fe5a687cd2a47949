"""Predicted parent positions from a stored flow or movement field, read a few boxes at a time.

:func:`celltrack.flow.displace` averages a frame's backward flow over each spot's
ellipsoid and needs the whole frame's field in memory (12 bytes per voxel).
:func:`displace_from_store` gives the same numbers from a chunked ``(T, 3, Z, Y, X)``
store (Zarr, dask, or numpy): the spots of a frame are grouped by the store chunk their
centre lies in, and each group reads only the bounding box of its ellipsoids.
:func:`parents_from_vector_store` does the same for Linajea's movement vectors
(:func:`celltrack.flow.movement_predict.parents_from_vectors`: the cube of
``edge_length`` voxels around each centre).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from celltrack.errors import InvalidInputError, ShapeError
from celltrack.flow.displace import check_radii, starting_parents, with_parents
from celltrack.geometry import check_voxel_size, ellipsoid_mask
from celltrack.graph import TrackGraph
from celltrack.progress import progress_bar

__all__ = ["displace_from_store", "parents_from_vector_store"]


def _chunk_shape(store: Any, shape: Sequence[int]) -> tuple[int, int, int]:
    """The store's (z, y, x) chunk shape (the whole frame for unchunked arrays)."""
    chunks = getattr(store, "chunks", None)
    if chunks is None:
        return tuple(int(s) for s in shape)  # type: ignore[return-value]
    if isinstance(chunks[0], tuple):  # dask: per-axis tuples of chunk sizes
        return tuple(int(c[0]) for c in chunks[2:])  # type: ignore[return-value]
    return tuple(int(c) for c in chunks[2:])  # type: ignore[return-value]


def _check_field(store: Any, what: str) -> tuple[int, ...]:
    shape = tuple(getattr(store, "shape", ()))
    if len(shape) != 5 or shape[1] != 3:
        raise ShapeError(f"{what} must be a (T, 3, Z, Y, X) store in µm, got shape {shape}")
    return shape


def _chunk_groups(idx: np.ndarray, chunk: np.ndarray) -> list[np.ndarray]:
    """Row indices of ``idx`` (N, 3 voxel indices) grouped by the chunk they lie in."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, key in enumerate(map(tuple, idx // chunk)):
        groups.setdefault(key, []).append(i)
    return [np.asarray(g) for g in groups.values()]


def _frame_means(
    store: Any,
    t: int,
    centers: np.ndarray,
    covs: np.ndarray,
    vs: np.ndarray,
    min_voxels: int,
) -> np.ndarray:
    """Mean flow (N, 3) µm of frame ``t`` over each ellipsoid, as ``displace`` computes it."""
    shape = tuple(int(s) for s in store.shape[2:])
    idx = np.clip(np.rint(centers / vs).astype(int), 0, np.asarray(shape) - 1)
    boxes = [ellipsoid_mask(c, v, vs, shape, min_voxels=min_voxels) for c, v in zip(centers, covs)]
    chunk = np.asarray(_chunk_shape(store, shape))
    out = np.zeros((len(centers), 3))
    for members in _chunk_groups(idx, chunk):
        corners = [idx[i] for i in members] + [idx[i] + 1 for i in members]
        corners += [[s.start for s in boxes[i][0]] for i in members if boxes[i][1].any()]
        corners += [[s.stop for s in boxes[i][0]] for i in members if boxes[i][1].any()]
        lo, hi = np.min(corners, axis=0), np.max(corners, axis=0)
        region = np.asarray(
            store[(t, slice(None), *(slice(int(a), int(b)) for a, b in zip(lo, hi)))]
        )
        for i in members:
            sl, mask = boxes[i]
            if mask.any():
                local = tuple(slice(s.start - a, s.stop - a) for s, a in zip(sl, lo))
                out[i] = region[(slice(None), *local)][:, mask].mean(axis=1)
            else:
                z, y, x = idx[i] - lo
                out[i] = region[:, z, y, x]
    return out


def displace_from_store(
    spots: TrackGraph,
    flow: Any,
    voxel_size: Sequence[float],
    *,
    min_voxels: int = 9,
    default_radius_um: float = 3.0,
    progress: bool = False,
) -> TrackGraph:
    """Add ``parent_z, parent_y, parent_x`` (µm) to spots from a stored flow movie.

    Equals :func:`celltrack.flow.displace` given every frame's field, without loading a
    whole frame.

    Parameters
    ----------
    spots : TrackGraph
        Spots (positions µm, optional ``covariance`` µm²).
    flow : array_like, shape (T, 3, Z, Y, X)
        Backward flow in µm per frame (frame t points to t−1), e.g. the Zarr array written
        by block-wise flow prediction; frame 0 is not read.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) µm of the flow.
    min_voxels : int
        Minimum voxels averaged per spot (the ellipsoid grows until it covers them).
    default_radius_um : float
        Sphere radius (µm) for spots without covariance.
    progress : bool
        Progress bar over frames.

    Returns
    -------
    TrackGraph
        A copy of ``spots`` with the parent columns; frame-0 spots (and spots past the
        store's last frame) keep earlier parent columns if present, else their position.

    Raises
    ------
    ShapeError
        If ``flow`` is not (T, 3, Z, Y, X).
    InvalidInputError
        If ``spots`` is not a TrackGraph or the radii are not positive.
    """
    if not isinstance(spots, TrackGraph):
        raise InvalidInputError(f"spots must be a TrackGraph, got {type(spots).__name__}")
    shape = _check_field(flow, "flow (backward flow)")
    check_radii(min_voxels, default_radius_um)
    vs = check_voxel_size(voxel_size)
    pos = spots.positions
    parent, covs = starting_parents(spots, default_radius_um)
    frames = [int(t) for t in spots.frames if 1 <= int(t) < shape[0]]
    for t in progress_bar(frames, desc="parents", disable=not progress, leave=False):
        rows = np.flatnonzero(spots.t == t)
        parent[rows] = pos[rows] + _frame_means(flow, t, pos[rows], covs[rows], vs, min_voxels)
    return with_parents(spots, parent)


def parents_from_vector_store(
    spots: TrackGraph,
    vectors: Any,
    voxel_size: Sequence[float],
    *,
    edge_length: int = 1,
    progress: bool = False,
) -> TrackGraph:
    """Add ``parent_z, parent_y, parent_x`` (µm) to spots from stored movement vectors.

    Equals :func:`celltrack.flow.movement_predict.predict_parents_movement` given the same
    vectors, reading per store chunk only the box of the cubes its spots average.

    Parameters
    ----------
    spots : TrackGraph
        Spots (positions µm).
    vectors : array_like, shape (T, 3, Z, Y, X)
        Movement vectors in µm per frame (frame t points to the parents in t−1), e.g. the
        Zarr array of :func:`celltrack.scale.predict_blockwise` with a movement head;
        frame 0 is not read.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) µm.
    edge_length : int
        Odd side of the cube of voxels averaged around each centre (voxels).
    progress : bool
        Progress bar over frames.

    Returns
    -------
    TrackGraph
        A copy of ``spots`` with the parent columns; frame-0 spots (and spots past the
        store's last frame) keep earlier parent columns if present, else their position.

    Raises
    ------
    ShapeError
        If ``vectors`` is not (T, 3, Z, Y, X).
    InvalidInputError
        If ``spots`` is not a TrackGraph or ``edge_length`` is not odd and positive.
    """
    from celltrack.flow.movement_predict import parents_from_vectors  # imports torch

    if not isinstance(spots, TrackGraph):
        raise InvalidInputError(f"spots must be a TrackGraph, got {type(spots).__name__}")
    shape = _check_field(vectors, "vectors (movement vectors)")
    vs = check_voxel_size(voxel_size)
    if int(edge_length) < 1 or int(edge_length) % 2 == 0:
        raise InvalidInputError(f"edge_length must be odd and ≥ 1 (voxels), got {edge_length}")
    volume = np.asarray(shape[2:], np.int64)
    reach = np.where(volume > 1, int(edge_length) // 2, 0)
    chunk = np.asarray(_chunk_shape(vectors, shape[2:]))
    pos = spots.positions
    parent, _ = starting_parents(spots, default_radius_um=1.0)
    frames = [int(t) for t in spots.frames if 1 <= int(t) < shape[0]]
    for t in progress_bar(frames, desc="parents", disable=not progress, leave=False):
        rows = np.flatnonzero(spots.t == t)
        idx = np.clip(np.rint(pos[rows] / vs).astype(np.int64), 0, volume - 1)
        for members in _chunk_groups(idx, chunk):
            lo = np.maximum(idx[members].min(axis=0) - reach, 0)
            hi = np.minimum(idx[members].max(axis=0) + reach + 1, volume)
            box = np.asarray(vectors[(t, slice(None), *(slice(a, b) for a, b in zip(lo, hi)))])
            parent[rows[members]] = parents_from_vectors(
                pos[rows[members]], box, vs, edge_length, origin=lo, volume_shape=volume
            )
    return with_parents(spots, parent)
