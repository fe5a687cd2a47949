"""Linajea's joint model: one U-Net with a cell-indicator and a movement head.

It trains detection's indicator (:mod:`celltrack.detect`) and flow's movement vectors
(:mod:`celltrack.flow`) together, so it lives beside both packages (neither imports the
other).

One :class:`~celltrack.nn.linajea_unet.LinajeaUNet` with heads ``('indicator',
'movement')`` reads the window of frames around t and is trained on the same crops for
both maps, minimising

``L = w_I · L_CI + w_M · (α(s) · L_MV,maxima + (1 − α(s)) · L_MV,mask)``,
``α(s) = 1 / (1 + exp(f · (o − s)))`` at optimisation step ``s``,

where ``L_CI`` is the indicator's masked MSE (target and weight from
:func:`celltrack.detect.indicator_targets.indicator_training_target`), ``L_MV,mask`` the
movement vectors' MSE over the balls around annotated children
(:func:`~celltrack.flow.movement_training.masked_mse`) and ``L_MV,maxima`` the same MSE
only at the voxels of those balls where the predicted indicator has a local maximum
(:func:`celltrack.detect.nms.indicator_maxima_mask`, window ``nms.window_um``): early on
the vectors are fitted everywhere near a nucleus, later where they are read.

The indicator target, its weight and the movement mask travel through the crop's
geometry as one nearest-neighbour label volume (``k + target / 2``, where ``k ≥ 1``
indexes the frame's distinct (weight, mask) pairs; 0 = untrained), the vectors as the
crop's vector field, so flips, rotations and zooms move all of them with the image.

The window, normalisation, augmentation (including ``train.shift_um``, which moves only
the frames before t, so the indicator target of frame t is untouched), optimisation
(``crops_per_epoch`` counts the indicator-only frames too) and tiling come from the
movement config; the indicator config gives the indicator's target, loss and NMS window.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from celltrack.config.indicator import IndicatorConfig
from celltrack.config.movement import MovementConfig, MovementLossConfig
from celltrack.detect.indicator_targets import indicator_training_target
from celltrack.detect.nms import indicator_maxima_mask, window_voxels
from celltrack.errors import InvalidInputError
from celltrack.flow.movement_model import build_movement_model
from celltrack.flow.movement_targets import movement_links, movement_training_target
from celltrack.flow.movement_training import (
    CROP_MARGIN,
    MovementTrainResult,
    axis_weights,
    check_window_fits,
    epoch_frames,
    masked_mse,
    resume_model,
    run_epochs,
    shift_arguments,
)
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph
from celltrack.graph.tags import REVIEWED, Tag, tags_of
from celltrack.io import as_movie
from celltrack.nn.crops import sample_labelled_crop
from celltrack.nn.training import check_same_run
from celltrack.nn.windows import frame_window

__all__ = ["JOINT_HEADS", "blend_alpha", "decode_targets", "encode_targets", "train_joint"]

logger = logging.getLogger(__name__)

#: The heads of a joint model, in output order.
JOINT_HEADS = ("indicator", "movement")
#: indicator config sections that shape joint training
_INDICATOR_SECTIONS = ("target", "loss", "nms")


def blend_alpha(step: float, cfg: MovementLossConfig) -> float:
    """Linajea's blend ``α(step) = 1 / (1 + exp(f · (o − step)))`` (unitless, in (0, 1)).

    Parameters
    ----------
    step : float
        Optimisation steps taken.
    cfg : MovementLossConfig
        ``blend_rate`` f (1/step) and ``blend_offset_steps`` o (steps).

    Examples
    --------
    >>> cfg = MovementLossConfig(blend_rate=0.01, blend_offset_steps=200)
    >>> blend_alpha(200, cfg), round(blend_alpha(0, cfg), 4)
    (0.5, 0.1192)
    """
    z = cfg.blend_rate * (cfg.blend_offset_steps - float(step))
    if z > 700:  # exp would overflow: α is 0 to double precision
        return 0.0
    return 1.0 / (1.0 + math.exp(z))


def encode_targets(
    target: np.ndarray, weight: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pack indicator target, indicator weight and movement mask into one label volume.

    Parameters
    ----------
    target : ndarray, shape (Z, Y, X)
        Indicator target in [0, 1].
    weight : ndarray, shape (Z, Y, X)
        Indicator training weight (≥ 0).
    mask : ndarray, shape (Z, Y, X)
        Movement mask (0/1).

    Returns
    -------
    code : ndarray, shape (Z, Y, X), float32
        ``k + target / 2`` with ``k ≥ 1`` the index of the voxel's (weight, mask) pair in
        ``levels``; 0 where weight and mask are both 0.
    levels : ndarray, shape (K, 2), float32
        The distinct (weight, mask) pairs; row 0 is (0, 0).
    """
    pairs = np.stack([np.asarray(weight, np.float32), (np.asarray(mask) > 0).astype(np.float32)],
                     axis=-1).reshape(-1, 2)
    levels, index = np.unique(pairs, axis=0, return_inverse=True)
    index = index.reshape(np.shape(weight))
    if not np.array_equal(levels[0], [0.0, 0.0]):
        levels = np.concatenate([np.zeros((1, 2), np.float32), levels])
        index = index + 1
    code = np.where(index > 0, index + 0.5 * np.clip(target, 0.0, 1.0), 0.0)
    return code.astype(np.float32), levels.astype(np.float32)


