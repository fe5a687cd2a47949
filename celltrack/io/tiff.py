"""TIFF movies (multi-page, ImageJ hyperstacks, OME-TIFF), read lazily page by page.

:func:`open_tiff` opens one series of a TIFF file as a frame backend for
:class:`~celltrack.io.series.ImageSeries` and reads the voxel size from its metadata
(:func:`tiff_voxel_size`). ``tifffile`` and ``zarr`` load only when a file is opened.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError, InvalidInputError
from celltrack.geometry import check_voxel_size
from celltrack.io.series import AxisPlan, MetadataProblem
from celltrack.io.units import unit_scale

__all__ = ["TiffBackend", "normalise_tiff_axes", "open_tiff", "tiff_voxel_size"]

logger = logging.getLogger(__name__)

_UNKNOWN_AXES = "IQ"  # tifffile's letters for an unspecified page/sequence axis


def normalise_tiff_axes(axes: str, shape: tuple[int, ...], source: str) -> tuple[str, tuple]:
    """Map tifffile axes to T Z C Y X letters; returns (axes, squeeze-key for size-1 extras)."""
    letters = list(axes.upper().replace("S", "C") if "C" not in axes.upper() else axes.upper())
    keep = []
    for i, (letter, n) in enumerate(zip(letters, shape)):
        if letter in "TZCYX" + _UNKNOWN_AXES or n != 1:
            keep.append(i)
    letters = [letters[i] for i in keep]
    unknown = [i for i, a in enumerate(letters) if a in _UNKNOWN_AXES]
    for i in reversed(unknown):
        for target in ("Z", "T"):
            if target not in letters:
                letters[i] = target
                break
    result = "".join(letters)
    if set(result) - set("TZCYX") or len(set(result)) != len(result):
        raise FormatError(
            f"{source}: cannot interpret TIFF axes {axes!r} (shape {shape}) as T, Z, C, Y, X; "
            "pass axes= (e.g. axes='TZYX') with one letter per dimension"
        )
    squeeze = tuple(slice(None) if i in keep else 0 for i in range(len(shape)))
    return result, squeeze



class _TiffLogErrors(logging.Handler):
    """Collect errors tifffile logs (it recovers from truncated files by dropping pages)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> _TiffLogErrors:
        logging.getLogger("tifffile").addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger("tifffile").removeHandler(self)


def _check_complete(tif: Any, path: Path) -> None:
    """Raise FormatError when the pixel data of a TIFF ends past the end of the file."""
    size = tif.filehandle.size
    ij = tif.imagej_metadata if tif.is_imagej else None
    series = tif.series[0]
    if ij and "images" in ij:
        planes = int(np.prod([n for n, a in zip(series.shape, series.axes) if a not in "YXS"]))
        if planes < int(ij["images"]):
            raise FormatError(
                f"{path}: ImageJ metadata announces {ij['images']} images but only {planes} "
                "are stored; the file is truncated"
            )
    offset = series.dataoffset
    if offset is not None and offset + series.nbytes > size:
        raise FormatError(
            f"{path}: pixel data runs to byte {offset + series.nbytes} but the file has {size} "
            "bytes; the file is truncated"
        )


