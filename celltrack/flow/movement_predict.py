"""Movement-vector prediction and the parent position of every spot.

:func:`predict_movement` runs a movement model (or a joint model's movement head) tile by
tile over the window of frames around t. :func:`predict_parents_movement` gives every
spot of frame t ≥ 1 the node columns ``parent_z, parent_y, parent_x`` (µm): the voxel
``v`` holding its centre predicts the parent at ``pos(v) + vector(v)``; with
``predict.edge_length`` > 1 these predictions are averaged over the cube of voxels
around ``v`` (each vector corrected by its voxel's offset, Linajea's ``edge_length``).
The candidate graph and the linkers read these columns as they read the flow model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from celltrack.config.movement import MovementConfig
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.flow.displace import starting_parents, with_parents
from celltrack.flow.movement_model import check_movement_model
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph
from celltrack.io import ImageSeries, as_movie
from celltrack.nn.linajea_unet import LinajeaUNet
from celltrack.nn.threads import torch_threads
from celltrack.nn.tiling import evaluating, network_divisor, predict_tiled
from celltrack.nn.windows import frame_window
from celltrack.progress import progress_bar

__all__ = ["parents_from_vectors", "predict_movement", "predict_parents_movement"]


def predict_movement(
    model: LinajeaUNet,
    images: Any,
    t: int,
    cfg: MovementConfig | None = None,
    *,
    voxel_size: Sequence[float] | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Predict the movement vectors of frame ``t`` (towards the parents in t−1).

    Parameters
    ----------
    model : LinajeaUNet
        A trained model with a ``movement`` head (a joint model's movement channels are
        taken); its ``window`` selects the input frames.
    images : array_like, path or ImageSeries
        Raw movie, opened by :func:`celltrack.io.as_movie` (4-D (T, Z, Y, X), 3-D
        (T, Y, X) 2D+t).
    t : int
        The frame.
    cfg : MovementConfig, optional
        ``normalize`` (must be the training's) and ``predict`` (tiling, device, threads).
    voxel_size : sequence of 3 float, optional
        Needed only when ``images`` is a path without voxel-size metadata.
    progress : bool
        Show a progress bar over tiles.

    Returns
    -------
    ndarray, shape (3, Z, Y, X), float32
        At every voxel ``p``, the predicted ``parent centre − p`` (z, y, x) in µm; for a
        2D+t model the z channel is 0.

    Raises
    ------
    InvalidInputError
        If the model has no movement head or ``t`` is outside the movie.
    ShapeError
        If a 2D+t model gets 3D frames or vice versa.
    """
    cfg = cfg or MovementConfig()
    if not isinstance(cfg, MovementConfig):
        raise InvalidInputError(f"cfg must be a MovementConfig, got {type(cfg).__name__}")
    movie = _open(images, voxel_size)
    model = check_movement_model(model, two_d=movie.shape[1] == 1)
    t = int(t)
    if not 0 <= t < movie.shape[0]:
        raise InvalidInputError(f"frame {t} is outside the movie (0 … {movie.shape[0] - 1})")
    volume = frame_window(movie, t, model.window, cfg.normalize)
    pcfg = cfg.predict
    device = torch.device(pcfg.device)
    with torch_threads(pcfg.num_threads, what="movement prediction"), evaluating(model, device):
        out = predict_tiled(
            model,
            volume,
            model.out_channels,
            tile_shape=pcfg.tile_shape,
            overlap=pcfg.overlap,
            batch_size=pcfg.batch_size,
            tile_mode=pcfg.tile_mode,
            divisor=network_divisor(model),
            device=device,
            progress=progress,
        )
    vectors = np.zeros((3, *movie.shape[1:]), np.float32)
    vectors[model.movement_axes] = out[model.channels("movement")]
    return vectors


def _open(images: Any, voxel_size: Sequence[float] | None) -> ImageSeries:
    """The movie as an ImageSeries; arrays need no voxel size here (prediction ignores it)."""
    if isinstance(images, ImageSeries) and voxel_size is None:
        return images
    if voxel_size is None and not isinstance(images, (str, Path)):
        voxel_size = (1.0, 1.0, 1.0)
    return as_movie(images, voxel_size=None if voxel_size is None else check_voxel_size(voxel_size))