def decode_targets(
    code: np.ndarray, levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Invert :func:`encode_targets`: ``(target, weight, mask)``, each float32 like ``code``."""
    k = np.floor(code).astype(np.int64)
    target = np.where(k > 0, (code - k) * 2.0, 0.0).astype(np.float32)
    return target, levels[k, 0].astype(np.float32), levels[k, 1].astype(np.float32)


def joint_loss(
    indicator: torch.Tensor,
    movement: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    vectors: torch.Tensor,
    mask: torch.Tensor,
    alpha: float,
    *,
    cfg: MovementLossConfig,
    nms_window: Sequence[int],
    scale: Sequence[float],
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The joint loss ``w_I · L_CI + w_M · (α · L_MV,maxima + (1 − α) · L_MV,mask)``.

    Parameters
    ----------
    indicator : Tensor, shape (B, 1, Z, Y, X)
        Predicted indicator.
    movement : Tensor, shape (B, C, Z, Y, X)
        Predicted movement vectors (µm; C = 3, or 2 = (y, x) for 2D+t).
    target, weight : Tensor, shape (B, 1, Z, Y, X)
        Indicator target and training weight (0 = untrained).
    vectors : Tensor, shape (B, C, Z, Y, X)
        Target movement vectors (µm).
    mask : Tensor, shape (B, 1, Z, Y, X)
        Movement mask (1 = trained).
    alpha : float
        The blend α (:func:`blend_alpha`).
    cfg : MovementLossConfig
        ``indicator_weight`` w_I and ``movement_weight`` w_M.
    nms_window : sequence of 3 int
        Odd max-filter window (z, y, x) in voxels of the indicator maxima.
    scale : sequence of C float
        Movement scale (µm) per component.
    weights : Tensor, shape (C,), optional
        Component weights (:func:`~celltrack.flow.movement_training.axis_weights`).

    Returns
    -------
    loss : Tensor
        Scalar.
    parts : dict of str to float
        ``indicator`` (L_CI), ``mask`` (L_MV,mask), ``maxima`` (L_MV,maxima) and ``alpha``.
    """
    l_ci = masked_mse(indicator, target, weight, [1.0])
    l_mask = masked_mse(movement, vectors, mask, scale, weights)
    maxima = indicator_maxima_mask(indicator.detach(), nms_window) & (mask > 0)
    l_max = masked_mse(movement, vectors, maxima.to(movement.dtype), scale, weights)
    loss = cfg.indicator_weight * l_ci + cfg.movement_weight * (
        alpha * l_max + (1.0 - alpha) * l_mask
    )
    parts = {
        "indicator": float(l_ci.detach()),
        "mask": float(l_mask.detach()),
        "maxima": float(l_max.detach()),
        "alpha": float(alpha),
    }
    return loss, parts


@dataclass
class _JointFrame:
    t: int
    image: np.ndarray  # (C, Z, Y, X) window
    code: np.ndarray  # (Z, Y, X) encoded target/weight/mask
    levels: np.ndarray  # (K, 2)
    vectors: np.ndarray  # (3, Z, Y, X) µm
    centres: np.ndarray  # (K, 3) voxels


def _joint_frames(
    movie: Any,
    annotations: TrackGraph,
    vs: np.ndarray,
    indicator_cfg: IndicatorConfig,
    movement_cfg: MovementConfig,
    window: Sequence[int],
) -> dict[int, _JointFrame]:
    n = int(movie.shape[0])
    shape = tuple(int(s) for s in movie.shape[1:])
    fl = movement_links(annotations, movement_cfg)
    if len(fl) and (fl.t.min() < 1 or fl.t.max() >= n):
        raise InvalidInputError(
            f"link child frames span {int(fl.t.min())}..{int(fl.t.max())} but the movie has "
            f"frames 0..{n - 1}; give the annotations of this movie"
        )
    reviewed = np.isin(tags_of(annotations, default=Tag.TP), REVIEWED)
    frames = sorted({*(int(v) for v in annotations.t[reviewed]), *(int(v) for v in fl.t)})
    out: dict[int, _JointFrame] = {}
    for t in frames:
        if not 0 <= t < n:
            raise InvalidInputError(
                f"annotations of frame {t} lie outside the movie (frames 0..{n - 1})"
            )
        target, weight = indicator_training_target(
            np.asarray(movie[t]), annotations, t, vs, indicator_cfg
        )
        if t >= 1:
            vectors, mask = movement_training_target(shape, fl, t, vs, movement_cfg)
        else:
            vectors, mask = np.zeros((3, *shape), np.float32), np.zeros(shape, np.float32)
        if not (weight > 0).any() and not mask.any():
            continue
        code, levels = encode_targets(target, weight, mask)
        rows = (annotations.t == t) & reviewed
        centres = np.concatenate([annotations.positions[rows], fl.child[fl.t == t]]) / vs
        image = frame_window(movie, t, window, movement_cfg.normalize)
        out[t] = _JointFrame(t, image, code, levels, vectors, centres)
    return out


def _joint_crop(
    rng: np.random.Generator,
    frame: _JointFrame,
    cfg: MovementConfig,
    vs: np.ndarray,
    axes: Sequence[int],
    window: Sequence[int],
) -> tuple[np.ndarray, ...]:
    # frame t (the indicator's) never moves
    shift = shift_arguments(rng, cfg, vs, window, two_d=frame.image.shape[1] == 1)
    crop = sample_labelled_crop(
        rng,
        frame.image,
        cfg.train.crop_shape,
        frame.centres,
        margin=CROP_MARGIN,
        labels=frame.code,
        vectors=frame.vectors,
        augment=cfg.augment,
        voxel_size=vs,
        vector_unit="um",
        **shift,
    )
    assert crop.labels is not None and crop.vectors is not None  # both were given
    target, weight, mask = decode_targets(crop.labels, frame.levels)
    vectors = np.ascontiguousarray(crop.vectors[list(axes)], np.float32)
    return crop.image, target[None], weight[None], vectors, mask[None]


def train_joint(
    images: Any,
    annotations: TrackGraph,
    voxel_size: Sequence[float],
    indicator_cfg: IndicatorConfig | None = None,
    movement_cfg: MovementConfig | None = None,
    *,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> MovementTrainResult:
    """Train Linajea's joint model (indicator + movement vectors) from sparse annotations.

    Parameters
    ----------
    images : array_like, path or ImageSeries
        Raw movie, opened by :func:`celltrack.io.as_movie` (4-D (T, Z, Y, X), 3-D
        (T, Y, X) 2D+t).
    annotations : TrackGraph
        Annotated nuclei (positions µm, optional ``tag`` and ``covariance``) train the
        indicator; its edges parent (t−1) → child (t) (approved ones when an
        ``approved`` column exists) train the movement vectors.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) µm.
    indicator_cfg : IndicatorConfig, optional
        ``target`` and ``loss`` of the indicator, ``nms.window_um`` of the maxima term.
    movement_cfg : MovementConfig, optional
        Window, normalisation, movement targets, loss weights and blend, augmentation,
        optimisation (``train``) and model widths.
    checkpoint : str or Path, optional
        Model and training state, written atomically after every epoch; at the end it
        holds the finished model.
    resume : bool
        Continue from ``checkpoint`` if it exists (equal to an uninterrupted run).
    progress : bool
        Progress bar over epochs.

    Returns
    -------
    MovementTrainResult
        ``model`` has heads ``('indicator', 'movement')``; ``history`` records the mean
        ``loss`` and the terms ``indicator``, ``mask``, ``maxima`` and ``alpha`` per epoch.

    Raises
    ------
    InvalidInputError
        If nothing is annotated, or the window spans more frames than the movie.
    GraphError
        If a link does not join consecutive frames.
    CheckpointError
        If the checkpoint to resume from does not fit.
    """
    icfg = indicator_cfg or IndicatorConfig()
    mcfg = movement_cfg or MovementConfig()
    if not isinstance(icfg, IndicatorConfig):
        raise InvalidInputError(
            f"indicator_cfg must be an IndicatorConfig, got {type(icfg).__name__}"
        )
    if not isinstance(mcfg, MovementConfig):
        raise InvalidInputError(f"movement_cfg must be a MovementConfig, got {type(mcfg).__name__}")
    if not isinstance(annotations, TrackGraph):
        raise InvalidInputError(
            f"annotations must be a TrackGraph (nuclei and links), got {type(annotations).__name__}"
        )
    vs = check_voxel_size(voxel_size)
    movie = as_movie(images, voxel_size=vs)
    two_d = movie.shape[1] == 1
    check_window_fits(mcfg.window, movie.shape[0])
    ckpt = None if checkpoint is None else Path(checkpoint)
    dump = {
        "movement": mcfg.model_dump(mode="json"),
        "indicator": {k: v for k, v in icfg.model_dump(mode="json").items()
                      if k in _INDICATOR_SECTIONS},
    }
    current = {"joint": dump}
    ignore = [f"joint.movement.train.{k}" for k in ("epochs", "device", "num_threads")]

    def same_run(meta: Mapping[str, Any]) -> None:
        saved = meta.get("config")
        check_same_run(
            None if saved is None else {"joint": saved}, current, sections=("joint",),
            ignore=ignore, source=f"checkpoint '{ckpt}'",
        )

    model = None
    payload = None
    if ckpt is not None and resume and ckpt.is_file():
        model, payload = resume_model(ckpt, None, same_run, JOINT_HEADS)
    if model is None:
        model = build_movement_model(
            mcfg, vs, two_d=two_d, seed=mcfg.train.seed, with_indicator=True
        )
    data = _joint_frames(movie, annotations, vs, icfg, mcfg, model.window)
    if not data:
        raise InvalidInputError(
            "nothing to train the joint model from: give annotated nuclei (tag tp/fn/…) "
            "and links parent → child inside the movie"
        )
    frames = sorted(data)
    axes = model.movement_axes
    weights = axis_weights(mcfg.loss, axes)
    scale = [model.max_displacement_um[a] for a in axes]
    ind_ch, move_ch = model.channels("indicator"), model.channels("movement")
    nms = window_voxels(vs, icfg.nms.window_um, two_d=two_d)
    device = torch.device(mcfg.train.device)
    tcfg, lcfg = mcfg.train, mcfg.loss

    window = model.window

    def batches(epoch: int, rng: np.random.Generator, first_step: int) -> Iterator[Any]:
        items = epoch_frames(rng, frames, tcfg.crops_per_frame, tcfg.crops_per_epoch)
        for i, b in enumerate(range(0, items.size, tcfg.batch_size)):
            crops = [
                _joint_crop(rng, data[t], mcfg, vs, axes, window)
                for t in items[b : b + tcfg.batch_size].tolist()
            ]
            arrays = tuple(
                torch.from_numpy(np.stack([c[k] for c in crops])).to(device) for k in range(5)
            )
            yield (*arrays, blend_alpha(first_step + i, lcfg))

    def loss_of(batch: tuple[Any, ...]) -> tuple[torch.Tensor, dict[str, float]]:
        image, target, weight, vectors, mask, alpha = batch
        out = model(image)
        return joint_loss(
            out[:, ind_ch], out[:, move_ch], target, weight, vectors, mask, alpha,
            cfg=lcfg, nms_window=nms, scale=scale, weights=weights,
        )

    n_links = len(movement_links(annotations, mcfg))
    meta = {"config": dump, "n_links": n_links}
    state = run_epochs(
        model, mcfg, mode="joint", payload=payload, checkpoint=ckpt, meta=meta,
        batches=batches, loss_of=loss_of, progress=progress,
    )
    return MovementTrainResult(model=model, history=state.history, checkpoint=ckpt, n_links=n_links)
