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
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError, InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size
from celltrack.io.atomic import atomic_path

__all__ = ["ImageSeries", "read_image", "write_image"]

logger = logging.getLogger(__name__)

#: length units → µm
_UNITS = {
    "micrometer": 1.0, "micrometre": 1.0, "micron": 1.0, "microns": 1.0, "um": 1.0,
    "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0, "nanometer": 1e-3, "nanometre": 1e-3, "nm": 1e-3,
    "millimeter": 1e3, "millimetre": 1e3, "mm": 1e3, "centimeter": 1e4, "cm": 1e4,
    "meter": 1e6, "metre": 1e6, "m": 1e6, "angstrom": 1e-4, "å": 1e-4,
}
_TIFF_SUFFIXES = (".tif", ".tiff")
_UNKNOWN_AXES = "IQ"  # tifffile's letters for an unspecified page/sequence axis


def _unit_scale(unit: Any) -> float | None:
    if unit is None:
        return None
    return _UNITS.get(str(unit).strip().lower())


# ---------------------------------------------------------------------------- axes
class _AxisPlan:
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


def _normalise_tiff_axes(axes: str, shape: tuple[int, ...], source: str) -> tuple[str, tuple]:
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


# ---------------------------------------------------------------------------- backends
class _ArrayBackend:
    """Frames from any array-like (numpy, zarr) with known axes."""

    def __init__(self, array: Any, plan: _AxisPlan, source: str):
        self.array, self.plan, self.source = array, plan, source

    def frame(self, t: int) -> np.ndarray:
        try:
            return self.plan.frame(self.array, t)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise FormatError(f"{self.source}: cannot read frame {t} ({err})") from err

    def close(self) -> None:
        pass


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


class _TiffBackend:
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
            axes, self.squeeze = _normalise_tiff_axes(file_axes, shape, str(self.path))
        self.file_axes = file_axes
        self.array = array
        kept = tuple(n for n, s in zip(shape, self.squeeze) if isinstance(s, slice))
        self.plan = _AxisPlan(axes, kept, self.channel, str(self.path))

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


class _FolderBackend:
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
        if data.shape != self.frame_shape:
            raise FormatError(
                f"{file}: frame shape {data.shape} differs from the first frame's "
                f"{self.frame_shape}; all frames of a movie must have the same shape"
            )
        return data

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


