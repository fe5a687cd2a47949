"""Zarr and OME-Zarr movies: lazy reading (:func:`open_zarr`) and writing (:func:`write_image`).

``zarr`` loads only when a store is opened or written.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError, InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size
from celltrack.io.atomic import atomic_path, refuse_existing
from celltrack.io.series import ArrayBackend, AxisPlan, ImageSeries, MetadataProblem
from celltrack.io.units import unit_scale

__all__ = [
    "MetadataProblem",
    "check_chunks",
    "is_zarr",
    "missing_chunks",
    "open_zarr",
    "write_image",
    "zarr_attr_voxel_size",
]

#: attrs key (in the group or array attrs) by which celltrack marks stores it wrote with
#: every chunk present, so that a missing chunk file is known to be data loss
COMPLETE_MARK = "celltrack_all_chunks_written"
#: most chunks whose presence is checked when a store is opened
_MAX_CHUNKS_CHECKED = 10_000_000


def is_zarr(path: Path) -> bool:
    return any((path / f).exists() for f in ("zarr.json", ".zarray", ".zgroup"))


def _bad(path: Path, where: str, expected: str, got: Any, fix: str) -> FormatError:
    shown = repr(got)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return FormatError(
        f"{path}: OME-Zarr metadata '{where}' must be {expected}, got {shown}; {fix}"
    )


def check_chunks(array: Any, source: str) -> None:
    """Raise FormatError if a Zarr array's shape or chunk shape is unusable (e.g. a 0 chunk)."""
    try:
        shape = tuple(int(s) for s in array.shape)
        chunks = tuple(int(c) for c in array.chunks)
    except Exception as err:  # zarr raises many types for broken metadata
        raise FormatError(
            f"{source}: unreadable Zarr array metadata ({type(err).__name__}: {err}); "
            "rewrite the store"
        ) from None
    if len(chunks) != len(shape) or min(chunks, default=1) < 1 or min(shape, default=0) < 0:
        raise FormatError(
            f"{source}: the Zarr array metadata gives shape {shape} and chunk shape {chunks}; "
            "every chunk length must be >= 1 (one per dimension): fix 'chunks' in .zarray / "
            "zarr.json or rewrite the store"
        )


