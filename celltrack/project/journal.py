"""An append-only, fsynced journal of annotation edits on top of the GEFF store.

Rewriting the whole ``annotations.geff`` store after every click costs about a second (one
zarr write per column and chunk); annotating is clicking. So :class:`Project` keeps the
store as a *base* and appends each edit to ``annotations.journal`` as one JSON line: the
difference between the graph before and after (nodes and edges removed, rows added or
changed), flushed and fsynced before the call returns. Now and then (every
:data:`COMPACT_EVERY` edits, at the end of a ``batch()``, when the project is opened) the
journal is *compacted*: the full graph is written to the store atomically, stamped with the
sequence number of the last edit it contains (``attrs["journal_seq"]``), and then the journal
is emptied.

Crash safety, case by case: a kill while appending leaves a torn last line, which replay
ignores (the edit it held had not returned yet); a kill after the new store is in place but
before the journal is emptied leaves entries whose ``seq`` is at most the store's, which
replay skips; a kill during the store's atomic swap is mended by
:func:`celltrack.project.storage.recover`. Graphs are kept canonical (nodes by id, edges by
(source, target); :meth:`TrackGraph.sorted`), so replaying an edit reproduces the committed
graph exactly.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError
from celltrack.graph import TrackGraph

__all__ = ["COMPACT_EVERY", "EditJournal", "apply_delta", "delta_is_empty", "graph_delta"]

#: Edits appended before the journal is folded into the store.
COMPACT_EVERY = 500


def _column_payload(values: np.ndarray) -> dict[str, Any]:
    return {"dtype": values.dtype.str, "shape": list(values.shape[1:]), "values": values.tolist()}


def _column_from(payload: dict[str, Any]) -> np.ndarray:
    values = np.asarray(payload["values"], dtype=np.dtype(payload["dtype"]))
    return values.reshape(-1, *payload["shape"])


def _row_bytes(column: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The raw bytes of the chosen rows of a fixed-width column, shape (len(rows), B)."""
    picked = np.ascontiguousarray(column[rows])
    return picked.reshape(len(rows), -1).view(np.uint8) if len(rows) else picked


def _rows_differ(a: dict[str, np.ndarray], b: dict[str, np.ndarray], ra, rb) -> np.ndarray:
    """Which of the row pairs (ra[i] of a, rb[i] of b) differ, bit for bit, in any column.

    Bitwise, so a NaN equals itself and any real change (even −0.0 for 0.0) counts.
    """
    differ = np.zeros(len(ra), bool)
    for name, col in a.items():
        if col.dtype.hasobject:  # no fixed width: compare values
            differ |= _any_per_row(col[ra] != b[name][rb], len(ra))
        else:
            differ |= (_row_bytes(col, ra) != _row_bytes(b[name], rb)).any(axis=1)
    return differ


def _any_per_row(mask: Any, rows: int) -> np.ndarray:
    return np.asarray(mask, bool).reshape(rows, -1).any(axis=1)


