"""Ellipsoid geometry shared by every stage that moves spots into or out of image space.

Spots are ellipsoids with a centre (z, y, x) in µm and a covariance Σ in µm² such that
the ellipsoid is ``{p : (p − c)ᵀ Σ⁻¹ (p − c) ≤ 1}``, i.e. Σ = R·diag(r²)·Rᵀ with semi-axes
r (µm). Voxel ``(k, j, i)`` has its centre at ``(k, j, i) * voxel_size`` µm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from celltrack.errors import InvalidInputError, ShapeError

__all__ = [
    "bad_covariances",
    "check_voxel_size",
    "covariance_from_radii",
    "ellipsoid_mask",
    "plateau_representatives",
    "radii_from_covariance",
    "sphere_covariances",
]


def check_voxel_size(voxel_size: Sequence[float] | np.ndarray) -> np.ndarray:
    """Validate a voxel size ``(z, y, x)`` in µm and return it as float64 (3,).

    Raises
    ------
    InvalidInputError
        If it does not have 3 finite, strictly positive numbers.
    """
    if isinstance(voxel_size, (str, bytes)):
        raise InvalidInputError(
            f"voxel_size must be 3 numbers (z, y, x) in µm, got the text {voxel_size!r}"
        )
    try:
        vs = np.asarray(voxel_size, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        shown = repr(voxel_size)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise InvalidInputError(
            f"voxel_size must be 3 numbers (z, y, x) in µm, got {shown}"
        ) from None
    if vs.shape != (3,):
        shown = vs[:6].tolist()
        raise InvalidInputError(
            f"voxel_size must have 3 entries (z, y, x) in µm, got {vs.size}: {shown}; "
            "for 2D+t data give (1.0, y, x)"
        )
    if not np.all(np.isfinite(vs)) or np.any(vs <= 0):
        raise InvalidInputError(f"voxel_size must be finite and > 0 µm, got {vs.tolist()}")
    return vs


def bad_covariances(cov: np.ndarray) -> np.ndarray:
    """Rows whose covariance is not finite, symmetric and positive definite.

    Parameters
    ----------
    cov : ndarray, shape (N, 3, 3)
        Covariances in µm².

    Returns
    -------
    ndarray of bool, shape (N,)
        True where a covariance has a NaN or infinite entry, is not symmetric (relative
        tolerance 1e-9) or has an eigenvalue <= 0.
    """
    cov = np.asarray(cov, dtype=np.float64)
    if cov.ndim != 3 or cov.shape[1:] != (3, 3):
        raise ShapeError(f"covariances must be (N, 3, 3) in µm², got shape {cov.shape}")
    bad = ~np.all(np.isfinite(cov), axis=(1, 2))
    ok = ~bad
    if np.any(ok):
        good = cov[ok]
        scale = np.maximum(np.abs(good).max(axis=(1, 2)), 1e-300)
        asym = np.abs(good - np.swapaxes(good, 1, 2)).max(axis=(1, 2)) > 1e-9 * scale
        with np.errstate(all="ignore"):
            low = np.linalg.eigvalsh(good)[:, 0] <= 0
        bad[np.flatnonzero(ok)] = asym | low
    return bad


def covariance_from_radii(radii: np.ndarray, rotation: np.ndarray | None = None) -> np.ndarray:
    """Covariance Σ = R·diag(r²)·Rᵀ from semi-axes.

    Parameters
    ----------
    radii : ndarray, shape (N, 3) or (3,)
        Semi-axes in µm.
    rotation : ndarray, shape (N, 3, 3) or (3, 3), optional
        Columns are the axis directions (identity if omitted).

    Returns
    -------
    ndarray, shape (N, 3, 3) or (3, 3)
        Covariances in µm².
    """
    r = np.asarray(radii, dtype=np.float64)
    single = r.ndim == 1
    r = np.atleast_2d(r)
    if rotation is None:
        cov = np.zeros((r.shape[0], 3, 3))
        cov[:, [0, 1, 2], [0, 1, 2]] = r**2
    else:
        rot = np.asarray(rotation, dtype=np.float64).reshape(-1, 3, 3)
        cov = np.einsum("nij,nj,nkj->nik", rot, r**2, rot)
    return cov[0] if single else cov


def sphere_covariances(n: int, radius: float) -> np.ndarray:
    """Covariances (n, 3, 3) of spheres of ``radius`` µm."""
    return np.broadcast_to(np.eye(3) * float(radius) ** 2, (n, 3, 3)).copy()


def radii_from_covariance(cov: np.ndarray) -> np.ndarray:
    """Semi-axes (µm) of covariances (..., 3, 3), sorted ascending; NaN if not PD."""
    vals = np.linalg.eigvalsh(np.asarray(cov, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        return np.where(vals > 0, np.sqrt(np.abs(vals)), np.nan)


def ellipsoid_mask(
    center: np.ndarray,
    covariance: np.ndarray,
    voxel_size: np.ndarray,
    shape: Sequence[int],
    *,
    scale: float = 1.0,
    min_voxels: int = 0,
) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Voxels inside one ellipsoid, as a bounding-box slice and a boolean mask.

    Parameters
    ----------
    center : ndarray, shape (3,)
        Centre (z, y, x) in µm.
    covariance : ndarray, shape (3, 3)
        Covariance in µm² (must be symmetric positive definite).
    voxel_size : ndarray, shape (3,)
        Voxel size (z, y, x) in µm.
    shape : sequence of 3 int
        Volume shape (Z, Y, X) in voxels; the box is clipped to it.
    scale : float
        Multiply the semi-axes by this factor (e.g. a centre ratio).
    min_voxels : int
        If fewer voxels fall inside, grow the radii by 10 % steps until at least this
        many do (or the box covers the whole volume), so tiny nuclei still get labels.

    Returns
    -------
    slices : tuple of 3 slice
        Bounding box in the volume.
    mask : ndarray of bool
        Shape of the box; True inside the ellipsoid. Empty box if the ellipsoid lies
        outside the volume.
    """
    center = np.asarray(center, dtype=np.float64)
    cov = np.asarray(covariance, dtype=np.float64) * scale**2
    if cov.shape != (3, 3):
        raise ShapeError(f"covariance must be (3, 3) µm², got {cov.shape}")
    if not (np.all(np.isfinite(cov)) and np.all(np.isfinite(center))):
        raise InvalidInputError(
            f"ellipsoid centre {center.tolist()} or covariance {cov.tolist()} is not finite"
        )
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise InvalidInputError(
            f"covariance {cov.tolist()} is not positive definite; give radii > 0"
        ) from None
    inv = np.linalg.inv(cov)
    shape = tuple(int(s) for s in shape)
    growth = 1.0
    while True:
        half = np.sqrt(np.diag(cov)) * growth  # extent of the ellipsoid along each axis (µm)
        lo = np.maximum(np.floor((center - half) / voxel_size).astype(int), 0)
        hi = np.minimum(np.ceil((center + half) / voxel_size).astype(int) + 1, shape)
        if np.any(hi <= lo):
            empty = tuple(slice(0, 0) for _ in range(3))
            return empty, np.zeros((0, 0, 0), bool)  # type: ignore[return-value]
        grids = [(np.arange(lo[d], hi[d]) * voxel_size[d] - center[d]) for d in range(3)]
        dz, dy, dx = np.meshgrid(*grids, indexing="ij", sparse=True)
        q = (
            inv[0, 0] * dz * dz
            + inv[1, 1] * dy * dy
            + inv[2, 2] * dx * dx
            + 2 * inv[0, 1] * dz * dy
            + 2 * inv[0, 2] * dz * dx
            + 2 * inv[1, 2] * dy * dx
        )
        mask = q <= growth**2
        full_box = np.all(lo == 0) and np.all(hi == np.asarray(shape))
        if mask.sum() >= min_voxels or full_box or growth > 100:
            break
        growth *= 1.1
    return (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])), mask