def parents_from_vectors(
    positions: np.ndarray,
    vectors: np.ndarray,
    voxel_size: Sequence[float],
    edge_length: int = 1,
    *,
    origin: Sequence[int] = (0, 0, 0),
    volume_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Predicted parent positions of points of one frame from its movement vectors.

    Parameters
    ----------
    positions : ndarray, shape (N, 3)
        Point centres (z, y, x) in µm.
    vectors : ndarray, shape (3, Z, Y, X)
        Movement vectors (µm) from :func:`predict_movement`: the whole frame, or a box of
        it (``origin``, ``volume_shape``) holding every voxel the points average.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    edge_length : int
        Odd side of the cube of voxels averaged around each point's voxel (voxels; a
        square in-plane on 2D+t data); voxels outside the volume are left out.
    origin : sequence of 3 int
        Voxel index (z, y, x) in the frame of ``vectors[:, 0, 0, 0]`` (a box read from a
        store, as :func:`celltrack.scale.parents_from_vector_store` does).
    volume_shape : sequence of 3 int, optional
        (Z, Y, X) of the whole frame (default: ``vectors``' own, i.e. the whole frame).

    Returns
    -------
    ndarray, shape (N, 3)
        ``mean over the cube voxels v of (pos(v) + vectors[:, v])`` in µm.

    Examples
    --------
    >>> vec = np.zeros((3, 1, 5, 5), np.float32); vec[2] = 1.5
    >>> parents_from_vectors(np.array([[0.0, 2.0, 2.2]]), vec, (1, 1, 1)).tolist()
    [[0.0, 2.0, 3.5]]
    """
    vs = check_voxel_size(voxel_size)
    vectors = np.asarray(vectors)
    if vectors.ndim != 4 or vectors.shape[0] != 3:
        raise ShapeError(
            f"vectors must be (3, Z, Y, X) in µm as returned by predict_movement, got "
            f"shape {vectors.shape}"
        )
    edge_length = int(edge_length)
    if edge_length < 1 or edge_length % 2 == 0:
        raise InvalidInputError(f"edge_length must be odd and ≥ 1 (voxels), got {edge_length}")
    pos = np.asarray(positions, np.float64).reshape(-1, 3)
    shape = np.asarray(vectors.shape[1:] if volume_shape is None else volume_shape, np.int64)
    lo = np.asarray(origin, np.int64)
    centre = np.clip(np.rint(pos / vs).astype(np.int64), 0, shape - 1)  # (N, 3)
    h = edge_length // 2
    span = [np.arange(-h, h + 1) if shape[d] > 1 else np.zeros(1, np.int64) for d in range(3)]
    offsets = np.stack(np.meshgrid(*span, indexing="ij"), axis=-1).reshape(-1, 3)  # (M, 3)
    idx = centre[:, None, :] + offsets[None]  # (N, M, 3)
    inside = np.all((idx >= 0) & (idx < shape), axis=2)  # (N, M)
    idx = np.clip(idx, 0, shape - 1)
    box = idx - lo
    if box.size and (box.min() < 0 or np.any(box.max(axis=(0, 1)) >= vectors.shape[1:])):
        raise ShapeError(
            f"the vector box at {lo.tolist()} of shape {list(vectors.shape[1:])} does not hold "
            "every voxel the points average; read a larger box"
        )
    vec = vectors[:, box[..., 0], box[..., 1], box[..., 2]]  # (3, N, M)
    guess = idx * vs + np.moveaxis(vec, 0, -1)  # (N, M, 3) µm
    w = inside[..., None].astype(np.float64)
    return (guess * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1.0)


def predict_parents_movement(
    model: LinajeaUNet,
    images: Any,
    spots: TrackGraph,
    voxel_size: Sequence[float],
    cfg: MovementConfig | None = None,
    *,
    frames: Sequence[int] | None = None,
    progress: bool = False,
) -> TrackGraph:
    """Predict movement vectors frame by frame and add parent columns to every spot.

    Parameters
    ----------
    model : LinajeaUNet
        Trained model with a movement head.
    images : array_like, path or ImageSeries
        Raw movie, opened by :func:`celltrack.io.as_movie`.
    spots : TrackGraph
        Spots (positions µm).
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) µm.
    cfg : MovementConfig, optional
        ``normalize``, ``predict`` (tiling, ``edge_length``).
    frames : sequence of int, optional
        Frames to process (default: every frame ≥ 1 holding spots).
    progress : bool
        Progress bar over frames.

    Returns
    -------
    TrackGraph
        A copy of ``spots`` with ``parent_z, parent_y, parent_x`` (µm). Spots of frame 0
        and of frames not processed keep earlier parent columns if present, otherwise
        their own position (no motion), as :func:`celltrack.flow.displace` does.
    """
    cfg = cfg or MovementConfig()
    if not isinstance(spots, TrackGraph):
        raise InvalidInputError(f"spots must be a TrackGraph, got {type(spots).__name__}")
    vs = check_voxel_size(voxel_size)
    movie = as_movie(images, voxel_size=vs)
    check_movement_model(model, two_d=movie.shape[1] == 1)
    pos = spots.positions
    parent, _ = starting_parents(spots, default_radius_um=1.0)
    todo = spots.frames if frames is None else np.asarray(list(frames), np.int64)
    todo = [int(t) for t in todo if 1 <= int(t) < movie.shape[0]]
    for t in progress_bar(todo, desc="movement", disable=not progress, leave=False):
        rows = np.flatnonzero(spots.t == t)
        if rows.size == 0:
            continue
        field = predict_movement(model, movie, t, cfg)
        parent[rows] = parents_from_vectors(pos[rows], field, vs, cfg.predict.edge_length)
    return with_parents(spots, parent)
