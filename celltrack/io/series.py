"""The lazily loaded movie type :class:`ImageSeries` and how frames leave stored arrays.

An :class:`ImageSeries` has shape (T, Z, Y, X) and a voxel size (z, y, x) in µm; it reads
a frame only when indexed, through a *backend* (an object with ``frame(t) -> ndarray (Z, Y,
X)`` and ``close()``). :class:`AxisPlan` maps stored axes (letters ``T Z C Y X``) to that
order; :class:`ArrayBackend` serves frames of any array-like (numpy, zarr). The file
backends live in :mod:`celltrack.io.tiff`, :mod:`celltrack.io.tiff_folder` and
:mod:`celltrack.io.zarr_image`; :func:`celltrack.io.images.read_image` picks one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from celltrack.errors import CelltrackError, FormatError, InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size

__all__ = ["TIFF_SUFFIXES", "ArrayBackend", "AxisPlan", "ImageSeries", "MetadataProblem"]

#: suffixes of TIFF files
TIFF_SUFFIXES = (".tif", ".tiff")


class MetadataProblem:
    """A voxel size that the file's metadata gives but in a broken form.

    :func:`~celltrack.io.images.read_image` raises :attr:`error` unless the caller gave
    ``voxel_size=`` (which then replaces the broken value).
    """

    def __init__(self, error: FormatError) -> None:
        self.error = error


# ---------------------------------------------------------------------------- axes
class AxisPlan:
    """How to pull frame t as (Z, Y, X) out of an array with the given axes."""

    def __init__(self, axes: str, shape: tuple[int, ...], channel: int | None, source: str):
        self.axes, self.source = axes, source
        if len(axes) != len(shape):
            raise ShapeError(
                f"{source}: axes {axes!r} name {len(axes)} dimensions but the data has "
                f"{len(shape)} (shape {shape}); give axes= with one letter per dimension"
            )
        if len(set(axes)) != len(axes) or set(axes) - set("TZCYX") or not {"Y", "X"} <= set(axes):
            raise InvalidInputError(
                f"{source}: axes {axes!r} must use each of T, Z, C, Y, X at most once and "
                "include Y and X (e.g. 'TZYX', 'TZCYX', 'ZYX', 'TYX')"
            )
        size = dict(zip(axes, shape))
        if "C" in axes:
            if channel is None:
                if size["C"] != 1:
                    raise InvalidInputError(
                        f"{source}: the data has {size['C']} channels (axes {axes!r}); "
                        "pass channel=<index> to choose one"
                    )
                channel = 0
            if not 0 <= int(channel) < size["C"]:
                raise InvalidInputError(
                    f"{source}: channel={channel} is out of range for {size['C']} channels"
                )
        elif channel not in (None, 0):
            raise InvalidInputError(f"{source}: channel={channel} given but the data has no C axis")
        self.channel = None if channel is None else int(channel)
        self.shape = (size.get("T", 1), size.get("Z", 1), size["Y"], size["X"])

    def index(self, t: int) -> tuple[tuple[Any, ...], tuple[int, ...]]:
        """Index tuple for frame t and the transpose that orders the result Z, Y, X."""
        key: list[Any] = []
        rest = []
        for letter in self.axes:
            if letter == "T":
                key.append(t)
            elif letter == "C":
                key.append(self.channel)
            else:
                key.append(slice(None))
                rest.append(letter)
        order = tuple(rest.index(a) for a in "ZYX" if a in rest)
        return tuple(key), order

    def frame(self, array: Any, t: int) -> np.ndarray:
        key, order = self.index(t)
        data = np.asarray(array[key])
        data = np.transpose(data, order)
        if "Z" not in self.axes:
            data = data[None]
        return data



# ---------------------------------------------------------------------------- backends
class ArrayBackend:
    """Frames from any array-like (numpy, zarr) with known axes."""

    def __init__(self, array: Any, plan: AxisPlan, source: str, verify: Any = None):
        self.array, self.plan, self.source, self.verify = array, plan, source, verify

    def frame(self, t: int) -> np.ndarray:
        if self.verify is not None:
            self.verify(t)  # e.g. truncated chunk files, which decode without an error
        try:
            return self.plan.frame(self.array, t)
        except CelltrackError:
            raise
        except MemoryError:
            need = int(np.prod(self.plan.shape[1:], dtype=np.float64)) * np.dtype(
                getattr(self.array, "dtype", np.uint8)).itemsize
            raise FormatError(
                f"{self.source}: frame {t} needs {need} bytes, more than the memory available; "
                "check the array shape in the store's metadata (or read it in crops)"
            ) from None
        except Exception as err:  # codecs and stores raise many types on corrupt chunks
            raise FormatError(
                f"{self.source}: cannot read frame {t} ({type(err).__name__}: {err}); a chunk "
                "is corrupt or truncated: copy or write the data again"
            ) from err

    def close(self) -> None:
        pass



# ---------------------------------------------------------------------------- series
class ImageSeries:
    """A lazily loaded movie with shape (T, Z, Y, X) and a voxel size (z, y, x) in µm.

    ``series[t]`` reads one frame (an ndarray (Z, Y, X)); ``series[a:b]`` reads frames
    ``a..b-1`` as (k, Z, Y, X); ``series[t, z0:z1]`` crops after reading frame t. Nothing
    is cached: every access reads from the source. ``len(series)`` is T; iterating yields
    frames; :meth:`to_numpy` loads everything.

    Create it with :func:`read_image`.
    """

    def __init__(
        self,
        backend: Any,
        shape: tuple[int, int, int, int],
        dtype: np.dtype,
        voxel_size: np.ndarray,
        source: str,
    ) -> None:
        self._backend = backend
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.voxel_size = check_voxel_size(voxel_size)
        self.source = source

    @property
    def ndim(self) -> int:
        """Always 4 (T, Z, Y, X)."""
        return 4

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"ImageSeries(shape={self.shape}, dtype={self.dtype}, "
            f"voxel_size={self.voxel_size.tolist()} µm, source={self.source!r})"
        )

    def _frame(self, t: int) -> np.ndarray:
        n = self.shape[0]
        if not -n <= t < n:
            raise IndexError(f"frame {t} is out of range for a movie of {n} frames")
        return self._backend.frame(t % n)

    def __getitem__(self, key: Any) -> np.ndarray:
        rest: tuple = ()
        if isinstance(key, tuple):
            if not key:
                return self.to_numpy()
            key, rest = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            frame = self._frame(int(key))
            return frame[rest] if rest else frame
        if isinstance(key, slice):
            frames = range(*key.indices(self.shape[0]))
        else:
            arr = np.asarray(key)
            if arr.dtype == bool:
                arr = np.flatnonzero(arr)
            if arr.dtype.kind not in "iu" or arr.ndim != 1:
                raise InvalidInputError(
                    f"index frames with an int, a slice or a 1-D int array, got {key!r}"
                )
            frames = arr.tolist()
        stack = np.empty((len(frames), *self.shape[1:]), self.dtype)
        for i, t in enumerate(frames):
            stack[i] = self._frame(int(t))
        return stack[(slice(None), *rest)] if rest else stack

    def __iter__(self) -> Iterator[np.ndarray]:
        for t in range(self.shape[0]):
            yield self._frame(t)

    def to_numpy(self) -> np.ndarray:
        """Load the whole movie, shape (T, Z, Y, X)."""
        return self[0 : self.shape[0]]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self.to_numpy()
        return data if dtype is None else data.astype(dtype)

    def close(self) -> None:
        """Close open file handles (reading again reopens them)."""
        self._backend.close()

    def __enter__(self) -> ImageSeries:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

