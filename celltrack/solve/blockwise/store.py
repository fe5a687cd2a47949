"""Per-block result persistence: one ``.npz`` per finished block, written atomically.

The store is a folder holding ``manifest.json`` (a fingerprint of the problem: candidate
graph, block grid and linker config) and ``block_<id>.npz`` files. A run that is
interrupted leaves only complete block files behind (atomic rename), so a rerun with the
same store loads them instead of solving those blocks again. A store whose fingerprint
does not match the current problem is refused (:class:`~celltrack.errors.CheckpointError`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import CheckpointError

__all__ = ["BlockResult", "BlockStore", "fingerprint"]

log = logging.getLogger(__name__)

_BLOCK_FILE = re.compile(r"^block_(\d+)\.npz$")


@dataclass
class BlockResult:
    """Decisions of one block for the nodes and edges it owns (its write ROI).

    Attributes
    ----------
    block : int
        Linear block id.
    node_rows : ndarray, shape (n,), int64
        Global node rows owned by the block.
    node_selected : ndarray, shape (n,), bool
        Whether each owned node is selected.
    edge_rows : ndarray, shape (m,), int64
        Global edge rows owned by the block (edges whose target it owns).
    edge_selected : ndarray, shape (m,), bool
        Whether each owned edge is selected.
    info : dict
        JSON-friendly statistics: status, objective, sizes, seconds, worker peak RSS.
    """

    block: int
    node_rows: np.ndarray
    node_selected: np.ndarray
    edge_rows: np.ndarray
    edge_selected: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def fingerprint(arrays: list[np.ndarray], meta: dict[str, Any]) -> str:
    """SHA-256 hex digest of arrays (dtype, shape, bytes) and a JSON-able ``meta`` dict."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        if array.dtype.kind == "O":
            digest.update(repr(array.tolist()).encode())
        else:
            digest.update(array.tobytes())
    digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class BlockStore:
    """Folder of per-block results for one block-wise problem.

    Parameters
    ----------
    path : str or Path
        Folder (created if missing).
    key : str
        Problem fingerprint (see :func:`fingerprint`).
    resume : bool
        If True, keep results already in the folder (refusing a different problem); if
        False, delete them and start afresh.

    Raises
    ------
    CheckpointError
        If ``resume`` and the folder holds results of a different problem.
    """

    def __init__(self, path: str | Path, key: str, *, resume: bool = True) -> None:
        self.path = Path(path)
        self.key = key
        self.path.mkdir(parents=True, exist_ok=True)
        manifest = self.path / "manifest.json"
        if manifest.exists() and resume:
            try:
                found = json.loads(manifest.read_text(encoding="utf-8")).get("fingerprint")
            except (OSError, json.JSONDecodeError) as exc:
                raise CheckpointError(
                    f"block store manifest '{manifest}' is unreadable ({exc}); delete the folder "
                    "or pass resume=False"
                ) from None
            if found != key:
                raise CheckpointError(
                    f"block store '{self.path}' holds results of a different problem (fingerprint "
                    f"{str(found)[:12]}…, expected {key[:12]}…: the candidate graph, block grid or "
                    "linker config changed); use another store folder or pass resume=False to "
                    "overwrite it"
                )
        else:  # a fresh start, or block files without a manifest (cannot be trusted)
            for old in self.finished():
                os.remove(self._file(old))
        from celltrack.io.atomic import atomic_write_text  # celltrack.io loads on use

        atomic_write_text(manifest, json.dumps({"fingerprint": key}, indent=2) + "\n")

    def _file(self, block: int) -> Path:
        return self.path / f"block_{int(block):07d}.npz"

    def finished(self) -> list[int]:
        """Ids of the blocks with a stored result, sorted."""
        out = []
        for entry in os.scandir(self.path):
            match = _BLOCK_FILE.match(entry.name)
            if match:
                out.append(int(match.group(1)))
        return sorted(out)

    def has(self, block: int) -> bool:
        """True if ``block`` has a stored result."""
        return self._file(block).exists()

    def save(self, result: BlockResult) -> Path:
        """Write one block's result atomically."""
        final = self._file(result.block)
        from celltrack.io.atomic import atomic_path  # celltrack.io loads on use

        with atomic_path(final) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    node_rows=result.node_rows.astype(np.int64),
                    node_selected=result.node_selected.astype(bool),
                    edge_rows=result.edge_rows.astype(np.int64),
                    edge_selected=result.edge_selected.astype(bool),
                    info=np.asarray(json.dumps(result.info, default=str)),
                )
                handle.flush()
                os.fsync(handle.fileno())
        return final

    def load(self, block: int) -> BlockResult:
        """Read one block's result.

        Raises
        ------
        CheckpointError
            If the file is missing or corrupt.
        """
        path = self._file(block)
        try:
            with np.load(path, allow_pickle=False) as data:
                return BlockResult(
                    block=int(block),
                    node_rows=data["node_rows"],
                    node_selected=data["node_selected"],
                    edge_rows=data["edge_rows"],
                    edge_selected=data["edge_selected"],
                    info=json.loads(str(data["info"])),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise CheckpointError(
                f"cannot read block result '{path}' ({exc}); delete it to re-solve that block"
            ) from None
