"""Movies stored as one TIFF file per frame (e.g. CTC ``t000.tif``), sorted by number.

:func:`open_folder` checks that every frame has the same 2D (Y, X) or 3D (Z, Y, X) shape
and returns a frame backend for :class:`~celltrack.io.series.ImageSeries`.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError, InvalidInputError, ShapeError
from celltrack.io.series import TIFF_SUFFIXES
from celltrack.io.tiff import tiff_voxel_size

__all__ = ["FolderBackend", "open_folder"]


class FolderBackend:
    """One TIFF file per frame (e.g. CTC ``t000.tif``), sorted by the number in the name."""

    def __init__(self, files: list[Path], shape: tuple[int, int, int], dtype: np.dtype):
        self.files, self.frame_shape, self.dtype = files, shape, dtype

    def frame(self, t: int) -> np.ndarray:
        import tifffile

        file = self.files[t]
        try:
            data = tifffile.imread(file)
        except Exception as err:
            raise FormatError(f"{file}: unreadable TIFF ({type(err).__name__}: {err})") from err
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[None]
        if data.dtype != self.dtype:
            raise FormatError(
                f"{file}: frame {t} holds {data.dtype} pixels but the movie's first frame "
                f"holds {self.dtype}; write every frame with the same pixel type"
            )
        if data.shape != self.frame_shape:
            raise FormatError(
                f"{file}: frame shape {data.shape} differs from the first frame's "
                f"{self.frame_shape}; all frames of a movie must have the same shape"
            )
        return data

    def close(self) -> None:
        pass



def _frame_number(path: Path) -> int | None:
    numbers = re.findall(r"\d+", path.stem)
    return int(numbers[-1]) if numbers else None


def open_folder(
    folder: Path, axes: str | None
) -> tuple[Any, tuple[int, int, int, int], np.dtype, np.ndarray | None]:
    import tifffile

    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES]
    if not files:
        raise FormatError(f"{folder}: no TIFF files (and not a Zarr store)")
    numbered = [(_frame_number(p), p) for p in files]
    if any(n is None for n, _ in numbered):
        bad = [p.name for n, p in numbered if n is None][:5]
        raise FormatError(f"{folder}: cannot order frames, files without a number: {bad}")
    numbered.sort(key=lambda item: (item[0], item[1].name))
    numbers = [n for n, _ in numbered]
    if len(set(numbers)) != len(numbers):
        counts = Counter(numbers)
        dup = sorted(n for n, c in counts.items() if c > 1)[:5]
        raise FormatError(
            f"{folder}: several files carry the frame numbers {dup}; keep one file per frame"
        )
    gaps = [(a, b) for a, b in itertools.pairwise(numbers) if b != a + 1]
    if gaps:
        a, b = gaps[0]
        names = dict((n, p.name) for n, p in numbered)
        lost = b - a - 1
        raise FormatError(
            f"{folder}: frame numbers jump from {a} ({names[a]}) to {b} ({names[b]}): "
            f"{lost} frame{'s' if lost != 1 else ''} missing ({len(gaps)} gap"
            f"{'s' if len(gaps) != 1 else ''} in all); the files would be read as consecutive "
            "frames. Add the missing frames or rename the files so their numbers are consecutive"
        )
    files = [p for _, p in numbered]
    shapes = []
    dtypes = []
    meta_vs = None
    dtype = None
    for i, file in enumerate(files):
        try:
            with tifffile.TiffFile(file) as tif:
                if not tif.series:
                    raise FormatError(f"{file}: no image data found (corrupt or empty TIFF)")
                s = tif.series[0]
                shape = tuple(n for n in s.shape if n != 1) or (1,)
                dtypes.append(np.dtype(s.dtype))
                if i == 0:
                    dtype = s.dtype
                    shape3 = (1, *shape) if len(shape) == 2 else shape
                    meta_vs = tiff_voxel_size(tif, (1, *shape3)) if len(shape3) == 3 else None
        except FormatError:
            raise
        except Exception as err:
            raise FormatError(f"{file}: unreadable TIFF ({type(err).__name__}: {err})") from err
        shapes.append(shape)
    if axes is not None and axes.upper() not in ("ZYX", "YX"):
        raise InvalidInputError(
            f"{folder}: per-frame files hold 'ZYX' or 'YX' data, got axes={axes!r}"
        )
    first = shapes[0]
    if len(first) not in (2, 3):
        raise ShapeError(
            f"{files[0]}: a frame must be 2D (Y, X) or 3D (Z, Y, X), got shape {first}"
        )
    differ = [f.name for f, s in zip(files, shapes) if s != first]
    if differ:
        raise FormatError(
            f"{folder}: frames {differ[:5]} have a different shape than {files[0].name} "
            f"{first}; all frames of a movie must have the same shape"
        )
    other = [(f.name, d) for f, d in zip(files, dtypes) if d != dtypes[0]]
    if other:
        raise FormatError(
            f"{folder}: frames {[n for n, _ in other[:5]]} hold {other[0][1]} pixels but "
            f"{files[0].name} holds {dtypes[0]}; all frames of a movie must have the same "
            "pixel type: convert them"
        )
    frame_shape = (1, *first) if len(first) == 2 else first
    backend = FolderBackend(files, frame_shape, np.dtype(dtype))
    return backend, (len(files), *frame_shape), np.dtype(dtype), meta_vs

