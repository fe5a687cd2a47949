"""Per-frame normalisation and tiled prediction of class probabilities.

Tiles overlap and are blended by linear ramps normalised by the summed weights (see
:func:`celltrack.nn.predict_tiled`), so there are no seams; memory is bounded by the
tile shape times the tile batch.
"""

from __future__ import annotations

import numpy as np
import torch

from celltrack.detect.config import PredictConfig
from celltrack.detect.model import DetectionUNet
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.nn import evaluating, predict_tiled

__all__ = ["median_correct", "normalize_frame", "predict_probabilities"]


def median_correct(frame: np.ndarray) -> np.ndarray:
    """Shift each z slice of a ``(Z, Y, X)`` frame so its median equals the global median.

    Slices whose median is not positive are left alone (empty slices of sparse data).
    """
    frame = np.asarray(frame, dtype=np.float32)
    medians = np.median(frame.reshape(frame.shape[0], -1), axis=1)
    target = float(np.median(frame))
    shift = np.where(medians > 0, target - medians, 0.0).astype(np.float32)
    return frame + shift[:, None, None]


def normalize_frame(frame: np.ndarray, *, median_correction: bool = False) -> np.ndarray:
    """Min–max normalise a ``(Z, Y, X)`` frame to [0, 1] (float32), optionally median-corrected.

    A constant frame becomes all zeros.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3:
        raise ShapeError(f"a frame must be (Z, Y, X), got shape {frame.shape}")
    if frame.size == 0:
        raise ShapeError(f"frame is empty (shape {frame.shape})")
    frame = frame.astype(np.float32)
    if not np.all(np.isfinite(frame)):
        raise InvalidInputError("frame contains NaN or infinite values; clean the image first")
    if median_correction:
        frame = median_correct(frame)
    lo, hi = float(frame.min()), float(frame.max())
    if hi <= lo:
        return np.zeros_like(frame)
    return (frame - lo) / (hi - lo)


def predict_probabilities(
    model: DetectionUNet,
    volume: np.ndarray,
    cfg: PredictConfig | None = None,
    *,
    normalize: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """Class probabilities of one frame, predicted tile by tile.

    Parameters
    ----------
    model : DetectionUNet
        Trained detection model (put in eval mode for the call).
    volume : ndarray, shape (Z, Y, X)
        One raw frame (2D data: Z = 1).
    cfg : PredictConfig, optional
        Tile shape, overlap, tile batch, median correction, device.
    normalize : bool
        Min–max normalise the frame first (set False if it already is).
    progress : bool
        Show a tqdm bar over tiles.

    Returns
    -------
    ndarray, shape (3, Z, Y, X), float32
        Probabilities of background, periphery and centre (sum to 1 per voxel).

    Raises
    ------
    ShapeError
        If the volume is not 3D or the model cannot take it (e.g. Z > 1 for a 2D model).
    """
    cfg = cfg or PredictConfig()
    if not isinstance(model, DetectionUNet):
        raise InvalidInputError(
            f"model must be a DetectionUNet (build_model / load_model), got {type(model).__name__}"
        )
    volume = np.asarray(volume)
    if volume.ndim == 2:
        volume = volume[None]
    if volume.ndim != 3:
        raise ShapeError(
            f"predict_probabilities takes one frame (Z, Y, X) (or (Y, X)), got shape "
            f"{volume.shape}; loop over frames or use detect()"
        )
    model.check_input((1, 1, *volume.shape))
    frame = (
        normalize_frame(volume, median_correction=cfg.median_correction)
        if normalize
        else volume.astype(np.float32)
    )
    device = torch.device(cfg.device)

    def run(x: torch.Tensor) -> torch.Tensor:
        return model(x).exp()

    with evaluating(model, device):
        return predict_tiled(
            run,
            frame[None],
            3,
            tile_shape=cfg.tile_shape,
            overlap=cfg.overlap,
            batch_size=cfg.batch_size,
            device=device,
            progress=progress,
        )
