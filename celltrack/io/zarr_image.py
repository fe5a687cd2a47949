"""Zarr and OME-Zarr movies: lazy reading (:func:`open_zarr`) and writing (:func:`write_image`).

``zarr`` loads only when a store is opened or written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError, InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size
from celltrack.io.atomic import atomic_path
from celltrack.io.series import ArrayBackend, AxisPlan, ImageSeries
from celltrack.io.units import unit_scale

__all__ = ["is_zarr", "open_zarr", "write_image", "zarr_attr_voxel_size"]


def is_zarr(path: Path) -> bool:
    return any((path / f).exists() for f in ("zarr.json", ".zarray", ".zgroup"))


def open_zarr(
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
        meta_vs = zarr_attr_voxel_size(array)
    if file_axes is None:
        stored = dict(array.attrs).get("axes")
        file_axes = stored if isinstance(stored, str) else None
    use_axes = (axes or file_axes or "TZYX").upper()
    plan = AxisPlan(use_axes, tuple(array.shape), channel, str(path))
    return ArrayBackend(array, plan, str(path)), plan.shape, array.dtype, meta_vs


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
            factor = unit_scale(units.get(name)) if units.get(name) else 1.0
            if factor is None:
                return None
            out[name.lower()] = s * factor
    if "y" not in out or "x" not in out:
        return None
    return check_voxel_size([out.get("z", 1.0), out["y"], out["x"]])


def zarr_attr_voxel_size(array: Any) -> np.ndarray | None:
    attrs = getattr(array, "attrs", None)
    if attrs is None or "voxel_size" not in attrs:
        return None
    return check_voxel_size(attrs["voxel_size"])



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