def missing_chunks(array: Any, folder: Path) -> list[tuple[int, ...]] | None:
    """Grid coordinates of the chunks of ``array`` that have no file in ``folder``.

    Parameters
    ----------
    array : zarr.Array
        An array of a local (folder) store; ``folder`` is the array's own folder.
    folder : Path
        The folder holding the array's chunk files.

    Returns
    -------
    list of tuple of int, or None
        Missing chunk coordinates (empty when the store is complete); None when the
        check does not apply (sharded arrays, no such folder, or more chunks than are
        checked at opening).
    """
    if getattr(array, "shards", None) is not None or not folder.is_dir():
        return None
    shape = tuple(int(s) for s in array.shape)
    chunks = tuple(int(c) for c in array.chunks)
    grid = [-(-s // c) for s, c in zip(shape, chunks)]
    total = int(np.prod(grid, dtype=np.float64)) if grid else 1
    if total == 0:
        return []
    present = set()
    for root, _, files in os.walk(folder):
        rel = os.path.relpath(root, folder)
        for name in files:
            present.add(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    if total > _MAX_CHUNKS_CHECKED:
        # too many to list one by one: a store with fewer files than chunks still lacks some
        return [tuple(0 for _ in grid)] * min(total - len(present), 10) if total > len(present) \
            else None
    encode = array.metadata.encode_chunk_key
    out = []
    for coords in itertools.product(*(range(g) for g in grid)):
        if encode(coords) not in present:
            out.append(coords)
    return out


def _is_blosc(array: Any) -> bool:
    meta = getattr(array, "metadata", None)
    compressor = getattr(meta, "compressor", None)
    if getattr(compressor, "codec_id", None) == "blosc":
        return True
    codecs = getattr(meta, "codecs", None) or ()
    return bool(codecs) and type(codecs[-1]).__name__ == "BloscCodec"


def truncated_chunk(array: Any, folder: Path, coords: Any) -> str | None:
    """The first blosc-compressed chunk among ``coords`` whose file is shorter than it says.

    Blosc decodes a truncated chunk without an error (the missing bytes come out as
    whatever memory held), so the size in each chunk's 16-byte header is compared with
    the file's size. Returns a description of the first bad chunk, or None.
    """
    if not _is_blosc(array):
        return None
    encode = array.metadata.encode_chunk_key
    for c in coords:
        key = encode(tuple(c))
        file = folder / key
        try:
            with open(file, "rb") as handle:
                header = handle.read(16)
                size = os.fstat(handle.fileno()).st_size
        except FileNotFoundError:
            continue  # missing chunks are reported by missing_chunks
        except OSError as err:
            return f"chunk {key} cannot be read ({err})"
        if len(header) < 16:
            return f"chunk {key} holds {size} bytes, less than a blosc header"
        cbytes = int.from_bytes(header[12:16], "little")
        if cbytes != size:
            return f"chunk {key} holds {size} bytes but its blosc header announces {cbytes}"
    return None


class _ChunkCheck:
    """Check the blosc chunks of one frame before it is read (truncated chunk files)."""

    def __init__(self, array: Any, folder: Path, plan: AxisPlan, source: str) -> None:
        self.array, self.folder, self.plan, self.source = array, folder, plan, source
        self.chunks = tuple(int(c) for c in array.chunks)
        self.grid = [-(-int(s) // c) for s, c in zip(array.shape, self.chunks)]

    def __call__(self, t: int) -> None:
        ranges = []
        for axis, letter in enumerate(self.plan.axes):
            if letter == "T":
                ranges.append([t // self.chunks[axis]])
            elif letter == "C":
                ranges.append([(self.plan.channel or 0) // self.chunks[axis]])
            else:
                ranges.append(range(self.grid[axis]))
        problem = truncated_chunk(self.array, self.folder, itertools.product(*ranges))
        if problem:
            raise FormatError(
                f"{self.source}: frame {t}: {problem}; the chunk file is truncated or corrupt "
                "(an interrupted copy?): copy or write the store again"
            )


def _open_node(path: Path) -> Any:
    import zarr

    try:
        return zarr.open(str(path), mode="r")
    except Exception as err:
        raise FormatError(
            f"{path}: unreadable Zarr store ({type(err).__name__}: {err}); check its "
            ".zarray / .zgroup / zarr.json metadata or rewrite the store"
        ) from None


def open_zarr(
    path: Path,
    axes: str | None,
    channel: int | None,
    key: str | None,
    level: int,
    allow_missing_chunks: bool = False,
) -> tuple[Any, tuple[int, int, int, int], np.dtype, np.ndarray | MetadataProblem | None]:
    """Open a Zarr array or (OME-)Zarr group: backend, shape (T, Z, Y, X), dtype, voxel size.

    The voxel size is None when the metadata gives none, or a :class:`MetadataProblem`
    when it gives a broken one.
    """
    import zarr

    node = _open_node(path)
    meta_vs: np.ndarray | MetadataProblem | None = None
    file_axes = None
    array_folder = path
    if isinstance(node, zarr.Group):
        try:
            attrs = dict(node.attrs)
        except Exception as err:
            raise FormatError(
                f"{path}: unreadable Zarr group attributes ({type(err).__name__}: {err})"
            ) from None
        multiscales = attrs.get("multiscales")
        if multiscales is None and isinstance(attrs.get("ome"), dict):
            multiscales = attrs["ome"].get("multiscales")
        if key is not None:
            if not isinstance(key, str) or not key:
                raise InvalidInputError(f"key must be the path of an array, got {key!r}")
            array_path = key
        elif multiscales is not None:
            array_path, file_axes, meta_vs = _parse_multiscales(path, multiscales, level)
        else:
            try:
                arrays = sorted(name for name, _ in node.arrays())
            except Exception as err:
                raise FormatError(
                    f"{path}: cannot list the arrays of this Zarr group "
                    f"({type(err).__name__}: {err})"
                ) from None
            if len(arrays) != 1:
                raise FormatError(
                    f"{path}: a Zarr group without OME multiscales metadata; pass key= naming "
                    f"one of its arrays {arrays}"
                )
            array_path = arrays[0]
        try:
            array = node[array_path]
        except Exception as err:
            raise FormatError(
                f"{path}: no readable array {array_path!r} in this Zarr group "
                f"({type(err).__name__}: {err}); pass key= naming an array of the group"
            ) from None
        if not isinstance(array, zarr.Array):
            raise FormatError(f"{path}: {array_path!r} is a group, not an array; pass key=")
        array_folder = path / array_path
        complete_mark = attrs.get(COMPLETE_MARK) is True
    else:
        array = node
        complete_mark = False
    source = str(path)
    check_chunks(array, source)
    try:
        array_attrs = dict(array.attrs)
    except Exception as err:
        raise FormatError(
            f"{path}: unreadable Zarr array attributes ({type(err).__name__}: {err})"
        ) from None
    complete_mark = complete_mark or array_attrs.get(COMPLETE_MARK) is True
    if meta_vs is None:
        meta_vs = zarr_attr_voxel_size(array, source)
    if file_axes is None:
        stored = array_attrs.get("axes")
        file_axes = stored if isinstance(stored, str) else None
    if array.dtype.kind not in "biuf":
        raise FormatError(
            f"{path}: image arrays must hold numbers (integer or float pixels), got dtype "
            f"{array.dtype}"
        )
    use_axes = (axes or file_axes or "TZYX").upper()
    plan = AxisPlan(use_axes, tuple(array.shape), channel, source)
    if not allow_missing_chunks:
        lost = missing_chunks(array, array_folder)
        if lost:
            _raise_missing(path, array, plan, lost, complete_mark)
    verify = _ChunkCheck(array, array_folder, plan, source) if _is_blosc(array) else None
    backend = ArrayBackend(array, plan, source, verify=verify)
    return backend, plan.shape, array.dtype, meta_vs


def _raise_missing(
    path: Path, array: Any, plan: AxisPlan, lost: list[tuple[int, ...]], mark: bool
) -> None:
    chunks = tuple(int(c) for c in array.chunks)
    frames: set[int] = set()
    if "T" in plan.axes:
        axis = plan.axes.index("T")
        for coords in lost:
            start = coords[axis] * chunks[axis]
            frames.update(range(start, min(start + chunks[axis], plan.shape[0])))
    else:
        frames.add(0)
    shown = sorted(frames)[:10]
    why = "celltrack wrote every chunk of this store, so data was lost" if mark else (
        "a missing chunk would read as the fill value without any sign"
    )
    raise FormatError(
        f"{path}: {len(lost)} chunk files of the image array are missing (frames {shown}"
        f"{', ...' if len(frames) > 10 else ''}; first missing chunk {lost[0]}); {why}. "
        "Copy the store again, or pass allow_missing_chunks=True to read_image to read "
        f"missing chunks as the fill value {array.fill_value!r}"
    )


def _parse_multiscales(
    path: Path, multiscales: Any, level: int
) -> tuple[str, str | None, np.ndarray | MetadataProblem | None]:
    fix = "fix the .zattrs / zarr.json metadata or pass key= naming the array"
    if not isinstance(multiscales, list) or not multiscales:
        raise _bad(path, "multiscales", "a non-empty list", multiscales, fix)
    ms = multiscales[0]
    if not isinstance(ms, dict):
        raise _bad(path, "multiscales[0]", "an object", ms, fix)
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise _bad(path, "multiscales[0].datasets", "a non-empty list", datasets, fix)
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise InvalidInputError(f"level must be an int, got {level!r}")
    if not 0 <= level < len(datasets):
        raise InvalidInputError(
            f"{path}: level={level} but the image has {len(datasets)} levels "
            f"(0..{len(datasets) - 1})"
        )
    dataset = datasets[level]
    where = f"multiscales[0].datasets[{level}]"
    if not isinstance(dataset, dict):
        raise _bad(path, where, "an object", dataset, fix)
    array_path = dataset.get("path")
    if not isinstance(array_path, str) or not array_path or array_path.startswith("/") or (
        ".." in array_path.split("/")
    ):
        raise _bad(path, f"{where}.path", "a relative array path", array_path, fix)
    axes = ms.get("axes", [])
    if not isinstance(axes, list):
        raise _bad(path, "multiscales[0].axes", "a list", axes, fix)
    names = []
    units: dict[str, Any] = {}
    for i, a in enumerate(axes):
        name = a.get("name") if isinstance(a, dict) else a
        if not isinstance(name, str) or len(name) != 1 or name.upper() not in "TCZYX":
            raise _bad(path, f"multiscales[0].axes[{i}].name", "one of t, c, z, y, x", name,
                       "fix the metadata or pass axes=")
        names.append(name)
        if isinstance(a, dict):
            units[name] = a.get("unit")
    file_axes = "".join(n.upper() for n in names) or None
    try:
        vs = _ome_zarr_voxel_size(path, ms, dataset, names, units, where)
    except FormatError as err:
        return array_path, file_axes, MetadataProblem(err)
    return array_path, file_axes, vs


def _ome_zarr_voxel_size(
    path: Path, ms: dict, dataset: dict, names: list[str], units: dict, where: str
) -> np.ndarray | None:
    fix = "fix the scale in the metadata or pass voxel_size=(z, y, x) µm"
    scale = None
    groups = ((f"{where}.coordinateTransformations", dataset.get("coordinateTransformations", [])),
              ("multiscales[0].coordinateTransformations", ms.get("coordinateTransformations", [])))
    for name, transforms in groups:
        if not isinstance(transforms, list):
            raise _bad(path, name, "a list", transforms, fix)
        for i, transform in enumerate(transforms):
            if not isinstance(transform, dict):
                raise _bad(path, f"{name}[{i}]", "an object", transform, fix)
            if transform.get("type") != "scale":
                continue
            raw = transform.get("scale")
            ok = isinstance(raw, list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw
            )
            if not ok:
                raise _bad(path, f"{name}[{i}].scale", "a list of numbers", raw, fix)
            values = np.asarray(raw, float)
            scale = values if scale is None else (
                scale * values if scale.shape == values.shape else None
            )
            if scale is None:
                raise _bad(path, f"{name}[{i}].scale", "one number per axis", raw, fix)
    if scale is None or len(scale) != len(names):
        return None
    out = {}
    for name, s in zip(names, scale):
        if name.lower() in "zyx":
            unit = units.get(name)
            factor = unit_scale(unit) if unit else 1.0
            if factor is None:
                return None
            out[name.lower()] = s * factor
    if "y" not in out or "x" not in out:
        return None
    values = [out.get("z", 1.0), out["y"], out["x"]]
    try:
        return check_voxel_size(values)
    except InvalidInputError as err:
        raise FormatError(
            f"{path}: the OME-Zarr scale gives a bad voxel size ({err}); {fix}"
        ) from None


def zarr_attr_voxel_size(
    array: Any, source: str | None = None
) -> np.ndarray | MetadataProblem | None:
    """The ``voxel_size`` attr of a Zarr array (None when absent or for a plain array)."""
    attrs = getattr(array, "attrs", None)
    try:
        if attrs is None or "voxel_size" not in attrs:
            return None
        value = attrs["voxel_size"]
    except Exception:
        return None
    try:
        return check_voxel_size(value)
    except InvalidInputError as err:
        name = source or "the array"
        return MetadataProblem(FormatError(
            f"{name}: attribute 'voxel_size' is not a valid voxel size ({err}); fix the attribute "
            "or pass voxel_size=(z, y, x) µm"
        ))



# ---------------------------------------------------------------------------- writing
def write_image(
    image: ImageSeries | np.ndarray | Any,
    path: str | Path,
    *,
    voxel_size: Sequence[float] | np.ndarray | None = None,
    chunks: Sequence[int] | None = None,
    ome: bool = True,
    overwrite: bool = False,
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
        Output Zarr folder. An existing file or non-empty folder is left untouched
        (:class:`~celltrack.errors.OutputExistsError`) unless ``overwrite=True``.
    voxel_size : sequence of 3 float, optional
        Voxel size (z, y, x) in µm; defaults to the ImageSeries' own (required for arrays).
    chunks : sequence of 4 int, optional
        Chunk shape; default one chunk per frame (1, Z, Y, X).
    ome : bool
        Write an OME-Zarr v0.4 image (group with multiscales metadata, array ``"0"``,
        axes t, z, y, x in micrometer); otherwise a plain Zarr array with attrs
        ``voxel_size`` and ``axes = "TZYX"``. Every chunk is written (also all-zero
        ones), so a chunk file missing later is known to be lost data.
    overwrite : bool
        Replace an existing ``path`` (the whole folder, in one atomic swap).
    progress : bool
        Show a progress bar over frames.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputExistsError
        If ``path`` holds data and ``overwrite`` is False (nothing is written).
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
    if dtype.kind not in "biuf":
        raise InvalidInputError(f"images must hold numbers, got dtype {dtype}")
    path = Path(path)
    refuse_existing(path, overwrite)
    every_chunk = {"write_empty_chunks": True}
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
            root.attrs[COMPLETE_MARK] = True
            array = root.create_array(
                "0", shape=shape, chunks=chunk_shape, dtype=dtype, config=every_chunk
            )
        else:
            array = zarr.create_array(
                str(tmp), shape=shape, chunks=chunk_shape, dtype=dtype, zarr_format=2,
                config=every_chunk,
            )
            array.attrs.update({"voxel_size": vs.tolist(), "axes": "TZYX", COMPLETE_MARK: True})
        for t in tqdm(range(shape[0]), disable=not progress, desc="write image"):
            array[t] = np.asarray(image[t])
    return path
