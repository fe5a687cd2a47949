"""GEFF (graph exchange file format, zarr) reading and writing of :class:`TrackGraph`.

The graph is written through the ``geff`` package's array API: node ids (uint64), edges
(source, target), one property group per node or edge column, and metadata declaring
the axes ``t`` (time, frame) and ``z, y, x`` (space, micrometer) and, when present, the
``covariance`` column as the GEFF ellipsoid property. ``TrackGraph.attrs`` travel in the
metadata's ``extra["celltrack"]["attrs"]`` (JSON: numpy arrays become lists).
"""

from __future__ import annotations

import itertools
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError, GraphError, InvalidInputError, ShapeError
from celltrack.geometry import bad_covariances
from celltrack.graph.trackgraph import EDGE_REQUIRED, TrackGraph
from celltrack.io.atomic import atomic_path, refuse_existing
from celltrack.io.jsonable import to_json_value
from celltrack.io.zarr_image import COMPLETE_MARK, check_chunks, missing_chunks, truncated_chunk

__all__ = ["read_geff", "write_geff"]

logger = logging.getLogger(__name__)

_SPACE = ("z", "y", "x")
_KEY_PROBLEM = re.compile(r"^\.|[/\\\x00]|^__|^$")


def _check_key(name: Any, owner: str) -> None:
    """Column names become Zarr group names: refuse those a store cannot hold."""
    if not isinstance(name, str) or _KEY_PROBLEM.search(name) or name.strip() != name or (
        len(name.encode("utf-8", "surrogatepass")) > 200
    ):
        raise InvalidInputError(
            f"{owner} column name {name!r} cannot be a GEFF/Zarr key: names must be non-empty "
            "text without '/', '\\' or NUL, not starting with '.' or '__', without leading or "
            "trailing spaces, at most 200 bytes; rename the column"
        )


def check_lineage_columns(graph: TrackGraph) -> bool:
    """Whether ``graph`` is a lineage forest (<= 1 parent, <= 2 children per node)."""
    if graph.num_edges == 0:
        return True
    return bool(graph.in_degree().max() <= 1 and graph.out_degree().max() <= 2)


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
    for owner, names in (("node", graph.nodes), ("edge", graph.edges)):
        for name in names:
            _check_key(name, owner)
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
                "lineage": check_lineage_columns(graph),
                COMPLETE_MARK: True,
            }
        },
    )
    import zarr

    with atomic_path(path) as tmp, warnings.catch_warnings(), zarr.config.set(
        {"array.write_empty_chunks": True}
    ):
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