class TiffBackend:
    """Frames of one TIFF series, read page by page through tifffile's zarr interface."""

    def __init__(self, path: Path, series: int, axes: str | None, channel: int | None):
        self.path, self.series_index, self.axes_arg, self.channel = path, series, axes, channel
        self._open()

    def _open(self) -> None:
        import tifffile
        import zarr

        try:
            with _TiffLogErrors() as problems:
                self.tif = tifffile.TiffFile(self.path)
                n_series = len(self.tif.series)
            if problems.messages:
                raise FormatError(
                    f"{self.path}: corrupt or truncated TIFF ({'; '.join(problems.messages[:3])})"
                )
            if not n_series:
                raise FormatError(f"{self.path}: no image data found (corrupt or empty TIFF)")
            _check_complete(self.tif, self.path)
            if not 0 <= self.series_index < len(self.tif.series):
                raise InvalidInputError(
                    f"{self.path}: series={self.series_index} but the file has "
                    f"{len(self.tif.series)} series"
                )
            series = self.tif.series[self.series_index]
            shape, file_axes = tuple(series.shape), series.axes
            store = series.aszarr()
            array = zarr.open_array(store, mode="r")
        except (InvalidInputError, FormatError):
            self.close()
            raise
        except Exception as err:  # tifffile raises many exception types on corrupt files
            self.close()
            what = f"{type(err).__name__}: {err}"
            raise FormatError(f"{self.path}: unreadable TIFF ({what})") from err
        if self.axes_arg is not None:
            self.squeeze: tuple = tuple(slice(None) for _ in shape)
            axes = self.axes_arg.upper()
        else:
            axes, self.squeeze = normalise_tiff_axes(file_axes, shape, str(self.path))
        self.file_axes = file_axes
        self.array = array
        kept = tuple(n for n, s in zip(shape, self.squeeze) if isinstance(s, slice))
        self.plan = AxisPlan(axes, kept, self.channel, str(self.path))

    def frame(self, t: int) -> np.ndarray:
        if self.tif is None or self.tif.filehandle.closed:
            self._open()
        key, order = self.plan.index(t)
        full, it = [], iter(key)
        for s in self.squeeze:
            full.append(next(it) if isinstance(s, slice) else s)
        try:
            data = np.asarray(self.array[tuple(full)])
        except Exception as err:  # truncated data, decode errors, ...
            raise FormatError(
                f"{self.path}: cannot read frame {t} ({type(err).__name__}: {err}); "
                "the file may be truncated or corrupt"
            ) from err
        data = np.transpose(data, order)
        return data if "Z" in self.plan.axes else data[None]

    def close(self) -> None:
        tif = getattr(self, "tif", None)
        if tif is not None:
            tif.close()
        self.tif = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["tif"] = None
        state["array"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()



def open_tiff(
    path: Path, series: int, axes: str | None, channel: int | None
) -> tuple[TiffBackend, tuple[int, int, int, int], np.dtype, np.ndarray | None]:
    """Open series ``series`` of a TIFF file: backend, shape (T, Z, Y, X), dtype, voxel size.

    The voxel size (z, y, x) µm is None when the file's metadata does not give it.
    """
    backend = TiffBackend(path, series, axes, channel)
    shape = backend.plan.shape
    return backend, shape, backend.array.dtype, tiff_voxel_size(backend.tif, shape)


def _problem(tif: Any, err: Exception) -> MetadataProblem:
    name = getattr(getattr(tif, "filehandle", None), "path", None) or "the TIFF file"
    return MetadataProblem(FormatError(
        f"{name}: the resolution / spacing metadata gives a bad voxel size ({err}); fix the "
        "metadata or pass voxel_size=(z, y, x) µm"
    ))


def tiff_voxel_size(
    tif: Any, shape: tuple[int, int, int, int]
) -> np.ndarray | MetadataProblem | None:
    """Voxel size (z, y, x) µm from ImageJ / OME / resolution-tag metadata.

    None when the metadata gives none; a :class:`MetadataProblem` when it gives a bad one
    (negative, zero, not finite).
    """
    try:
        if tif.is_ome and tif.ome_metadata:
            vs = _ome_tiff_voxel_size(tif.ome_metadata, shape)
            if vs is not None:
                return vs
        page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
        tags = page.tags
        if "XResolution" not in tags or "YResolution" not in tags:
            return None
        xres, yres = (tags[n].value for n in ("XResolution", "YResolution"))
        px_x = xres[1] / xres[0] if xres[0] else None
        px_y = yres[1] / yres[0] if yres[0] else None
        ij = tif.imagej_metadata if tif.is_imagej else None
        if ij is not None:
            scale = unit_scale(ij.get("unit"))
            z = ij.get("spacing")
        else:
            res_unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
            scale = {2: 25400.0, 3: 10000.0}.get(res_unit)
            z = None
        if scale is None or px_x is None or px_y is None:
            return None
        if shape[1] > 1 and z is None:
            return None
        z_um = float(z) * scale if shape[1] > 1 else 1.0
        return check_voxel_size([z_um, px_y * scale, px_x * scale])
    except InvalidInputError as err:
        return _problem(tif, err)
    except Exception as err:  # metadata is best effort: fall back to the user's value
        logger.debug("ignoring unreadable TIFF resolution metadata: %s", err)
        return None


def _ome_tiff_voxel_size(xml: str, shape: tuple[int, int, int, int]) -> np.ndarray | None:
    found = {}
    for axis in "ZYX":
        size = re.search(rf'PhysicalSize{axis}="([^"]+)"', xml)
        unit = re.search(rf'PhysicalSize{axis}Unit="([^"]+)"', xml)
        scale = unit_scale(unit.group(1)) if unit else 1.0  # OME default unit is µm
        if size and scale is not None:
            found[axis] = float(size.group(1)) * scale
    if "Y" not in found or "X" not in found:
        return None
    if "Z" not in found:
        if shape[1] > 1:
            return None
        found["Z"] = 1.0
    return check_voxel_size([found["Z"], found["Y"], found["X"]])