# ---------------------------------------------------------------------------- reading
def read_image(
    source: str | Path | np.ndarray | Any,
    *,
    voxel_size: Sequence[float] | np.ndarray | None = None,
    axes: str | None = None,
    channel: int | None = None,
    series: int = 0,
    key: str | None = None,
    level: int = 0,
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

    Returns
    -------
    ImageSeries

    Raises
    ------
    FormatError
        If the file is missing, corrupt or truncated, or frames in a folder differ in shape.
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
            if path.suffix.lower() not in _TIFF_SUFFIXES:
                raise FormatError(
                    f"{path}: unsupported image file type {path.suffix!r}; give a .tif/.tiff "
                    "file, a folder of TIFF frames or a Zarr store"
                )
            backend = _TiffBackend(path, series, axes, channel)
            shape, dtype = backend.plan.shape, backend.array.dtype
            meta_vs = _tiff_voxel_size(backend.tif, shape)
            name = str(path)
        elif _is_zarr(path):
            backend, shape, dtype, meta_vs = _open_zarr(path, axes, channel, key, level)
            name = str(path)
        else:
            backend, shape, dtype, meta_vs = _open_folder(path, axes)
            name = str(path)
    elif hasattr(source, "shape") and hasattr(source, "dtype") and hasattr(source, "__getitem__"):
        name = f"<{type(source).__name__} {tuple(source.shape)}>"
        plan = _AxisPlan((axes or "TZYX").upper(), tuple(source.shape), channel, name)
        backend, shape, dtype = _ArrayBackend(source, plan, name), plan.shape, source.dtype
        meta_vs = _zarr_attr_voxel_size(source)
    else:
        raise InvalidInputError(
            f"source must be a path, an ImageSeries or an array, got {type(source).__name__}"
        )
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


def _tiff_voxel_size(tif: Any, shape: tuple[int, int, int, int]) -> np.ndarray | None:
    """Voxel size (z, y, x) µm from ImageJ / OME / resolution-tag metadata, or None."""
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
            scale = _unit_scale(ij.get("unit"))
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
    except Exception as err:  # metadata is best effort: fall back to the user's value
        logger.debug("ignoring unreadable TIFF resolution metadata: %s", err)
        return None


def _ome_tiff_voxel_size(xml: str, shape: tuple[int, int, int, int]) -> np.ndarray | None:
    found = {}
    for axis in "ZYX":
        size = re.search(rf'PhysicalSize{axis}="([^"]+)"', xml)
        unit = re.search(rf'PhysicalSize{axis}Unit="([^"]+)"', xml)
        scale = _unit_scale(unit.group(1)) if unit else 1.0  # OME default unit is µm
        if size and scale is not None:
            found[axis] = float(size.group(1)) * scale
    if "Y" not in found or "X" not in found:
        return None
    if "Z" not in found:
        if shape[1] > 1:
            return None
        found["Z"] = 1.0
    return check_voxel_size([found["Z"], found["Y"], found["X"]])


def _is_zarr(path: Path) -> bool:
    return any((path / f).exists() for f in ("zarr.json", ".zarray", ".zgroup"))


def _open_zarr(
    path: Path, axes: str | None, channel: int | None, key: str | None, level: int
) -> tuple[Any, tuple[int, int, int, int], np.dtype, np.ndarray | None]:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as err:
        raise FormatError(f"{path}: unreadable Zarr store ({type(err).__name__}: {err})") from err
    meta_vs = None
    file_axes = None
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        if key is not None:
            array_path = key
        elif multiscales:
            ms = multiscales[0]
            datasets = ms.get("datasets", [])
            if not 0 <= level < len(datasets):
                raise InvalidInputError(
                    f"{path}: level={level} but the image has {len(datasets)} levels"
                )
            array_path = datasets[level]["path"]
            names = [a["name"] if isinstance(a, dict) else a for a in ms.get("axes", [])]
            file_axes = "".join(n.upper() for n in names) or None
            meta_vs = _ome_zarr_voxel_size(ms, datasets[level], names)
        else:
            arrays = sorted(name for name, _ in node.arrays())
            if len(arrays) != 1:
                raise FormatError(
                    f"{path}: a Zarr group without OME multiscales metadata; pass key= naming "
                    f"one of its arrays {arrays}"
                )
            array_path = arrays[0]
        try:
            array = node[array_path]
        except KeyError as err:
            raise FormatError(f"{path}: no array {array_path!r} in this Zarr group") from err
    else:
        array = node
    if meta_vs is None:
        meta_vs = _zarr_attr_voxel_size(array)
    if file_axes is None:
        stored = dict(array.attrs).get("axes")
        file_axes = stored if isinstance(stored, str) else None
    use_axes = (axes or file_axes or "TZYX").upper()
    plan = _AxisPlan(use_axes, tuple(array.shape), channel, str(path))
    return _ArrayBackend(array, plan, str(path)), plan.shape, array.dtype, meta_vs


def _ome_zarr_voxel_size(ms: dict, dataset: dict, names: list[str]) -> np.ndarray | None:
    scale = None
    for transform in [*dataset.get("coordinateTransformations", []),
                      *ms.get("coordinateTransformations", [])]:
        if transform.get("type") == "scale":
            values = np.asarray(transform["scale"], float)
            scale = values if scale is None else scale * values
    if scale is None or len(scale) != len(names):
        return None
    units = {}
    for a in ms.get("axes", []):
        if isinstance(a, dict):
            units[a["name"]] = a.get("unit")
    out = {}
    for name, s in zip(names, scale):
        if name.lower() in "zyx":
            factor = _unit_scale(units.get(name)) if units.get(name) else 1.0
            if factor is None:
                return None
            out[name.lower()] = s * factor
    if "y" not in out or "x" not in out:
        return None
    return check_voxel_size([out.get("z", 1.0), out["y"], out["x"]])


def _zarr_attr_voxel_size(array: Any) -> np.ndarray | None:
    attrs = getattr(array, "attrs", None)
    if attrs is None or "voxel_size" not in attrs:
        return None
    return check_voxel_size(attrs["voxel_size"])


def _frame_number(path: Path) -> int | None:
    numbers = re.findall(r"\d+", path.stem)
    return int(numbers[-1]) if numbers else None


def _open_folder(
    folder: Path, axes: str | None
) -> tuple[Any, tuple[int, int, int, int], np.dtype, np.ndarray | None]:
    import tifffile

    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _TIFF_SUFFIXES]
    if not files:
        raise FormatError(f"{folder}: no TIFF files (and not a Zarr store)")
    numbered = [(_frame_number(p), p) for p in files]
    if any(n is None for n, _ in numbered):
        bad = [p.name for n, p in numbered if n is None][:5]
        raise FormatError(f"{folder}: cannot order frames, files without a number: {bad}")
    numbered.sort(key=lambda item: (item[0], item[1].name))
    numbers = [n for n, _ in numbered]
    if len(set(numbers)) != len(numbers):
        dup = sorted({n for n in numbers if numbers.count(n) > 1})[:5]
        raise FormatError(f"{folder}: several files carry the frame numbers {dup}")
    files = [p for _, p in numbered]
    shapes = []
    meta_vs = None
    dtype = None
    for i, file in enumerate(files):
        try:
            with tifffile.TiffFile(file) as tif:
                s = tif.series[0]
                shape = tuple(n for n in s.shape if n != 1) or (1,)
                if i == 0:
                    dtype = s.dtype
                    shape3 = (1, *shape) if len(shape) == 2 else shape
                    meta_vs = _tiff_voxel_size(tif, (1, *shape3)) if len(shape3) == 3 else None
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
    frame_shape = (1, *first) if len(first) == 2 else first
    backend = _FolderBackend(files, frame_shape, np.dtype(dtype))
    return backend, (len(files), *frame_shape), np.dtype(dtype), meta_vs


