"""Atomic writes: data goes to a temporary sibling first and is renamed into place.

An interrupted write therefore never leaves a half-written file (or Zarr folder) under
the final name; at worst a ``.tmp-*`` sibling remains, which the next write replaces.
Writers that must not replace what a user already has call :func:`refuse_existing` first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from celltrack.errors import OutputExistsError

__all__ = [
    "OutputExistsError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "refuse_existing",
]


def refuse_existing(path: str | Path, overwrite: bool) -> None:
    """Raise :class:`OutputExistsError` when ``path`` holds data and ``overwrite`` is False.

    A missing path and an empty folder hold nothing to lose and pass.

    Parameters
    ----------
    path : str or Path
        The output file or folder.
    overwrite : bool
        Whether the caller agreed to replace what is there.

    Raises
    ------
    OutputExistsError
        If ``path`` is a file, a link, or a folder with entries, and ``overwrite`` is False.
    """
    path = Path(path)
    if overwrite or not (path.exists() or path.is_symlink()):
        return
    if path.is_dir() and not path.is_symlink():
        entries = sorted(p.name for p in path.iterdir())
        if not entries:
            return
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        what = f"a folder holding {len(entries)} entries ({shown})"
    else:
        what = "a file"
    raise OutputExistsError(
        f"{path} exists ({what}); nothing was written. Pass overwrite=True (CLI: --force) "
        "to replace it, or choose a new path"
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success rename it to ``final``.

    Works for files and for directories (Zarr stores, CTC folders). If the block raises,
    the temporary path is removed and ``final`` is left untouched.

    Parameters
    ----------
    final : str or Path
        The destination path. Its parent folder is created if needed.

    Yields
    ------
    Path
        A fresh, not yet existing path in the same folder as ``final``.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if tmp.is_dir() and final.exists():
        # os.replace cannot replace a non-empty folder: move the old one aside first
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
        os.replace(tmp, final)
        _remove(old)
    else:
        os.replace(tmp, final)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (fsynced temp file + rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))
