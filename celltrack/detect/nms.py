"""Non-maximum suppression of the cell indicator: nuclei as its local maxima.

Linajea reads nodes off the indicator map with a max filter: a voxel is a maximum when
it equals the maximum of the window around it, and a maximum is a nucleus when its
value exceeds a threshold. The window is given in µm (``window_um``, full extent per
axis) and becomes an odd number of voxels per axis, ``2·floor(w / 2v) + 1``, so
anisotropic voxels get the same physical window; in 2D+t data (Z = 1) it is one voxel
in z.

:func:`indicator_maxima` (numpy, for detection) merges plateaus: touching maxima of
equal value are one nucleus, placed at the plateau voxel nearest to the plateau's
centroid. :func:`indicator_maxima_mask` (torch, for losses at predicted maxima during
training) is the plain max-pool test, as in Linajea's network (a plateau gives several
maxima); it does not import torch until called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size, plateau_representatives

if TYPE_CHECKING:
    import torch

__all__ = ["indicator_maxima", "indicator_maxima_mask", "window_voxels"]


def window_voxels(
    voxel_size: Sequence[float], window_um: Sequence[float], *, two_d: bool = False
) -> tuple[int, int, int]:
    """The max-filter window in voxels: ``2·floor(w / 2v) + 1`` per axis (odd, ≥ 1).

    Parameters
    ----------
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    window_um : sequence of 3 float
        Full extent (z, y, x) of the window in µm.
    two_d : bool
        2D+t data: one voxel in z.

    Returns
    -------
    tuple of 3 int

    Examples
    --------
    >>> window_voxels((2.0, 1.0, 1.0), (6.0, 6.0, 6.0))
    (3, 7, 7)
    """
    vs = check_voxel_size(voxel_size)
    try:
        w = np.asarray([float(v) for v in window_um], float)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"window_um must be 3 numbers (z, y, x) in µm, got {window_um!r}"
        ) from None
    if w.shape != (3,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise InvalidInputError(
            f"window_um must be 3 positive µm values (z, y, x), got {list(window_um)}"
        )
    half = np.floor(w / (2.0 * vs) + 1e-9).astype(int)
    out = [int(2 * h + 1) for h in half]
    if two_d:
        out[0] = 1
    return (out[0], out[1], out[2])


def indicator_maxima(
    indicator: np.ndarray,
    voxel_size: Sequence[float],
    window_um: Sequence[float],
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of an indicator map above a threshold (one per plateau).

    Parameters
    ----------
    indicator : ndarray, shape (Z, Y, X)
        Indicator values (e.g. in [0, 1]); (Y, X) means Z = 1.
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    window_um : sequence of 3 float
        Full extent (z, y, x) of the max-filter window in µm (see :func:`window_voxels`).
    threshold : float
        Maxima with a value ``> threshold`` are kept.

    Returns
    -------
    positions : ndarray of int64, shape (N, 3)
        Voxel indices (z, y, x) of the maxima, by decreasing score.
    scores : ndarray of float32, shape (N,)
        Indicator values there.

    Raises
    ------
    ShapeError
        If ``indicator`` is not one volume.
    InvalidInputError
        If the window or threshold is invalid, or the map holds NaN.

    Examples
    --------
    >>> ind = np.zeros((1, 9, 9), np.float32)
    >>> ind[0, 2, 2], ind[0, 6, 7] = 0.9, 0.5
    >>> pos, score = indicator_maxima(ind, (1, 1, 1), (3, 3, 3), 0.3)
    >>> pos.tolist(), score.round(2).tolist()
    ([[0, 2, 2], [0, 6, 7]], [0.9, 0.5])
    """
    arr = np.asarray(indicator)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise ShapeError(
            f"indicator_maxima takes one indicator volume (Z, Y, X), got shape "
            f"{np.asarray(indicator).shape}"
        )
    try:
        thr = float(threshold)
    except (TypeError, ValueError):
        raise InvalidInputError(f"threshold must be a number, got {threshold!r}") from None
    if not np.isfinite(thr):
        raise InvalidInputError(f"threshold must be finite, got {threshold!r}")
    arr = arr.astype(np.float32, copy=False)
    if np.isnan(arr).any():
        raise InvalidInputError("the indicator map holds NaN values; check the model output")
    size = window_voxels(voxel_size, window_um, two_d=arr.shape[0] == 1)
    peak = ndimage.maximum_filter(arr, size=size, mode="nearest")
    mask = (arr == peak) & (arr > thr)
    if not mask.any():
        return np.zeros((0, 3), np.int64), np.zeros(0, np.float32)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    positions = plateau_representatives(labels, n)
    scores = arr[tuple(positions.T)].astype(np.float32)
    rank = np.lexsort((positions[:, 2], positions[:, 1], positions[:, 0], -scores))
    return positions[rank], scores[rank]


def indicator_maxima_mask(
    indicator: torch.Tensor, window_vox: Sequence[int]
) -> torch.Tensor:
    """Voxels equal to the maximum of their window (Linajea's max-pool NMS), in torch.

    Parameters
    ----------
    indicator : torch.Tensor, shape (B, 1, Z, Y, X)
        Indicator values.
    window_vox : sequence of 3 int
        Odd window (z, y, x) in voxels (e.g. from :func:`window_voxels`).

    Returns
    -------
    torch.Tensor of bool, shape (B, 1, Z, Y, X)
        True at maxima (every voxel of a plateau that is a maximum); no threshold.

    Raises
    ------
    ShapeError
        If the tensor is not (B, 1, Z, Y, X).
    InvalidInputError
        If the window is not 3 odd positive ints.
    """
    import torch.nn.functional as F

    if indicator.dim() != 5 or indicator.shape[1] != 1:
        raise ShapeError(
            f"indicator_maxima_mask takes a (B, 1, Z, Y, X) tensor, got {tuple(indicator.shape)}"
        )
    try:
        win = [int(v) for v in window_vox]
    except (TypeError, ValueError):
        raise InvalidInputError(f"window_vox must be 3 odd ints, got {window_vox!r}") from None
    if len(win) != 3 or any(v < 1 or v % 2 == 0 for v in win):
        raise InvalidInputError(
            f"window_vox must be 3 odd positive voxel counts (z, y, x), got {list(window_vox)}"
        )
    pooled = F.max_pool3d(
        indicator, kernel_size=win, stride=1, padding=[v // 2 for v in win]
    )
    return indicator == pooled
