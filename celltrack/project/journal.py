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
import os
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError
from celltrack.graph import TrackGraph

__all__ = ["COMPACT_EVERY", "EditJournal", "graph_delta"]

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
            differ |= col[ra] != b[name][rb]
        else:
            differ |= (_row_bytes(col, ra) != _row_bytes(b[name], rb)).any(axis=1)
    return differ


def _table_delta(
    old: dict[str, np.ndarray], new: dict[str, np.ndarray], old_keys, new_keys
) -> tuple[np.ndarray, dict[str, Any]]:
    """Rows of ``old`` to delete (by key) and rows of ``new`` to upsert (all columns)."""
    keep_old = np.isin(old_keys, new_keys)
    in_old = np.isin(new_keys, old_keys)
    upsert = ~in_old
    common_new = np.flatnonzero(in_old)
    if common_new.size:
        # both tables are canonical (sorted by key), so common keys line up in order
        common_old = np.flatnonzero(keep_old)
        upsert[common_new[_rows_differ(new, old, common_new, common_old)]] = True
    deleted = old_keys[~keep_old]
    rows = np.flatnonzero(upsert)
    return deleted, {name: _column_payload(col[rows]) for name, col in new.items()}


def _edge_keys(edges: dict[str, np.ndarray]) -> np.ndarray:
    pairs = np.stack([edges["source"], edges["target"]], axis=1).astype(np.int64)
    return np.ascontiguousarray(pairs).view([("s", np.int64), ("t", np.int64)]).ravel()


def graph_delta(old: TrackGraph, new: TrackGraph) -> dict[str, Any] | None:
    """The edit that turns canonical ``old`` into canonical ``new``, as JSON-able data.

    Returns None when the edit changes the set of columns or their dtypes (then the caller
    writes the whole graph instead).
    """
    for a, b in ((old.nodes, new.nodes), (old.edges, new.edges)):
        if {k: (v.dtype.str, v.shape[1:]) for k, v in a.items()} != {
            k: (v.dtype.str, v.shape[1:]) for k, v in b.items()
        }:
            return None
    old_n, new_n = dict(old.nodes), dict(new.nodes)
    del_nodes, nodes = _table_delta(old_n, new_n, old_n["id"], new_n["id"])
    old_e, new_e = dict(old.edges), dict(new.edges)
    del_edges, edges = _table_delta(old_e, new_e, _edge_keys(old_e), _edge_keys(new_e))
    return {
        "del_nodes": del_nodes.tolist(),
        "nodes": nodes,
        "del_edges": [[int(s), int(t)] for s, t in del_edges.tolist()],
        "edges": edges,
        "attrs": new.attrs if new.attrs != old.attrs else None,
    }


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
