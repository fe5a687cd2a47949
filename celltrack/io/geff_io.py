"""GEFF (graph exchange file format, zarr) reading and writing of :class:`TrackGraph`.

The graph is written through the ``geff`` package's array API: node ids (uint64), edges
(source, target), one property group per node or edge column, and metadata declaring
the axes ``t`` (time, frame) and ``z, y, x`` (space, micrometer) and, when present, the
``covariance`` column as the GEFF ellipsoid property. ``TrackGraph.attrs`` travel in the
metadata's ``extra["celltrack"]["attrs"]`` (JSON: numpy arrays become lists).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError, GraphError, InvalidInputError
from celltrack.graph.trackgraph import EDGE_REQUIRED, TrackGraph
from celltrack.io.atomic import atomic_path, refuse_existing
from celltrack.io.jsonable import to_json_value

__all__ = ["read_geff", "write_geff"]

logger = logging.getLogger(__name__)

_SPACE = ("z", "y", "x")


def _prop(name: str, column: np.ndarray, owner: str) -> dict[str, np.ndarray | None]:
    """A geff property dict (values, missing) for one column."""
    if column.dtype.kind in "biuf":
        return {"values": np.ascontiguousarray(column), "missing": None}
    if column.dtype.kind == "U":
        return {"values": column, "missing": None}
    if column.dtype.kind == "O" and column.ndim == 1:
        missing = np.array([v is None for v in column], bool)
        present = column[~missing]
        if all(isinstance(v, str) for v in present):
            values = np.array(["" if v is None else v for v in column], dtype=str)
            return {"values": values, "missing": missing if missing.any() else None}
        if all(isinstance(v, (bool, int, float, np.generic)) for v in present):
            values = np.array([np.nan if v is None else v for v in column], dtype=np.float64)
            return {"values": values, "missing": missing if missing.any() else None}
    raise InvalidInputError(
        f"{owner} column '{name}' has dtype {column.dtype} and shape {column.shape}; GEFF can "
        "store numbers, booleans and strings (with None as missing): convert it first"
    )


def write_geff(
    graph: TrackGraph,
    path: str | Path,
    *,
    zarr_format: int = 2,
    overwrite: bool = False,
) -> Path:
    """Write a graph as a GEFF zarr store, atomically.

    Parameters
    ----------
    graph : TrackGraph
        The graph; node ids must be >= 0 (GEFF stores them unsigned).
    path : str or Path
        Output zarr folder (conventionally ending in ``.geff`` or ``.zarr``).
    zarr_format : {2, 3}
        Zarr format version of the store.
    overwrite : bool
        Replace an existing ``path``; otherwise an existing file or non-empty folder is
        an error (an empty folder is filled).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputExistsError
        If ``path`` holds data and ``overwrite`` is False (a ``FileExistsError`` too).
    GraphError
        If node ids are negative.
    InvalidInputError
        If a column or attr cannot be stored, or ``zarr_format`` is not 2 or 3.
    """
    from geff.core_io import write_arrays
    from geff_spec import Axis, GeffMetadata

    if zarr_format not in (2, 3):
        raise InvalidInputError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    if not isinstance(graph, TrackGraph):
        raise InvalidInputError(f"write_geff needs a TrackGraph, got {type(graph).__name__}")
    path = Path(path)
    refuse_existing(path, overwrite)
    ids = graph.ids
    if ids.size and ids.min() < 0:
        raise GraphError(
            f"GEFF stores node ids as unsigned integers; this graph has negative ids "
            f"{ids[ids < 0][:5].tolist()}: renumber the nodes first"
        )
    node_props = {n: _prop(n, c, "node") for n, c in graph.nodes.items() if n != "id"}
    edge_props = {n: _prop(n, c, "edge") for n, c in graph.edges.items() if n not in EDGE_REQUIRED}
    node_ids = ids.astype(np.uint64)
    edge_ids = np.stack([graph.edges["source"], graph.edges["target"]], axis=1).astype(np.uint64)
    edge_ids = edge_ids.reshape(-1, 2)
    has_cov = "covariance" in node_props and graph.nodes["covariance"].shape[1:] == (3, 3)
    metadata = GeffMetadata(
        directed=True,
        axes=[
            Axis(name="t", type="time", unit="frame"),
            *(Axis(name=a, type="space", unit="micrometer") for a in _SPACE),
        ],
        node_props_metadata={},
        edge_props_metadata={},
        ellipsoid="covariance" if has_cov else None,
        extra={
            "celltrack": {
                "attrs": to_json_value(graph.attrs, strict="GEFF metadata"),
                "version": _version(),
            }
        },
    )
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # zarr v3 has no stable spec for fixed-length unicode (string columns such as
        # `tag`); zarr-python reads them back fine, so the warning is noise here
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        write_arrays(
            str(tmp),
            node_ids,
            node_props,
            edge_ids,
            edge_props,
            metadata,
            zarr_format=zarr_format,
            structure_validation=True,
        )
    return path


def _version() -> str:
    from celltrack._version import __version__

    return str(__version__)


def read_geff(path: str | Path) -> TrackGraph:
    """Read a GEFF zarr store into a :class:`TrackGraph`.

    Position columns are found through the GEFF axes metadata: the time axis becomes
    ``t`` and the space axes (in order; 2 axes mean y, x with z = 0) become ``z, y, x``;
    without axes metadata the properties ``t, z, y, x`` (or ``t, y, x``) are used. The
    ellipsoid property, if declared, becomes ``covariance``. Missing values become NaN
    (numbers) or None (strings, object column). GEFF ``extra["celltrack"]["attrs"]``
    becomes ``attrs``; any other ``extra`` content is kept in ``attrs["geff_extra"]``.

    Parameters
    ----------
    path : str or Path
        The GEFF zarr group (the folder whose attributes hold the ``geff`` metadata).

    Returns
    -------
    TrackGraph

    Raises
    ------
    FormatError
        If the store is not a valid GEFF, lacks time/space information, or the graph is
        undirected.
    """
    from geff.core_io import read_to_memory

    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such GEFF store")
    try:
        data = read_to_memory(str(path), structure_validation=True)
    except Exception as err:  # geff/zarr raise ValueError, KeyError, TypeError, ...
        raise FormatError(f"{path}: not a valid GEFF store ({type(err).__name__}: {err})") from err
    meta = data["metadata"]
    if not meta.directed:
        raise FormatError(f"{path}: the GEFF graph is undirected; celltrack needs parent → child")
    props = {name: _column(prop) for name, prop in data["node_props"].items()}
    time_name, space_names = _axes(meta, props, path)
    nodes: dict[str, Any] = {"id": np.asarray(data["node_ids"]).astype(np.int64)}
    n = nodes["id"].size
    nodes["t"] = props.pop(time_name)
    if len(space_names) == 2:
        nodes["z"] = np.zeros(n)
    for axis, name in zip(_SPACE[3 - len(space_names):], space_names):
        nodes[axis] = props.pop(name)
    for name in ("t", *_SPACE):
        if name in props:  # a property clashes with a renamed axis: keep it under a new name
            props[f"geff_{name}"] = props.pop(name)
    if meta.ellipsoid and meta.ellipsoid in props:
        props["covariance"] = props.pop(meta.ellipsoid)
    nodes.update(props)
    edge_ids = np.asarray(data["edge_ids"]).astype(np.int64).reshape(-1, 2)
    edges: dict[str, Any] = {"source": edge_ids[:, 0], "target": edge_ids[:, 1]}
    for name, prop in data["edge_props"].items():
        edges[name if name not in EDGE_REQUIRED else f"geff_{name}"] = _column(prop)
    extra = dict(meta.extra or {})
    ours = extra.pop("celltrack", {})
    attrs = dict(ours.get("attrs", {})) if isinstance(ours, dict) else {}
    if extra:
        attrs["geff_extra"] = extra
    try:
        return TrackGraph(nodes, edges, attrs=attrs)
    except GraphError as err:
        raise FormatError(f"{path}: the GEFF graph is not a valid track graph: {err}") from err


def _column(prop: dict[str, Any]) -> np.ndarray:
    values = np.asarray(prop["values"])
    missing = prop.get("missing")
    if missing is None or not np.any(missing):
        return values
    missing = np.asarray(missing, bool)
    if values.dtype.kind in "biuf" and values.ndim == 1:
        out = values.astype(np.float64)
        out[missing] = np.nan
        return out
    if values.dtype.kind == "f":
        out = values.copy()
        out[missing] = np.nan
        return out
    out = values.astype(object)
    if out.ndim == 1:
        out[missing] = None
    return out


def _axes(meta: Any, props: dict[str, np.ndarray], path: Path) -> tuple[str, list[str]]:
    if meta.axes:
        time = [a.name for a in meta.axes if a.type == "time"]
        space = [a.name for a in meta.axes if a.type == "space"]
        if not time:
            time = [a.name for a in meta.axes if a.name == "t"]
        if not space:
            space = [a.name for a in meta.axes if a.name in _SPACE]
    else:
        time = ["t"] if "t" in props else []
        space = [a for a in _SPACE if a in props]
    if len(time) != 1 or len(space) not in (2, 3):
        raise FormatError(
            f"{path}: need one time axis and 2 or 3 space axes (axes metadata or properties "
            f"t, z, y, x); found time {time}, space {space}, properties {sorted(props)}"
        )
    missing = [a for a in (*time, *space) if a not in props]
    if missing:
        raise FormatError(f"{path}: axis properties {missing} are declared but not stored")
    return time[0], space
