"""Sparse annotations (spots and links) as CSV or JSON; TrackMate/MaMuT XML on read.

CSV layout
----------
A spots file with one row per spot and a header naming the columns:

``id, t, z, y, x`` (required; ``z`` may be omitted for 2D data and is then 0), then
optionally either ``radius`` (µm, a sphere) or a covariance (µm²) given as the six
unique entries ``cov_zz, cov_zy, cov_zx, cov_yy, cov_yx, cov_xx`` or all nine
``cov_zz, cov_zy, cov_zx, cov_yz, cov_yy, cov_yx, cov_xz, cov_xy, cov_xx``, then
optionally ``tag`` (one of :data:`celltrack.graph.trackgraph.TAGS`, empty = unlabeled),
``score`` and any other column (kept as a node column).

Links go either in a file ``<stem>_links.csv`` next to the spots file with columns
``source, target`` and optionally ``approved`` (true/false) and other edge columns, or —
when there is no links file — in a ``parent_id`` column of the spots file (empty or -1
for none). :func:`write_annotations` always writes the two-file layout.

Links in an annotation file are taken as made by a person: without an ``approved``
column every link is approved. :func:`write_annotations` always writes ``approved``
(False where the graph has no such column), so predictions saved and re-read stay
unapproved.

JSON layout
-----------
``{"spots": [{"id": 1, "t": 0, "z": .., "y": .., "x": .., "radius" | "covariance"
(3x3 list) | "cov_zz"..., "tag": "tp", "score": 0.9, ...}, ...], "links": [{"source": 1,
"target": 2, "approved": true, ...}, ...], "attrs": {...}}``.

Positions are in µm, or in voxels with ``units="voxel"`` and a ``voxel_size``, converted
once on reading. Links are oriented forward in time (parent → child) whatever their order
in the file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError, GraphError, InvalidInputError
from celltrack.geometry import check_voxel_size, sphere_covariances
from celltrack.graph.trackgraph import EDGE_REQUIRED, TAGS, TrackGraph
from celltrack.io.atomic import atomic_write_text
from celltrack.io.jsonable import to_json_value

__all__ = ["links_path", "read_annotations", "write_annotations"]

logger = logging.getLogger(__name__)

_COV6 = ("cov_zz", "cov_zy", "cov_zx", "cov_yy", "cov_yx", "cov_xx")
_COV9 = ("cov_zz", "cov_zy", "cov_zx", "cov_yz", "cov_yy", "cov_yx", "cov_xz", "cov_xy", "cov_xx")
_IDX6 = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}
_SPOT_CORE = ("id", "t", "z", "y", "x", "radius", "covariance", "parent_id", *_COV9)


def links_path(spots_csv: str | Path) -> Path:
    """The links file that belongs to a spots CSV: ``<stem>_links.csv`` next to it."""
    path = Path(spots_csv)
    return path.with_name(f"{path.stem}_links.csv")


# ---------------------------------------------------------------------------- reading
def read_annotations(
    path: str | Path,
    *,
    voxel_size: Sequence[float] | np.ndarray | None = None,
    units: str = "um",
    format: str | None = None,
) -> TrackGraph:
    """Read annotated spots and links from CSV, JSON or TrackMate/MaMuT XML.

    Parameters
    ----------
    path : str or Path
        ``.csv`` (spots; links in ``<stem>_links.csv`` or a ``parent_id`` column),
        ``.json`` or ``.xml`` (TrackMate / MaMuT, see :func:`read_trackmate`).
    voxel_size : sequence of 3 float, optional
        Voxel size (z, y, x) in µm; required when ``units="voxel"``; recorded in
        ``attrs["voxel_size"]`` when given.
    units : {"um", "voxel"}
        Units of positions, radii and covariances in the file.
    format : {"csv", "json", "xml"}, optional
        The file's format; default from its suffix (:func:`celltrack.io.read_tracks`
        tells it from the content).

    Returns
    -------
    TrackGraph
        Nodes with ``id, t, z, y, x`` (µm) and, when present, ``covariance`` (N, 3, 3)
        µm², ``tag``, ``score`` and extra columns; edges parent → child with ``approved``
        (bool) and extra columns.

    Raises
    ------
    FormatError
        If the file is missing, malformed or lacks required columns.
    GraphError
        On unknown tags (the message lists the allowed ones), duplicate ids, links to
        unknown spots or links within one frame.
    InvalidInputError
        On bad ``units``, ``format`` or voxel size.
    """
    path = Path(path)
    if format not in (None, "csv", "json", "xml"):
        raise InvalidInputError(
            f"format must be 'csv', 'json', 'xml' or None (from the suffix), got {format!r}"
        )
    if units not in ("um", "voxel"):
        raise InvalidInputError(f"units must be 'um' or 'voxel', got {units!r}")
    vs = None if voxel_size is None else check_voxel_size(voxel_size)
    if units == "voxel" and vs is None:
        raise InvalidInputError(
            "units='voxel' needs voxel_size=(z, y, x) in µm to convert positions"
        )
    suffix = f".{format}" if format else path.suffix.lower()
    if suffix == ".xml":
        from celltrack.io.trackmate import read_trackmate

        graph = read_trackmate(path)
        if units == "voxel":
            logger.warning(
                "%s: TrackMate/MaMuT positions are calibrated; units='voxel' ignored", path
            )
        if vs is not None:
            graph.attrs["voxel_size"] = vs.tolist()
        return graph
    if not path.is_file():
        raise FormatError(f"{path}: no such annotation file")
    if suffix == ".csv":
        spots, spot_lines = _read_csv(path)
        lpath = links_path(path)
        if lpath.is_file():
            links, link_lines = _read_csv(lpath)
            link_source = lpath
        elif "parent_id" in spots:
            links, link_lines, link_source = _links_from_parent(spots, spot_lines, path)
        else:
            links, link_lines, link_source = {}, [], lpath
        attrs: dict[str, Any] = {}
    elif suffix == ".json":
        spots, spot_lines, links, link_lines, attrs = _read_json(path)
        link_source = path
    else:
        raise FormatError(f"{path}: unknown annotation format {suffix!r}; use .csv, .json or .xml")
    nodes = _spot_columns(spots, spot_lines, path, vs if units == "voxel" else None)
    edges = _link_columns(links, link_lines, link_source)
    if vs is not None:
        attrs["voxel_size"] = vs.tolist()
    try:
        graph = TrackGraph(nodes, edges, attrs=attrs, validate=False)
        edges = _orient_forward(graph, link_source)
        graph = TrackGraph(nodes, edges, attrs=attrs)
    except GraphError as err:
        raise GraphError(f"{path}: {err}") from err
    return graph


def _read_csv(path: Path) -> tuple[dict[str, list[str]], list[int]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: cannot read ({err})") from err
    rows = list(csv.reader(io.StringIO(text)))
    rows_n = [(n, r) for n, r in enumerate(rows, start=1) if r and any(c.strip() for c in r)]
    if not rows_n:
        raise FormatError(f"{path}: empty file, expected a header line with column names")
    (_, header), body = rows_n[0], rows_n[1:]
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise FormatError(f"{path}: duplicate column names in header {header}")
    columns: dict[str, list[str]] = {h: [] for h in header}
    lines = []
    for number, row in body:
        if len(row) != len(header):
            raise FormatError(
                f"{path}, line {number}: {len(row)} fields but the header has {len(header)}"
            )
        for h, value in zip(header, row):
            columns[h].append(value.strip())
        lines.append(number)
    return columns, lines


def _links_from_parent(
    spots: dict[str, list[Any]], lines: list[int], path: Path
) -> tuple[dict[str, list[Any]], list[int], Path]:
    parent = spots["parent_id"]
    keep = [i for i, p in enumerate(parent) if str(p).strip() not in ("", "-1", "nan", "None")]
    links = {
        "source": [parent[i] for i in keep],
        "target": [spots["id"][i] for i in keep],
    }
    return links, [lines[i] for i in keep], path


def _read_json(path: Path) -> tuple[dict, list[int], dict, list[int], dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, Mapping) or not isinstance(data.get("spots"), list):
        raise FormatError(f"{path}: expected an object with a 'spots' list (and 'links' list)")
    links_list = data.get("links", [])
    if not isinstance(links_list, list):
        raise FormatError(f"{path}: 'links' must be a list of objects")
    attrs = data.get("attrs", {})
    spots = _records_to_columns(data["spots"], path, "spot")
    links = _records_to_columns(links_list, path, "link")
    return spots, list(range(len(data["spots"]))), links, list(range(len(links_list))), dict(attrs)


def _records_to_columns(records: list, path: Path, what: str) -> dict[str, list[Any]]:
    names: dict[str, None] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise FormatError(f"{path}: {what} #{i} must be an object, got {type(rec).__name__}")
        for key in rec:
            names.setdefault(str(key), None)
    return {n: [rec.get(n) for rec in records] for n in names}


def _where(path: Path, lines: list[int], row: int) -> str:
    if path.suffix.lower() == ".json":
        return f"{path}, item #{lines[row]}"
    return f"{path}, line {lines[row]}"


def _numbers(values: list[Any], name: str, path: Path, lines: list[int], integer: bool = False):
    try:  # fast path: every value parses; the loop below only runs to locate an error
        fast = np.asarray(values, dtype=np.float64)
        if (
            not any(isinstance(v, bool) for v in values)
            and np.all(np.isfinite(fast))
            and (not integer or np.all(fast == np.round(fast)))
        ):
            return fast.astype(np.int64) if integer else fast
    except (TypeError, ValueError):
        pass
    out = np.empty(len(values), np.float64)
    for i, v in enumerate(values):
        try:
            if v is None or (isinstance(v, str) and not v.strip()) or isinstance(v, bool):
                raise ValueError
            out[i] = float(v)
        except (TypeError, ValueError):
            raise FormatError(
                f"{_where(path, lines, i)}: column '{name}' needs a number, got {v!r}"
            ) from None
        if not np.isfinite(out[i]) or (integer and out[i] != np.round(out[i])):
            kind = "an integer" if integer else "a finite number"
            raise FormatError(f"{_where(path, lines, i)}: column '{name}' needs {kind}, got {v!r}")
    return out.astype(np.int64) if integer else out


def _bools(values: list[Any], name: str, path: Path, lines: list[int]) -> np.ndarray:
    out = np.zeros(len(values), bool)
    for i, v in enumerate(values):
        if isinstance(v, (bool, np.bool_)):
            out[i] = bool(v)
            continue
        text = "" if v is None else str(v).strip().lower()
        if text in _TRUE:
            out[i] = True
        elif text not in _FALSE:
            raise FormatError(
                f"{_where(path, lines, i)}: column '{name}' needs true/false, got {v!r}"
            )
    return out


def _free_column(values: list[Any]) -> np.ndarray:
    """Best-effort typing of an extra column: int, float, bool, else str."""
    if all(isinstance(v, bool) for v in values):
        return np.asarray(values, bool)
    try:
        floats = np.asarray([np.nan if v in (None, "") else float(v) for v in values], float)
    except (TypeError, ValueError):
        return np.asarray(["" if v is None else str(v) for v in values], dtype=str)
    if floats.size and np.all(np.isfinite(floats)) and np.all(floats == np.round(floats)):
        if all(isinstance(v, int) or (isinstance(v, str) and "." not in v and "e" not in v.lower())
               for v in values):
            return floats.astype(np.int64)
    return floats


def _spot_columns(
    spots: dict[str, list[Any]], lines: list[int], path: Path, voxel: np.ndarray | None
) -> dict[str, Any]:
    required = ["id", "t", "y", "x"]
    missing = [c for c in required if c not in spots]
    if missing:
        raise FormatError(
            f"{path}: spot columns {missing} are missing; need id, t, (z,) y, x — "
            f"found {sorted(spots)}"
        )
    n = len(spots["id"])
    nodes: dict[str, Any] = {
        "id": _numbers(spots["id"], "id", path, lines, integer=True),
        "t": _numbers(spots["t"], "t", path, lines, integer=True),
    }
    for axis in "zyx":
        nodes[axis] = _numbers(spots[axis], axis, path, lines) if axis in spots else np.zeros(n)
    scale = np.ones(3) if voxel is None else voxel
    for d, axis in enumerate("zyx"):
        nodes[axis] = nodes[axis] * scale[d]
    cov = _covariances(spots, lines, path, n)
    if cov is not None:
        nodes["covariance"] = cov * scale[:, None] * scale[None, :]
    if "tag" in spots:
        tags = np.asarray(
            ["unlabeled" if v in (None, "") else str(v).strip().lower() for v in spots["tag"]],
            dtype=str,
        )
        bad = sorted(set(tags.tolist()) - set(TAGS))
        if bad:
            row = int(np.flatnonzero(~np.isin(tags, list(TAGS)))[0])
            raise GraphError(
                f"{_where(path, lines, row)}: unknown tags {bad}; allowed tags are {list(TAGS)}"
            )
        nodes["tag"] = tags
    if "score" in spots:
        nodes["score"] = np.asarray(
            [np.nan if v in (None, "") else float(v) for v in spots["score"]], float
        )
    for name, values in spots.items():
        if name in _SPOT_CORE or name in ("tag", "score"):
            continue
        nodes[name] = _free_column(values)
    return nodes


def _covariances(
    spots: dict[str, list[Any]], lines: list[int], path: Path, n: int
) -> np.ndarray | None:
    has9 = all(c in spots for c in _COV9)
    has6 = all(c in spots for c in _COV6)
    partial = [c for c in _COV9 if c in spots]
    if "covariance" in spots:
        try:
            cov = np.asarray(spots["covariance"], float).reshape(n, 3, 3)
        except (TypeError, ValueError) as err:
            raise FormatError(f"{path}: 'covariance' must be a 3x3 list per spot ({err})") from None
    elif has9:
        flat = np.stack([_numbers(spots[c], c, path, lines) for c in _COV9], axis=1)
        cov = flat.reshape(n, 3, 3)
    elif has6:
        cov = np.zeros((n, 3, 3))
        for c, (i, j) in zip(_COV6, _IDX6):
            cov[:, i, j] = cov[:, j, i] = _numbers(spots[c], c, path, lines)
    elif partial:
        raise FormatError(
            f"{path}: covariance columns {partial} are incomplete; give the six {list(_COV6)} "
            f"or all nine {list(_COV9)}"
        )
    elif "radius" in spots:
        radius = _numbers(spots["radius"], "radius", path, lines)
        if np.any(radius <= 0):
            row = int(np.flatnonzero(radius <= 0)[0])
            raise FormatError(f"{_where(path, lines, row)}: radius must be > 0")
        return sphere_covariances(n, 1.0) * (radius**2)[:, None, None]
    else:
        return None
    tol = 1e-9 * max(1.0, float(np.abs(cov).max(initial=0)))
    if not np.allclose(cov, np.swapaxes(cov, 1, 2), atol=tol):
        raise FormatError(f"{path}: covariances must be symmetric")
    if n and np.any(np.linalg.eigvalsh(cov)[:, 0] <= 0):
        row = int(np.flatnonzero(np.linalg.eigvalsh(cov)[:, 0] <= 0)[0])
        raise FormatError(f"{_where(path, lines, row)}: covariance is not positive definite")
    return cov


def _link_columns(links: dict[str, list[Any]], lines: list[int], path: Path) -> dict[str, Any]:
    if not links:
        return {"source": np.zeros(0, np.int64), "target": np.zeros(0, np.int64),
                "approved": np.zeros(0, bool)}
    missing = [c for c in EDGE_REQUIRED if c not in links]
    if missing:
        raise FormatError(f"{path}: link columns {missing} are missing; found {sorted(links)}")
    edges: dict[str, Any] = {
        "source": _numbers(links["source"], "source", path, lines, integer=True),
        "target": _numbers(links["target"], "target", path, lines, integer=True),
    }
    m = edges["source"].size
    edges["approved"] = (
        _bools(links["approved"], "approved", path, lines) if "approved" in links
        else np.ones(m, bool)
    )
    for name, values in links.items():
        if name not in (*EDGE_REQUIRED, "approved"):
            edges[name] = _free_column(values)
    return edges


def _orient_forward(graph: TrackGraph, path: Path) -> dict[str, np.ndarray]:
    edges = {k: np.array(v) for k, v in graph.edges.items()}
    if graph.num_edges == 0:
        return edges
    src, tgt = graph.edge_index()
    t = graph.t
    same = t[src] == t[tgt]
    if np.any(same):
        pairs = list(zip(edges["source"][same][:5].tolist(), edges["target"][same][:5].tolist()))
        raise GraphError(f"{path}: links {pairs} join spots of the same frame")
    back = t[src] > t[tgt]
    edges["source"][back], edges["target"][back] = (
        edges["target"][back].copy(), edges["source"][back].copy()
    )
    return edges


# ---------------------------------------------------------------------------- writing
def write_annotations(graph: TrackGraph, path: str | Path) -> Path:
    """Write spots and links as CSV (spots file + ``<stem>_links.csv``) or JSON.

    Positions and covariances are written in µm. One-dimensional node/edge columns are
    written as they are; the covariance as its six unique entries (CSV) or a 3x3 list
    (JSON); other multi-dimensional columns are skipped with a warning. Each file is
    written atomically.

    Parameters
    ----------
    graph : TrackGraph
        Annotations (any graph).
    path : str or Path
        ``.csv`` or ``.json`` output.

    Returns
    -------
    Path
        ``path`` (the spots file for CSV).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InvalidInputError(f"write_annotations writes .csv or .json, got {path.name!r}")
    node_cols, cov = _flat_columns(graph.nodes, "node")
    edge_cols, _ = _flat_columns(graph.edges, "edge")
    edge_cols["approved"] = (
        np.asarray(edge_cols["approved"]).astype(bool) if "approved" in edge_cols
        else np.zeros(graph.num_edges, bool)
    )
    if suffix == ".csv":
        if cov is not None:
            for c, (i, j) in zip(_COV6, _IDX6):
                node_cols[c] = cov[:, i, j]
        atomic_write_text(path, _csv_text(node_cols))
        atomic_write_text(links_path(path), _csv_text(edge_cols))
    else:
        spots = _records(node_cols)
        if cov is not None:
            for rec, c in zip(spots, cov.tolist()):
                rec["covariance"] = c
        doc = {
            "units": "um",
            "spots": spots,
            "links": _records(edge_cols),
            "attrs": to_json_value(dict(graph.attrs), finite=True),
        }
        atomic_write_text(path, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return path


def _flat_columns(columns: Mapping[str, np.ndarray], owner: str):
    flat, cov = {}, None
    for name, col in columns.items():
        if name == "covariance" and owner == "node":
            cov = np.asarray(col, float)
        elif col.ndim == 1:
            flat[name] = col
        else:
            logger.warning("%s column '%s' with shape %s is not written", owner, name, col.shape)
    return flat, cov


def _cell(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else repr(float(value))
    return "" if value is None else str(value)


def _csv_text(columns: Mapping[str, np.ndarray]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = list(columns)
    writer.writerow(names)
    for row in zip(*(columns[n].tolist() for n in names)):
        writer.writerow([_cell(v) for v in row])
    return buffer.getvalue()


def _records(columns: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """One dict per row; NaN becomes null so the JSON stays standard."""
    names = list(columns)
    values = []
    for n in names:
        col = columns[n]
        if col.dtype.kind == "f":
            values.append([None if np.isnan(v) else v for v in col.tolist()])
        else:
            values.append(col.tolist())
    return [dict(zip(names, row)) for row in zip(*values)] if names else []
