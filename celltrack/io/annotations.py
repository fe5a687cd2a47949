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
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError, GraphError, InvalidInputError
from celltrack.geometry import bad_covariances, check_voxel_size, sphere_covariances
from celltrack.graph.trackgraph import EDGE_REQUIRED, TAGS, TrackGraph
from celltrack.io.atomic import atomic_write_text, refuse_existing
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
    lineage: bool = True,
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
    lineage : bool
        Check the lineage rules: at most one parent and two children per spot. Pass
        False to read other graphs (e.g. candidate links with several parents).

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
        unknown spots, links within one frame, or (with ``lineage``) spots with several
        parents or more than two children.
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

        graph = read_trackmate(path, lineage=lineage)
        if units == "voxel":
            logger.warning(
                "%s: TrackMate/MaMuT positions are calibrated; units='voxel' ignored", path
            )
        if vs is not None:
            graph.attrs["voxel_size"] = vs.tolist()
        return graph
    if not path.is_file():
        raise FormatError(f"{path}: no such annotation file")
    parent_links = False
    if suffix == ".csv":
        spots, spot_lines = _read_csv(path)
        lpath = links_path(path)
        if lpath.is_file():
            links, link_lines = _read_csv(lpath)
            link_source = lpath
        elif "parent_id" in spots:
            links, link_lines, link_source = {}, [], path
            parent_links = True
        else:
            links, link_lines, link_source = {}, [], lpath
        attrs: dict[str, Any] = {}
    elif suffix == ".json":
        spots, spot_lines, links, link_lines, attrs = _read_json(path)
        link_source = path
    else:
        raise FormatError(f"{path}: unknown annotation format {suffix!r}; use .csv, .json or .xml")
    nodes = _spot_columns(spots, spot_lines, path, vs if units == "voxel" else None)
    if parent_links:
        links, link_lines = _links_from_parent(spots, spot_lines, nodes["id"], path)
    edges = _link_columns(links, link_lines, link_source)
    if vs is not None:
        attrs["voxel_size"] = vs.tolist()
    try:
        graph = TrackGraph(nodes, edges, attrs=attrs, validate=False)
        edges = _orient_forward(graph, link_source)
        graph = TrackGraph(nodes, edges, attrs=attrs)
        if lineage:
            check_lineage(graph, "annotation")
    except GraphError as err:
        raise GraphError(f"{path}: {err}") from err
    return graph


def check_lineage(graph: TrackGraph, what: str = "track") -> None:
    """Raise GraphError if a node has several parents or more than two children.

    The message says how to read such a graph anyway (``lineage=False``).
    """
    if graph.num_edges == 0:
        return
    indeg, outdeg = graph.in_degree(), graph.out_degree()
    relax = (
        f"this {what} file should describe a lineage forest; pass lineage=False "
        "to read a graph that is not one, e.g. candidate links"
    )
    if np.any(indeg > 1):
        bad = graph.ids[indeg > 1][:5].tolist()
        raise GraphError(f"spots {bad} have more than one parent ({int(indeg.max())}); {relax}")
    if np.any(outdeg > 2):
        bad = graph.ids[outdeg > 2][:5].tolist()
        raise GraphError(
            f"spots {bad} have more than two children ({int(outdeg.max())}; a cell divides into "
            f"two); {relax}"
        )


