"""Tiled prediction of class probabilities for one frame.

Tiles overlap and are blended by linear ramps normalised by the summed weights (see
:func:`celltrack.nn.predict_tiled`), so there are no seams; memory is bounded by the
tile shape times the tile batch. Frames are normalised by
:func:`celltrack.nn.normalize_frame` (re-exported here) with the same
:class:`~celltrack.config.nn.NormalizeConfig` as in training (``DetectionConfig.normalize``),
and the network runs with ``cfg.num_threads`` torch threads
(:func:`celltrack.nn.threads.torch_threads`: the free cores when None).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from celltrack.config.detection import DetectionConfig, PredictConfig
from celltrack.config.nn import NormalizeConfig
from celltrack.detect.detector import N_CLASSES, check_detector, check_detector_input, class_scores
from celltrack.errors import ShapeError
from celltrack.nn import evaluating, predict_tiled
from celltrack.nn.normalize import median_correct, normalize_frame
from celltrack.nn.threads import torch_threads
from celltrack.nn.tiling import network_divisor

__all__ = ["median_correct", "normalize_frame", "predict_probabilities"]


def predict_probabilities(
    model: Any,
    volume: np.ndarray,
    cfg: PredictConfig | DetectionConfig | None = None,
    *,
    normalize: bool = True,
    normalization: NormalizeConfig | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Class probabilities of one frame, predicted tile by tile.

    Parameters
    ----------
    model : Detector
        A detection model (:class:`~celltrack.detect.detector.Detector`: e.g. a trained
        :class:`~celltrack.detect.model.DetectionUNet`); put in eval mode for the call.
    volume : ndarray, shape (Z, Y, X)
        One raw frame (2D data: Z = 1).
    cfg : PredictConfig or DetectionConfig, optional
        Tile shape, overlap, tile batch, median correction, device, threads; a
        DetectionConfig gives its ``predict`` section and its ``normalize`` settings.
    normalize : bool
        Normalise the frame first (set False if it already is).
    normalization : NormalizeConfig, optional
        How to normalise: must be the training's (``DetectionConfig.normalize``); default
        that of a DetectionConfig ``cfg``, else percentile 1 – 99.8.
    progress : bool
        Show a tqdm bar over tiles.

    Returns
    -------
    ndarray, shape (3, Z, Y, X), float32
        Probabilities of background, periphery and centre (softmax of the model's
        scores: they sum to 1 per voxel).

    Raises
    ------
    InvalidInputError
        If ``model`` is not a detector.
    ShapeError
        If the volume is not 3D or the model cannot take it (e.g. Z > 1 for a 2D model).
    """
    if isinstance(cfg, DetectionConfig):
        normalization = normalization or cfg.normalize
        cfg = cfg.predict
    cfg = cfg or PredictConfig()
    model = check_detector(model)
    volume = np.asarray(volume)
    if volume.ndim == 2:
        volume = volume[None]
    if volume.ndim != 3:
        raise ShapeError(
            f"predict_probabilities takes one frame (Z, Y, X) (or (Y, X)), got shape "
            f"{volume.shape}; loop over frames or use detect()"
        )
    check_detector_input(model, (1, 1, *volume.shape))
    frame = (
        normalize_frame(volume, normalization, median_correction=cfg.median_correction)
        if normalize
        else volume.astype(np.float32)
    )
    device = torch.device(cfg.device)

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(class_scores(model, x), dim=1)

    with torch_threads(cfg.num_threads), evaluating(model, device):  # type: ignore[arg-type]
        return predict_tiled(
            run,
            frame[None],
            N_CLASSES,
            tile_shape=cfg.tile_shape,
            overlap=cfg.overlap,
            batch_size=cfg.batch_size,
            tile_mode=cfg.tile_mode,
            divisor=network_divisor(model),
            device=device,
            progress=progress,
        )
