"""Tiled flow prediction on a pair of consecutive frames."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from celltrack.config.flow import FlowConfig, FlowPredictConfig
from celltrack.config.nn import NormalizeConfig
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.flow.frames import as_frame
from celltrack.flow.model import FlowUNet
from celltrack.nn import evaluating, predict_tiled
from celltrack.nn.normalize import normalize_frame
from celltrack.nn.threads import torch_threads
from celltrack.nn.tiling import network_divisor

__all__ = ["predict_flow"]


def predict_flow(
    model: FlowUNet,
    prev: Any,
    cur: Any,
    cfg: FlowConfig | FlowPredictConfig | None = None,
    *,
    normalization: NormalizeConfig | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Predict the backward flow of frame ``cur`` (t) towards frame ``prev`` (t−1).

    Parameters
    ----------
    model : FlowUNet
        A trained flow model (its ``max_displacement_um`` sets the output scale).
    prev, cur : array_like, shape (Z, Y, X) or (Y, X)
        Raw frames t−1 and t (each is normalised here, as in training).
    cfg : FlowConfig or FlowPredictConfig, optional
        Tiling (``tile_shape``, ``overlap``, ``batch_size``, ``device``) and torch
        threads (``num_threads``; None = the free cores); a FlowConfig also gives its
        ``normalize`` settings.
    normalization : NormalizeConfig, optional
        Per-frame normalisation; must be the training's (``FlowConfig.normalize``).
        Default: that of a FlowConfig ``cfg``, else percentile 1 – 99.8.
    progress : bool
        Show a progress bar over tiles.

    Returns
    -------
    ndarray, shape (3, Z, Y, X), float32
        Backward displacement ``parent − child`` in **µm** (z, y, x) at every voxel of
        frame t: the voxel's content was at ``position + flow`` in frame t−1. For a 2D+t
        model the z channel is 0.

    Raises
    ------
    ShapeError
        If the two frames differ in shape, or a 3-D frame is given to a 2D+t model.
    """
    if not isinstance(model, FlowUNet):
        raise InvalidInputError(f"model must be a FlowUNet, got {type(model).__name__}")
    a, b = as_frame(prev, "prev"), as_frame(cur, "cur")
    if a.shape != b.shape:
        raise ShapeError(
            f"prev and cur must have the same shape, got {a.shape} and {b.shape} voxels"
        )
    if model.two_d and a.shape[0] != 1:
        raise ShapeError(
            f"this is a 2D+t flow model but the frames have Z = {a.shape[0]}; predict "
            "slice by slice or train a 3D model"
        )
    if isinstance(cfg, FlowConfig):
        normalization = normalization or cfg.normalize
        pcfg = cfg.predict
    else:
        pcfg = cfg or FlowPredictConfig()
    volume = np.stack([normalize_frame(a, normalization), normalize_frame(b, normalization)])
    device = torch.device(pcfg.device)
    with torch_threads(pcfg.num_threads, what="flow prediction"), evaluating(model, device):
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
    scale = np.asarray(model.max_displacement_um, np.float32)
    flow = np.zeros((3, *a.shape), np.float32)
    flow[model.axes] = out * scale[model.axes, None, None, None]
    return flow