# ---------------------------------------------------------------------------- writing
def write_image(
    image: ImageSeries | np.ndarray | Any,
    path: str | Path,
    *,
    voxel_size: Sequence[float] | np.ndarray | None = None,
    chunks: Sequence[int] | None = None,
    ome: bool = True,
    progress: bool = False,
) -> Path:
    """Write a movie (T, Z, Y, X) as OME-Zarr or a plain Zarr array, atomically.

    Frames are copied one at a time, so an :class:`ImageSeries` larger than memory can
    be converted.

    Parameters
    ----------
    image : ImageSeries or array_like, shape (T, Z, Y, X)
        The movie (a 2D+t movie has Z = 1).
    path : str or Path
        Output Zarr folder; replaced if it exists.
    voxel_size : sequence of 3 float, optional
        Voxel size (z, y, x) in µm; defaults to the ImageSeries' own (required for arrays).
    chunks : sequence of 4 int, optional
        Chunk shape; default one chunk per frame (1, Z, Y, X).
    ome : bool
        Write an OME-Zarr v0.4 image (group with multiscales metadata, array ``"0"``,
        axes t, z, y, x in micrometer); otherwise a plain Zarr array with attrs
        ``voxel_size`` and ``axes = "TZYX"``.
    progress : bool
        Show a progress bar over frames.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ShapeError
        If the data is not 4-D or chunks do not have 4 entries.
    InvalidInputError
        On a missing or bad voxel size.
    """
    import zarr
    from tqdm.auto import tqdm

    if isinstance(image, ImageSeries):
        vs = check_voxel_size(image.voxel_size if voxel_size is None else voxel_size)
    else:
        if not (hasattr(image, "shape") and hasattr(image, "__getitem__")):
            image = np.asarray(image)
        if voxel_size is None:
            raise InvalidInputError("voxel_size=(z, y, x) in µm is required when writing an array")
        vs = check_voxel_size(voxel_size)
    shape = tuple(int(s) for s in image.shape)
    if len(shape) != 4:
        raise ShapeError(
            f"images are written as (T, Z, Y, X), got shape {shape}; add axes with "
            "arr[None] (one volume) or arr[:, None] (2D+t)"
        )
    chunk_shape = (1, *shape[1:]) if chunks is None else tuple(int(c) for c in chunks)
    if len(chunk_shape) != 4 or min(chunk_shape) < 1:
        raise ShapeError(f"chunks must be 4 positive ints (T, Z, Y, X), got {chunks}")
    dtype = np.dtype(image.dtype)
    path = Path(path)
    with atomic_path(path) as tmp:
        if ome:
            root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
            root.attrs["multiscales"] = [
                {
                    "version": "0.4",
                    "name": path.stem,
                    "axes": [
                        {"name": "t", "type": "time"},
                        *({"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"),
                    ],
                    "datasets": [
                        {
                            "path": "0",
                            "coordinateTransformations": [
                                {"type": "scale", "scale": [1.0, *vs.tolist()]}
                            ],
                        }
                    ],
                }
            ]
            array = root.create_array("0", shape=shape, chunks=chunk_shape, dtype=dtype)
        else:
            array = zarr.create_array(
                str(tmp), shape=shape, chunks=chunk_shape, dtype=dtype, zarr_format=2
            )
            array.attrs.update({"voxel_size": vs.tolist(), "axes": "TZYX"})
        for t in tqdm(range(shape[0]), disable=not progress, desc="write image"):
            array[t] = np.asarray(image[t])
    return path