def _read_csv(path: Path) -> tuple[dict[str, list[str]], list[int]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise FormatError(
            f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save the CSV as UTF-8"
        ) from None
    except OSError as err:
        raise FormatError(f"{path}: cannot read ({err})") from err
    reader = csv.reader(io.StringIO(text))
    rows_n = []
    try:
        for row in reader:
            if row and any(c.strip() for c in row):
                rows_n.append((reader.line_num, row))
    except csv.Error as err:
        raise FormatError(
            f"{path}, line {max(reader.line_num, 1)}: malformed CSV ({err}); check quoting and "
            f"cell sizes (at most {csv.field_size_limit()} characters per cell)"
        ) from None
    if not rows_n:
        raise FormatError(f"{path}: empty file, expected a header line with column names")
    (_, header), body = rows_n[0], rows_n[1:]
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise FormatError(f"{path}: duplicate column names in header {header}; rename them")
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
    if "" in columns:
        if any(columns[""]):
            col = header.index("") + 1
            raise FormatError(
                f"{path}, line 1: column {col} has no name but holds values; name it in the header"
            )
        del columns[""]  # a trailing comma
    return columns, lines


def _links_from_parent(
    spots: dict[str, list[Any]], lines: list[int], ids: np.ndarray, path: Path
) -> tuple[dict[str, Any], list[int]]:
    parent = spots["parent_id"]
    keep = [i for i, p in enumerate(parent) if str(p).strip() not in ("", "-1", "nan", "None")]
    links = {
        "source": _integers([parent[i] for i in keep], "parent_id", path,
                            [lines[i] for i in keep]),
        "target": ids[keep] if keep else np.zeros(0, np.int64),
    }
    return links, [lines[i] for i in keep]


def _read_json(path: Path) -> tuple[dict, list[int], dict, list[int], dict]:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise FormatError(f"{path}: cannot read ({err})") from err
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise FormatError(
            f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save the JSON as UTF-8"
        ) from None
    except RecursionError:
        raise FormatError(
            f"{path}: JSON nested too deeply to read; annotations are an object with flat "
            "'spots' and 'links' lists"
        ) from None
    except ValueError as err:  # JSONDecodeError, and too-long integers
        raise FormatError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("spots"), list):
        raise FormatError(
            f"{path}: expected an object with a 'spots' list (and a 'links' list), got "
            f"{type(data).__name__}" + (f" with keys {sorted(data)[:10]}" if isinstance(data, dict)
                                       else "")
        )
    links_list = data.get("links", [])
    if links_list is None:
        links_list = []
    if not isinstance(links_list, list):
        raise FormatError(
            f"{path}: 'links' must be a list of objects, got {type(links_list).__name__}"
        )
    attrs = data.get("attrs", {})
    if attrs is None:
        attrs = {}
    if not isinstance(attrs, Mapping):
        raise FormatError(
            f"{path}: 'attrs' must be an object (key → value), got {type(attrs).__name__}; "
            "remove it or write it as {...}"
        )
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


_INT64 = (-(2**63), 2**63 - 1)
_EXACT_FLOAT = 2**53  # floats beyond this lose integer digits