def read_geff(
    path: str | Path, *, lineage: bool | None = None, allow_missing_chunks: bool = False
) -> TrackGraph:
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
    lineage : bool, optional
        Check the lineage rules (at most one parent and two children per node). Default:
        check unless celltrack wrote the store from a graph that is not a forest (e.g.
        a candidate graph). False reads any directed graph.
    allow_missing_chunks : bool
        Read chunks whose files are missing as the fill value. By default a store that
        celltrack wrote (it writes every chunk) must have all of them; in other stores
        a missing chunk is allowed by Zarr (it means "all fill value") and is logged.

    Returns
    -------
    TrackGraph

    Raises
    ------
    FormatError
        If the store is not a valid GEFF, lacks time/space information, chunk files
        are missing, node ids do not fit int64, covariances are not finite and positive
        definite, or the graph is undirected or not a valid track graph.
    GraphError
        With ``lineage``, if a node has several parents or more than two children.
    """
    from geff.core_io import read_to_memory

    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such GEFF store")
    if not path.is_dir():
        raise FormatError(f"{path}: a GEFF store is a Zarr folder, this is a file")
    _check_store_chunks(path, allow_missing_chunks)
    try:
        data = read_to_memory(str(path), structure_validation=True)
    except RecursionError:
        raise FormatError(f"{path}: GEFF metadata nested too deeply to read") from None
    except MemoryError:
        raise FormatError(
            f"{path}: the GEFF arrays declare more data than fits in memory"
        ) from None
    except Exception as err:  # geff/zarr raise ValueError, KeyError, TypeError, ...
        raise FormatError(
            f"{path}: not a valid GEFF store ({type(err).__name__}: {_short(err)}); write it "
            "again with write_geff or a GEFF tool"
        ) from err
    meta = data["metadata"]
    extra = dict(meta.extra or {}) if isinstance(meta.extra, dict) else {}
    ours = extra.pop("celltrack", {})
    ours = ours if isinstance(ours, dict) else {}
    if not meta.directed:
        raise FormatError(f"{path}: the GEFF graph is undirected; celltrack needs parent → child")
    props = {name: _column(prop) for name, prop in data["node_props"].items()}
    time_name, space_names = _axes(meta, props, path)
    raw_ids = np.asarray(data["node_ids"])
    nodes: dict[str, Any] = {"id": _ids(raw_ids, path, "node ids")}
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
        props["covariance"] = _covariance(props.pop(meta.ellipsoid), nodes["id"], path)
    nodes.update(props)
    edge_ids = _ids(np.asarray(data["edge_ids"]), path, "edge ids").reshape(-1, 2)
    edges: dict[str, Any] = {"source": edge_ids[:, 0], "target": edge_ids[:, 1]}
    for name, prop in data["edge_props"].items():
        edges[name if name not in EDGE_REQUIRED else f"geff_{name}"] = _column(prop)
    attrs_raw = ours.get("attrs", {})
    if not isinstance(attrs_raw, dict):
        raise FormatError(
            f"{path}: GEFF metadata extra.celltrack.attrs must be an object, got "
            f"{type(attrs_raw).__name__}; fix or remove it"
        )
    attrs = dict(attrs_raw)
    if extra:
        attrs["geff_extra"] = extra
    if lineage is None:
        lineage = ours.get("lineage") is not False
    try:
        graph = TrackGraph(nodes, edges, attrs=attrs)
    except (GraphError, ShapeError) as err:
        raise FormatError(f"{path}: the GEFF graph is not a valid track graph: {err}") from err
    if lineage:
        from celltrack.io.annotations import check_lineage

        try:
            check_lineage(graph, "GEFF")
        except GraphError as err:
            raise GraphError(f"{path}: {err}") from None
    return graph


def _short(err: BaseException) -> str:
    text = str(err)
    return text if len(text) <= 300 else text[:297] + "..."


def _ids(values: np.ndarray, path: Path, what: str) -> np.ndarray:
    if values.dtype.kind not in "iu":
        if values.dtype.kind == "f" and values.size and np.all(np.isfinite(values)) and np.all(
            values == np.round(values)
        ) and np.abs(values).max() <= 2**53:
            return values.astype(np.int64)
        raise FormatError(f"{path}: GEFF {what} must be integers, got dtype {values.dtype}")
    if values.dtype.kind == "u" and values.size and values.max() > np.iinfo(np.int64).max:
        big = values[values > np.iinfo(np.int64).max][:3].tolist()
        raise FormatError(
            f"{path}: GEFF {what} {big} exceed the int64 range celltrack uses; renumber the "
            "nodes (ids < 2**63)"
        )
    return values.astype(np.int64)


def _covariance(values: np.ndarray, ids: np.ndarray, path: Path) -> np.ndarray:
    cov = np.asarray(values)
    if cov.dtype.kind not in "iuf" or cov.shape != (ids.size, 3, 3):
        raise FormatError(
            f"{path}: the GEFF ellipsoid property must hold one 3x3 covariance (µm²) per node, "
            f"got dtype {cov.dtype} and shape {cov.shape}"
        )
    cov = cov.astype(np.float64)
    bad = bad_covariances(cov)
    if np.any(bad):
        rows = np.flatnonzero(bad)
        raise FormatError(
            f"{path}: nodes {ids[rows[:5]].tolist()} ({rows.size} in all) have covariances that "
            "are not finite, symmetric and positive definite (NaN/missing, or an eigenvalue "
            "<= 0); fix them in the ellipsoid property or remove the ellipsoid declaration"
        )
    return cov


#: arrays of a GEFF store may declare at most this many bytes more than 1000x the store's
#: size on disk (a few bytes of metadata must not make the reader allocate terabytes)
_MAX_DECLARED = 2**30


def _check_store_chunks(path: Path, allow: bool) -> None:
    """Before reading: sizes the metadata declares, missing and truncated chunk files."""
    import zarr

    try:
        root = zarr.open_group(str(path), mode="r")
        arrays = [a for _, a in root.members(max_depth=None) if isinstance(a, zarr.Array)]
        geff_meta = dict(root.attrs).get("geff")
    except RecursionError:
        raise FormatError(f"{path}: GEFF metadata nested too deeply to read") from None
    except Exception as err:
        raise FormatError(
            f"{path}: not a valid GEFF store: cannot list its arrays ({type(err).__name__}: "
            f"{_short(err)})"
        ) from None
    extra = geff_meta.get("extra") if isinstance(geff_meta, dict) else None
    ours = extra.get("celltrack") if isinstance(extra, dict) else None
    complete = isinstance(ours, dict) and ours.get(COMPLETE_MARK) is True
    on_disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    declared = 0
    for array in arrays:
        check_chunks(array, f"{path}/{array.path}")
        declared += int(np.prod(array.shape, dtype=np.float64)) * array.dtype.itemsize
    if declared > _MAX_DECLARED + 1000 * on_disk:
        raise FormatError(
            f"{path}: the GEFF arrays declare {declared} bytes but the store holds {on_disk}; "
            "its array metadata (shape) is corrupt: write the store again"
        )
    if allow:
        return
    lost = []
    for array in arrays:
        folder = path / array.path
        gone = missing_chunks(array, folder)
        if gone:
            lost.append(f"{array.path} ({len(gone)} chunks)")
        grid = [range(-(-int(s) // int(c))) for s, c in zip(array.shape, array.chunks)]
        problem = truncated_chunk(array, folder, itertools.product(*grid))
        if problem:
            raise FormatError(
                f"{path}: array {array.path}: {problem}; the chunk file is truncated or corrupt: "
                "copy or write the store again"
            )
    if not lost:
        return
    if complete:
        raise FormatError(
            f"{path}: chunk files of {', '.join(lost[:5])} are missing; celltrack wrote every "
            "chunk of this store, so data was lost (an interrupted copy?). Copy it again, or "
            "pass allow_missing_chunks=True to read_geff to read them as fill values"
        )
    logger.warning(
        "%s: arrays %s have no chunk files for some chunks; Zarr reads them as the fill value",
        path, ", ".join(lost[:5]),
    )


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
