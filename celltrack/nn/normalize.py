"""Per-frame intensity normalisation of network inputs (detection and flow)."""

from __future__ import annotations

import numpy as np

from celltrack.config.nn import NormalizeConfig
from celltrack.errors import InvalidInputError, ShapeError

__all__ = ["median_correct", "normalize_frame"]


def median_correct(frame: np.ndarray) -> np.ndarray:
    """Shift each z slice of a ``(Z, Y, X)`` frame so its median equals the global median.

    Slices whose median is not positive are left alone (empty slices of sparse data).

    Parameters
    ----------
    frame : ndarray, shape (Z, Y, X)
        One frame (any real dtype).

    Returns
    -------
    ndarray, shape (Z, Y, X), float32
    """
    frame = np.asarray(frame, dtype=np.float32)
    medians = np.median(frame.reshape(frame.shape[0], -1), axis=1)
    target = float(np.median(frame))
    shift = np.where(medians > 0, target - medians, 0.0).astype(np.float32)
    return frame + shift[:, None, None]


def normalize_frame(
    frame: np.ndarray,
    cfg: NormalizeConfig | None = None,
    *,
    median_correction: bool = False,
) -> np.ndarray:
    """Normalise a ``(Z, Y, X)`` frame (float32), optionally median-corrected first.

    ``cfg.mode == "minmax"`` maps the minimum and maximum to 0 and 1; ``"percentile"``
    (the default) maps the low and high percentiles to 0 and 1 and keeps values outside
    (hot pixels above 1), which holds on real microscopy with uneven background. A
    constant frame becomes all zeros.

    Parameters
    ----------
    frame : ndarray, shape (Z, Y, X)
        One raw frame (2D data: Z = 1).
    cfg : NormalizeConfig, optional
        Mode and percentiles (default percentile 1 – 99.8).
    median_correction : bool
        Apply :func:`median_correct` first.

    Returns
    -------
    ndarray, shape (Z, Y, X), float32
        Values in [0, 1] ('minmax'), mostly in [0, 1] ('percentile').

    Raises
    ------
    ShapeError
        If the frame is not 3-D or is empty.
    InvalidInputError
        If it holds NaN or infinite values.
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
    cfg = cfg or NormalizeConfig()
    if cfg.mode == "percentile":
        lo, hi = (float(v) for v in np.percentile(frame, (cfg.low_percentile, cfg.high_percentile)))
        if hi <= lo:  # a frame dominated by one value: fall back to its full range
            lo, hi = float(frame.min()), float(frame.max())
    else:
        lo, hi = float(frame.min()), float(frame.max())
    if hi <= lo:
        return np.zeros_like(frame)
    return (frame - lo) / np.float32(hi - lo)
