"""Lazy reading of (T, Z, Y, X) movies from TIFF, TIFF folders and (OME-)Zarr; Zarr writing.

:func:`read_image` opens a movie without reading its pixels and returns an
:class:`ImageSeries`: indexing it with a frame number loads that frame (Z, Y, X) only, so
movies larger than memory work. Axes are taken from the file (tifffile's series axes,
OME-Zarr axes) or from an explicit ``axes=`` string using the letters ``T Z C Y X``; 2D
data is promoted to ``Z = 1`` and single volumes to ``T = 1``. The voxel size (z, y, x)
in µm comes from the file's metadata (ImageJ resolution + spacing, OME-TIFF physical
sizes, TIFF resolution tags, OME-Zarr scale transformations) or from the caller.

:func:`write_image` writes a movie as OME-Zarr (v0.4, one chunk per frame) or as a plain
Zarr array, frame by frame and atomically.

This module only dispatches; each backend has its own module: :mod:`celltrack.io.series`
(the :class:`ImageSeries` type, axis handling, in-memory arrays), :mod:`celltrack.io.tiff`,
:mod:`celltrack.io.tiff_folder` and :mod:`celltrack.io.zarr_image` (reading and
:func:`write_image`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError, InvalidInputError
from celltrack.geometry import check_voxel_size
from celltrack.io.series import TIFF_SUFFIXES, ArrayBackend, AxisPlan, ImageSeries
from celltrack.io.tiff import open_tiff
from celltrack.io.tiff_folder import open_folder
from celltrack.io.zarr_image import (
    MetadataProblem,
    is_zarr,
    open_zarr,
    write_image,
    zarr_attr_voxel_size,
)

__all__ = ["ImageSeries", "read_block", "read_image", "write_image"]

logger = logging.getLogger(__name__)


def read_image(
    source: str | Path | np.ndarray | Any,
    *,
    voxel_size: Sequence[float] | np.ndarray | None = None,
    axes: str | None = None,
    channel: int | None = None,
    series: int = 0,
    key: str | None = None,
    level: int = 0,
    allow_missing_chunks: bool = False,
) -> ImageSeries:
    """Open a movie lazily as an :class:`ImageSeries` (T, Z, Y, X).

    Parameters
    ----------
    source : str, Path, ndarray or zarr.Array
        A TIFF file (multi-page, ImageJ hyperstack, OME-TIFF), a folder of per-frame TIFF
        files (sorted by the number in their names, e.g. CTC ``t000.tif``), a Zarr array
        or group (OME-Zarr: level ``level`` of the first multiscale image), or an
        in-memory array.
    voxel_size : sequence of 3 float, optional
        Voxel size (z, y, x) in µm; overrides the file's metadata. Required when the
        source has none (for 2D data give (1.0, y, x)).
    axes : str, optional
        Letters from ``T Z C Y X``, one per dimension of the stored data, overriding the
        axes found in the file (e.g. ``"TYX"`` for a plain multi-page 2D+t TIFF, which is
        otherwise read as one Z stack). Arrays without metadata default to ``"TZYX"``.
    channel : int, optional
        Channel to read when the data has a C axis with more than one channel.
    series : int
        TIFF series index.
    key : str, optional
        Path of the array inside a Zarr group (when it is not OME-Zarr).
    level : int
        OME-Zarr resolution level (0 = full resolution).
    allow_missing_chunks : bool
        Zarr only: read chunks whose files are missing as the array's fill value.
        By default a missing chunk file is an error, since it would read as zeros
        without any sign (an interrupted copy, a lost file).

    Returns
    -------
    ImageSeries

    Raises
    ------
    FormatError
        If the file is missing, corrupt or truncated (also: missing Zarr chunk files),
        its metadata is broken, or frames in a folder differ in shape or dtype or skip
        frame numbers.
    ShapeError
        If the data's dimensionality does not match its axes.
    InvalidInputError
        On a bad voxel size or channel, or when no voxel size is known.
    """
    user_vs = None if voxel_size is None else check_voxel_size(voxel_size)
    if axes is not None and not isinstance(axes, str):
        raise InvalidInputError(f"axes must be a string such as 'TZYX', got {axes!r}")
    if isinstance(source, ImageSeries):
        backend, shape, dtype, meta_vs, name = (
            source._backend, source.shape, source.dtype, source.voxel_size, source.source
        )
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise FormatError(f"{path}: no such file or folder")
        if path.is_file():
            if path.suffix.lower() not in TIFF_SUFFIXES:
                raise FormatError(
                    f"{path}: unsupported image file type {path.suffix!r}; give a .tif/.tiff "
                    "file, a folder of TIFF frames or a Zarr store"
                )
            backend, shape, dtype, meta_vs = open_tiff(path, series, axes, channel)
        elif is_zarr(path):
            backend, shape, dtype, meta_vs = open_zarr(
                path, axes, channel, key, level, allow_missing_chunks
            )
        else:
            backend, shape, dtype, meta_vs = open_folder(path, axes)
        name = str(path)
    elif hasattr(source, "shape") and hasattr(source, "dtype") and hasattr(source, "__getitem__"):
        name = f"<{type(source).__name__} {tuple(source.shape)}>"
        plan = AxisPlan((axes or "TZYX").upper(), tuple(source.shape), channel, name)
        backend, shape, dtype = ArrayBackend(source, plan, name), plan.shape, source.dtype
        meta_vs = zarr_attr_voxel_size(source, name)
    else:
        raise InvalidInputError(
            f"source must be a path, an ImageSeries or an array, got {type(source).__name__}"
        )
    if isinstance(meta_vs, MetadataProblem):
        if user_vs is None:
            raise meta_vs.error
        logger.info("%s: broken voxel size metadata replaced by voxel_size=%s µm",
                    name, user_vs.tolist())
        meta_vs = None
    if user_vs is not None:
        if meta_vs is not None and not np.allclose(meta_vs, user_vs, rtol=1e-3):
            logger.info("%s: voxel size %s µm given overrides the file's %s µm",
                        name, user_vs.tolist(), np.asarray(meta_vs).tolist())
        vs = user_vs
    elif meta_vs is not None:
        vs = meta_vs
    else:
        raise InvalidInputError(
            f"{name}: the voxel size is not in the file's metadata; pass voxel_size=(z, y, x) "
            "in µm (for 2D data (1.0, y, x))"
        )
    return ImageSeries(backend, shape, dtype, vs, name)


def _plan_block(plan: AxisPlan, array: Any, t: int, block: tuple[slice, ...],
                squeeze: tuple | None = None) -> np.ndarray:
    """Read only ``block`` (z, y, x slices) of frame ``t`` from an array with ``plan``'s axes."""
    want = dict(zip("ZYX", block))
    key, order = plan.index(t)
    letters = [a for a in plan.axes if a not in "TC"]
    it = iter(letters)
    key = tuple(want[next(it)] if isinstance(k, slice) else k for k in key)
    if squeeze is not None:  # TIFF: singleton file axes dropped from the plan
        full, kept = [], iter(key)
        for s in squeeze:
            full.append(next(kept) if isinstance(s, slice) else s)
        key = tuple(full)
    data = np.transpose(np.asarray(array[key]), order)
    if "Z" not in plan.axes:
        data = data[None][want["Z"]]
    return data