def _shown(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _numbers(values: list[Any], name: str, path: Path, lines: list[int], integer: bool = False,
             missing: bool = False) -> np.ndarray:
    """Finite float64 numbers of a column (NaN where empty, if ``missing``); ints if ``integer``."""
    if integer:
        return _integers(values, name, path, lines)
    try:  # fast path: every value parses; the loop below only runs to locate an error
        if not any(isinstance(v, bool) for v in values):
            fast = np.asarray(values, dtype=np.float64)
            if fast.ndim == 1 and np.all(np.isfinite(fast)):
                return fast
    except (TypeError, ValueError, OverflowError):
        pass
    out = np.empty(len(values), np.float64)
    for i, v in enumerate(values):
        if missing and (v is None or (isinstance(v, str) and not v.strip())):
            out[i] = np.nan
            continue
        try:
            if v is None or (isinstance(v, str) and not v.strip()) or isinstance(v, bool):
                raise ValueError
            if not isinstance(v, (str, int, float)):
                raise TypeError
            out[i] = float(v)
        except (TypeError, ValueError, OverflowError):
            raise FormatError(
                f"{_where(path, lines, i)}: column '{name}' needs a number, got {_shown(v)}"
            ) from None
        if not np.isfinite(out[i]):
            raise FormatError(
                f"{_where(path, lines, i)}: column '{name}' needs a finite number, got "
                f"{_shown(v)}" + ("; leave the cell empty for a missing value" if missing else "")
            )
    return out


def _integer(v: Any) -> int | None:
    """The exact integer ``v`` stands for, or None (floats only up to 2**53)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, str):
        text = v.strip()
        if len(text) > 64:
            return None
        try:
            return int(text)
        except ValueError:
            pass
        try:  # "3.0", "1e3": exact decimal arithmetic, no float rounding
            exact = Decimal(text)
        except (InvalidOperation, ValueError):
            return None
        if not exact.is_finite() or exact.adjusted() > 40 or exact != exact.to_integral_value():
            return None
        return int(exact)
    if isinstance(v, (float, np.floating)):
        if np.isfinite(v) and v == np.round(v) and abs(v) <= _EXACT_FLOAT:
            return int(v)
    return None


def _integers(values: list[Any], name: str, path: Path, lines: list[int]) -> np.ndarray:
    """Exact int64 values of an id/frame column: no rounding, no wrapping."""
    try:  # fast path: plain decimal integers in range
        if all(type(v) is int for v in values):
            return np.asarray(values, dtype=np.int64).reshape(-1)
        if all(type(v) is str for v in values):
            arr = np.asarray(values, dtype=str)
            if arr.size == 0 or np.all(np.char.isdigit(np.char.lstrip(arr, "-+"))):
                return arr.astype(np.int64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        pass
    out = np.empty(len(values), np.int64)
    for i, v in enumerate(values):
        value = _integer(v)
        if value is None:
            big = isinstance(v, float) and _looks_big(v)
            hint = (" (written as a float beyond 2**53, so its digits are lost: write the "
                    "integer itself)" if big else "")
            raise FormatError(
                f"{_where(path, lines, i)}: column '{name}' needs an integer, got {_shown(v)}{hint}"
            )
        if not _INT64[0] <= value <= _INT64[1]:
            raise FormatError(
                f"{_where(path, lines, i)}: column '{name}' holds {_shown(v)}, outside the 64-bit "
                f"integer range {_INT64[0]}..{_INT64[1]}; renumber the {name} values"
            )
        out[i] = value
    return out


def _looks_big(v: Any) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return False
    return bool(np.isfinite(f) and abs(f) > _EXACT_FLOAT and f == np.round(f))


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
    if values and all(isinstance(v, bool) for v in values):
        return np.asarray(values, bool)
    if values and all(type(v) is int and _INT64[0] <= v <= _INT64[1] for v in values):
        return np.asarray(values, np.int64)
    try:
        floats = np.asarray(
            [np.nan if v is None or (isinstance(v, str) and not v.strip()) else
             float(v) if isinstance(v, (str, int, float)) and not isinstance(v, bool) else
             _not_number() for v in values], float)
    except (TypeError, ValueError, OverflowError):
        return np.asarray([_text(v) for v in values], dtype=str)
    if (
        floats.size and np.all(np.isfinite(floats)) and all(isinstance(v, str) for v in values)
        and all(_integer_text(v) for v in values)
    ):
        return np.asarray([int(v) for v in values], np.int64)
    return floats


def _not_number() -> float:
    raise TypeError


def _integer_text(v: str) -> bool:
    text = v.strip().lstrip("+-")
    return text.isdigit() and _INT64[0] <= int(v) <= _INT64[1]


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    try:
        return json.dumps(v)
    except (TypeError, ValueError, RecursionError):
        return type(v).__name__


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
        with np.errstate(over="ignore"):
            cov = cov * scale[:, None] * scale[None, :]
        bad = bad_covariances(cov)
        if np.any(bad):
            row = int(np.flatnonzero(bad)[0])
            raise FormatError(
                f"{_where(path, lines, row)}: the spot's size gives a covariance that is not "
                "finite and positive definite (too large?); fix its radius or covariance"
            )
        nodes["covariance"] = cov
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
        nodes["score"] = _numbers(spots["score"], "score", path, lines, missing=True)
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
        cov = np.empty((n, 3, 3))
        for i, value in enumerate(spots["covariance"]):
            try:
                if not (isinstance(value, list) and len(value) == 3
                        and all(isinstance(r, list) and len(r) == 3 for r in value)):
                    raise TypeError
                if any(isinstance(x, bool) or not isinstance(x, (int, float))
                       for r in value for x in r):
                    raise TypeError
                cov[i] = np.asarray(value, float)
            except (TypeError, ValueError, OverflowError):
                raise FormatError(
                    f"{_where(path, lines, i)}: 'covariance' must be a 3x3 list of numbers (µm²) "
                    f"per spot, got {_shown(value)}"
                ) from None
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
        cov = sphere_covariances(n, 1.0) * (radius**2)[:, None, None]
    else:
        return None
    bad = bad_covariances(cov)
    if np.any(bad):
        row = int(np.flatnonzero(bad)[0])
        raise FormatError(
            f"{_where(path, lines, row)}: the covariance {np.round(cov[row], 6).tolist()} is not "
            f"finite, symmetric and positive definite ({int(bad.sum())} spots in all); fix these "
            "entries (µm², eigenvalues > 0) or give a 'radius' column instead"
        )
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
def write_annotations(graph: TrackGraph, path: str | Path, *, overwrite: bool = False) -> Path:
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
    overwrite : bool
        Replace existing files; otherwise an existing ``path`` (or, for CSV, its
        ``<stem>_links.csv``) is an error and nothing is written.

    Returns
    -------
    Path
        ``path`` (the spots file for CSV).

    Raises
    ------
    OutputExistsError
        If a target file exists and ``overwrite`` is False.
    InvalidInputError
        On another suffix, or a graph that is not a TrackGraph.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise InvalidInputError(f"write_annotations writes .csv or .json, got {path.name!r}")
    if not isinstance(graph, TrackGraph):
        raise InvalidInputError(f"write_annotations needs a TrackGraph, got {type(graph).__name__}")
    for target in (path, links_path(path)) if suffix == ".csv" else (path,):
        refuse_existing(target, overwrite)
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