def plateau_representatives(
    labels: np.ndarray, n: int, origin: Sequence[int] = (0, 0, 0)
) -> np.ndarray:
    """Per plateau 1..n of ``labels``: its voxel nearest its centroid (ties in C order).

    Parameters
    ----------
    labels : ndarray of int, shape (Z, Y, X)
        Plateau labels 1..n (0 elsewhere), e.g. from ``scipy.ndimage.label``.
    n : int
        Number of plateaus.
    origin : sequence of 3 int
        Frame voxel of ``labels[0, 0, 0]`` (a box of a frame, as block-wise extraction
        reads it): the centroids are computed in frame coordinates, so a box holding a
        whole plateau chooses the frame's voxel bit for bit.

    Returns
    -------
    ndarray of int64, shape (n, 3)
        Frame voxels (z, y, x), in label order.
    """
    mask = labels > 0
    idx = np.argwhere(mask) + np.asarray(origin, np.int64)  # (K, 3), C order
    comp = labels[mask] - 1  # (K,)
    counts = np.bincount(comp, minlength=n).astype(float)
    centroid = np.stack(
        [np.bincount(comp, weights=idx[:, d], minlength=n) / counts for d in range(3)], axis=1
    )
    dist = np.sum((idx - centroid[comp]) ** 2, axis=1)
    order = np.lexsort((dist, comp))  # by component, nearest to its centroid first
    first = order[np.r_[True, comp[order][1:] != comp[order][:-1]]]
    return idx[first].astype(np.int64)