def read_block(series: ImageSeries, t: int, block: Sequence[slice]) -> np.ndarray:
    """Read one block (z, y, x slices) of frame ``t`` of a movie, reading as little as possible.

    Zarr, dask, numpy and memory-mapped arrays read only the block's chunks; a TIFF
    series is read through tifffile's zarr store (only the pages of the block's z
    slices); folders of TIFF frames read the whole frame and crop.

    Parameters
    ----------
    series : ImageSeries
        The movie (from :func:`read_image`).
    t : int
        Frame index.
    block : sequence of 3 slice
        Region (z, y, x) in voxels, with non-negative starts and stops inside the frame
        and step 1.

    Returns
    -------
    ndarray, shape (z, y, x)
        The block in the movie's dtype.

    Raises
    ------
    InvalidInputError
        If the block is not 3 slices inside the frame.
    FormatError
        If the data cannot be read.
    """
    block = tuple(block)
    frame_shape = series.shape[1:]
    if len(block) != 3 or not all(
        isinstance(s, slice) and s.step in (None, 1) and s.start is not None
        and s.stop is not None and 0 <= s.start < s.stop <= n
        for s, n in zip(block, frame_shape)
    ):
        raise InvalidInputError(
            f"block must be 3 slices (z, y, x) with 0 <= start < stop <= {frame_shape}, got "
            f"{block!r}"
        )
    n = series.shape[0]
    if not -n <= int(t) < n:
        raise IndexError(f"frame {t} is out of range for a movie of {n} frames")
    t = int(t) % n
    backend = series._backend
    plan = getattr(backend, "plan", None)
    if isinstance(backend, ArrayBackend):
        if backend.verify is not None:
            backend.verify(t)
        try:
            return _plan_block(plan, backend.array, t, block)
        except Exception as err:
            raise FormatError(
                f"{series.source}: cannot read a block of frame {t} ({type(err).__name__}: "
                f"{err}); a chunk is corrupt or truncated: copy or write the data again"
            ) from err
    if plan is not None and hasattr(backend, "squeeze") and hasattr(backend, "array"):
        if backend.tif is None or backend.tif.filehandle.closed:
            backend._open()
        try:
            return _plan_block(plan, backend.array, t, block, backend.squeeze)
        except Exception as err:  # truncated data, decode errors, ...
            raise FormatError(
                f"{series.source}: cannot read a block of frame {t} ({type(err).__name__}: "
                f"{err}); the file may be truncated or corrupt"
            ) from err
    return np.asarray(series[t])[block]

