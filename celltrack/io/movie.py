"""The one movie boundary: :func:`as_movie` turns whatever a user holds into an ImageSeries.

Every public entry point that takes a movie (detection, flow, Pipeline, Project, the CLI)
calls :func:`as_movie` first, so an input means the same thing everywhere:

========================= ==========================================================
input                     read as
========================= ==========================================================
4-D array                 (T, Z, Y, X)
3-D array                 (T, Y, X): 2D+t, promoted to Z = 1 (``axes="ZYX"`` for one
                          volume, which becomes T = 1)
path (TIFF, folder, Zarr) the file's own axes (``axes=`` overrides them)
ImageSeries               itself (``voxel_size=`` overrides its voxel size)
========================= ==========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import InvalidInputError, ShapeError
from celltrack.io.images import ImageSeries, read_image

__all__ = ["DEFAULT_AXES", "as_movie"]

#: Axes of an array without ``axes=``, by its number of dimensions.
DEFAULT_AXES = {4: "TZYX", 3: "TYX"}


def as_movie(
    images: Any,
    *,
    axes: str | None = None,
    voxel_size: Sequence[float] | np.ndarray | None = None,
) -> ImageSeries:
    """Open a movie as an :class:`~celltrack.io.images.ImageSeries` (T, Z, Y, X), lazily.

    Parameters
    ----------
    images : ndarray, array-like, str, Path or ImageSeries
        The movie: an array (4-D ``(T, Z, Y, X)``; 3-D ``(T, Y, X)`` 2D+t), a path that
        :func:`~celltrack.io.images.read_image` opens (TIFF, folder of TIFF frames, Zarr,
        OME-Zarr), or an ImageSeries.
    axes : str, optional
        One letter of ``T Z C Y X`` per stored dimension, e.g. ``"TYX"``, ``"ZYX"`` (one
        volume), ``"TCZYX"``. Default: the file's axes, or :data:`DEFAULT_AXES` for arrays.
    voxel_size : sequence of 3 float, optional
        Voxel size (z, y, x) in µm; overrides file metadata, required for arrays. For 2D+t
        data give ``(1.0, y, x)``.

    Returns
    -------
    ImageSeries
        Shape (T, Z, Y, X); frames are read on access.

    Raises
    ------
    ShapeError
        For an array that is not 3-D or 4-D without ``axes``, or axes that do not fit.
    InvalidInputError
        For a missing or bad voxel size, or ``axes`` given with an ImageSeries.
    FormatError
        For a missing or unreadable file.
    """
    if isinstance(images, ImageSeries):
        if axes not in (None, "TZYX"):
            raise InvalidInputError(
                f"axes={axes!r} given with an ImageSeries, which is already (T, Z, Y, X); "
                "pass the file or array itself to reinterpret its axes"
            )
        return images if voxel_size is None else read_image(images, voxel_size=voxel_size)
    if isinstance(images, (str, Path)):
        return read_image(images, axes=axes, voxel_size=voxel_size)
    if not (hasattr(images, "shape") and hasattr(images, "dtype")):
        try:
            images = np.asarray(images)
        except Exception as exc:  # ragged lists and the like
            raise InvalidInputError(
                f"images must be an array, a path or an ImageSeries, got "
                f"{type(images).__name__} ({exc})"
            ) from None
    if images.dtype == object or images.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"images must hold numbers (integer or float pixels), got dtype {images.dtype}"
        )
    if axes is None:
        axes = DEFAULT_AXES.get(len(images.shape))
        if axes is None:
            raise ShapeError(
                f"images must be (T, Z, Y, X) or 2D+t (T, Y, X), got shape "
                f"{tuple(images.shape)}; pass axes= naming every dimension (e.g. 'TCZYX')"
            )
    if 0 in tuple(images.shape):
        raise ShapeError(f"images must not be empty, got shape {tuple(images.shape)}")
    return read_image(images, axes=axes.upper(), voxel_size=voxel_size)