def _same_buffer(a: np.ndarray, b: np.ndarray) -> bool:
    """True if ``a`` and ``b`` are the same memory read the same way (so equal)."""
    return (
        a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


def _words(column: np.ndarray) -> tuple[np.ndarray, int]:
    """A contiguous column's bytes as the widest unsigned words that split its rows evenly,
    flat, and the number of words per row."""
    width = column.dtype.itemsize * math.prod(column.shape[1:])
    size = next(w for w in (8, 4, 2, 1) if width % w == 0)
    flat = np.ascontiguousarray(column).reshape(-1).view(np.uint8).view(f"u{size}")
    return flat, width // size


def _aligned_changes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows i where ``a[i]`` and ``b[i]`` (same shape and dtype) differ bit for bit, sorted.

    A column shared by both graphs costs nothing; an equal one one pass over its memory;
    only a column that differs is searched for its rows.
    """
    n = len(a)
    if n == 0 or _same_buffer(a, b):
        return np.zeros(0, np.int64)
    if a.dtype.hasobject:
        return np.flatnonzero(_any_per_row(a != b, n))
    wa, per_row = _words(a)
    wb, _ = _words(b)
    if per_row == 0 or np.array_equal(wa, wb):
        return np.zeros(0, np.int64)
    return np.unique(np.flatnonzero(wa != wb) // per_row)


def _region_changes(
    old: dict[str, np.ndarray], new: dict[str, np.ndarray], o: int, n: int, length: int
) -> np.ndarray:
    """Rows ``n + i`` of ``new`` whose row ``o + i`` of ``old`` (same key) differs."""
    if length == 0:
        return np.zeros(0, np.int64)
    found = [
        _aligned_changes(old[name][o : o + length], col[n : n + length])
        for name, col in new.items()
    ]
    return n + np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Number of leading positions where the key arrays ``a`` and ``b`` agree."""
    k = min(len(a), len(b))
    differ = np.flatnonzero(a[:k] != b[:k])
    return int(differ[0]) if differ.size else k


def _member(sorted_keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Which of ``query`` occur in the sorted, unique ``sorted_keys``."""
    if sorted_keys.size == 0 or query.size == 0:
        return np.zeros(query.shape, bool)
    if sorted_keys.dtype.names is not None:  # record keys (ids beyond 31 bits)
        return np.isin(query, sorted_keys)
    pos = np.minimum(np.searchsorted(sorted_keys, query), sorted_keys.size - 1)
    return sorted_keys[pos] == query


def _table_delta(
    old: dict[str, np.ndarray], new: dict[str, np.ndarray], old_keys, new_keys
) -> tuple[np.ndarray, dict[str, Any]]:
    """Rows of ``old`` to delete and the payload of the rows of ``new`` to upsert.

    Both tables are canonical (sorted by unique key). An edit changes a run of keys: the
    common leading and trailing keys line up row for row and are compared column by
    column (:func:`_aligned_changes`); only the keys in between are matched by value.
    """
    n_old, n_new = len(old_keys), len(new_keys)
    head = _common_prefix(old_keys, new_keys)
    tail = _common_prefix(old_keys[head:][::-1], new_keys[head:][::-1])
    old_mid, new_mid = old_keys[head : n_old - tail], new_keys[head : n_new - tail]
    in_old = _member(old_mid, new_mid)
    keep_old = _member(new_mid, old_mid)
    parts = [
        _region_changes(old, new, 0, 0, head),
        _region_changes(old, new, n_old - tail, n_new - tail, tail),
        head + np.flatnonzero(~in_old),
    ]
    common_new = head + np.flatnonzero(in_old)
    if common_new.size:  # common keys between the aligned runs line up in order too
        common_old = head + np.flatnonzero(keep_old)
        parts.append(common_new[_rows_differ(new, old, common_new, common_old)])
    deleted = head + np.flatnonzero(~keep_old)
    rows = np.unique(np.concatenate(parts))
    return deleted, {name: _column_payload(col[rows]) for name, col in new.items()}


def _edge_keys(edges: dict[str, np.ndarray]) -> np.ndarray:
    pairs = np.stack([edges["source"], edges["target"]], axis=1).astype(np.int64)
    return np.ascontiguousarray(pairs).view([("s", np.int64), ("t", np.int64)]).ravel()


_PACK_BITS = 31


def _packed_edge_keys(edges: dict[str, np.ndarray]) -> np.ndarray | None:
    """(source, target) packed into one int64 that sorts like the pairs; None when an id
    is negative or needs more than 31 bits."""
    src = np.asarray(edges["source"], np.int64)
    tgt = np.asarray(edges["target"], np.int64)
    if src.size and (min(src.min(), tgt.min()) < 0 or max(src.max(), tgt.max()) >> _PACK_BITS):
        return None
    return (src << _PACK_BITS) | tgt


def _edge_key_pair(old: dict[str, np.ndarray], new: dict[str, np.ndarray]):
    """Comparable keys of both edge tables (packed integers where the ids allow)."""
    a, b = _packed_edge_keys(old), _packed_edge_keys(new)
    if a is None or b is None:
        return _edge_keys(old), _edge_keys(new)
    return a, b


def _same_columns(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """True if both tables have the same column names, dtypes and row shapes."""
    if a.keys() != b.keys():
        return False
    return all(
        v.dtype.str == b[k].dtype.str and v.shape[1:] == b[k].shape[1:] for k, v in a.items()
    )


def graph_delta(old: TrackGraph, new: TrackGraph) -> dict[str, Any] | None:
    """The edit that turns canonical ``old`` into canonical ``new``, as JSON-able data.

    Rows count as changed when they differ bit for bit (a NaN equals itself; −0.0 differs
    from 0.0). Returns None when the edit changes the set of columns or their dtypes (then
    the caller writes the whole graph instead).
    """
    old_n, new_n = dict(old.nodes), dict(new.nodes)
    old_e, new_e = dict(old.edges), dict(new.edges)
    if not (_same_columns(old_n, new_n) and _same_columns(old_e, new_e)):
        return None
    del_nodes, nodes = _table_delta(old_n, new_n, old_n["id"], new_n["id"])
    del_edges, edges = _table_delta(old_e, new_e, *_edge_key_pair(old_e, new_e))
    pairs = np.stack([old_e["source"][del_edges], old_e["target"][del_edges]], axis=1)
    return {
        "del_nodes": old_n["id"][del_nodes].tolist(),
        "nodes": nodes,
        "del_edges": pairs.astype(np.int64).tolist(),
        "edges": edges,
        "attrs": new.attrs if new.attrs != old.attrs else None,
    }


def delta_is_empty(delta: dict[str, Any]) -> bool:
    """True if a :func:`graph_delta` changes nothing."""
    return (
        not delta["del_nodes"]
        and not delta["del_edges"]
        and delta["attrs"] is None
        and not any(c["values"] for c in (*delta["nodes"].values(), *delta["edges"].values()))
    )


def _merge(table: dict[str, np.ndarray], keep: np.ndarray, add: dict[str, np.ndarray]):
    if not add:  # nothing upserted: the payload has no columns
        return {k: v[keep] for k, v in table.items()}
    return {k: np.concatenate([v[keep], add[k]]) for k, v in table.items()}


def apply_delta(graph: TrackGraph, delta: dict[str, Any]) -> TrackGraph:
    """Replay one :func:`graph_delta` on canonical ``graph``; returns the canonical result."""
    nodes = {k: _column_from(v) for k, v in delta["nodes"].items()}
    edges = {k: _column_from(v) for k, v in delta["edges"].items()}
    old_n = {k: np.asarray(v) for k, v in graph.nodes.items()}
    old_e = {k: np.asarray(v) for k, v in graph.edges.items()}
    gone = np.asarray(delta["del_nodes"], np.int64)
    replaced = nodes.get("id", gone[:0])
    keep_n = ~np.isin(old_n["id"], np.concatenate([gone, replaced]))
    pairs = np.asarray(delta["del_edges"], np.int64).reshape(-1, 2)
    dropped = _edge_keys({"source": pairs[:, 0], "target": pairs[:, 1]})
    keys = _edge_keys(old_e)
    keep_e = ~np.isin(keys, dropped)
    if edges:
        keep_e &= ~np.isin(keys, _edge_keys(edges))
    attrs = dict(delta["attrs"]) if delta.get("attrs") is not None else dict(graph.attrs)
    out = TrackGraph(
        _merge(old_n, keep_n, nodes), _merge(old_e, keep_e, edges), attrs=attrs, validate=False
    )
    return out.sorted()


class EditJournal:
    """The journal file of one annotation store.

    Parameters
    ----------
    path : str or Path
        The journal file (``annotations.journal`` beside ``annotations.geff``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def entries(self) -> list[dict[str, Any]]:
        """Every complete entry, in order; a torn last line (a killed append) is skipped.

        Raises
        ------
        FormatError
            If a line other than the last is not a valid entry (the file was damaged).
        """
        if not self.path.is_file():
            return []
        lines = self.path.read_bytes().split(b"\n")
        out = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
                    raise ValueError("not an edit entry")
            except ValueError as exc:
                if i >= len(lines) - 2:  # the last line (the file ends with "\n" or not)
                    break
                raise FormatError(
                    f"{self.path}: line {i + 1} is not a valid edit ({exc}); the journal is "
                    "damaged: move it away to open the project at its last compacted state"
                ) from None
            out.append(entry)
        return out

    def append(self, seq: int, delta: dict[str, Any]) -> None:
        """Append one edit and fsync it before returning.

        If writing or syncing fails (disk full, I/O error), the file is cut back to its
        previous length before the error propagates, so a failed edit never reappears.
        """
        line = json.dumps({"seq": int(seq), **delta}, separators=(",", ":"), allow_nan=True)
        new = not self.path.exists()
        with open(self.path, "ab") as fh:
            size = fh.tell()
            try:
                if size and not self._ends_with_newline():
                    fh.write(b"\n")  # a torn line from a killed append stays on its own line
                fh.write(line.encode("utf-8") + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            except BaseException:
                fh.truncate(size)
                raise
        if new:
            _fsync_dir(self.path.parent)

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def replay(self, base: TrackGraph) -> tuple[TrackGraph, int]:
        """The base graph with every entry newer than its ``journal_seq`` applied.

        Returns
        -------
        graph : TrackGraph
        seq : int
            The sequence number of the last edit in ``graph``.
        """
        graph = base.sorted()
        seq = int(base.attrs.get("journal_seq", 0))
        for entry in self.entries():
            if entry["seq"] <= seq:
                continue  # already in the base (a kill came before the journal was emptied)
            graph = apply_delta(graph, entry)
            seq = entry["seq"]
        return graph, seq

    def clear(self) -> None:
        """Empty the journal (after its edits were folded into the store)."""
        if self.path.exists():
            os.unlink(self.path)
            _fsync_dir(self.path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
