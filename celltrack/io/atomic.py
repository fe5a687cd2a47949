"""Atomic writes: data goes to a temporary sibling first and is renamed into place.

An interrupted write therefore never leaves a half-written file (or Zarr folder) under
the final name. A folder that replaces an existing one is swapped in with one atomic
``renameat2(RENAME_EXCHANGE)`` call on Linux, so a reader always finds either the old
or the new version under the final name, even if the writer is killed mid-swap (other
systems fall back to two renames, with a short window in which the name is missing).

A killed writer can leave a ``.<name>.tmp-<pid>-<hex>`` (or ``.old-``) sibling behind;
the next write of the same name removes every such leftover whose process is gone (and
restores an ``.old-`` version when the final name is missing). Writers that must not
replace what a user already has call :func:`refuse_existing` first.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
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
    "clean_leftovers",
    "refuse_existing",
    "remove_path",
]

logger = logging.getLogger(__name__)

_LEFTOVER = re.compile(r"\.(tmp|old)-(?:(\d+)-)?[0-9a-f]{8}$")


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
    if not overwrite:
        clean_leftovers(path)  # an interrupted swap's old version counts as existing data
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


def remove_path(path: Path, *, ignore_errors: bool = False) -> None:
    """Delete a file, link or folder tree (nothing if ``path`` does not exist)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=ignore_errors)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process (or an odd pid): leave its files alone
    return True


def clean_leftovers(final: str | Path) -> list[Path]:
    """Remove what killed atomic writes of ``final`` left behind; restore a lost swap.

    Siblings named ``.<name>.tmp-<pid>-<hex>`` / ``.<name>.old-<pid>-<hex>`` whose
    writer process no longer runs (and names without a pid, from older versions) are
    removed. If ``final`` itself is missing but such an ``.old-`` version exists (a
    non-Linux two-rename swap was interrupted), the newest one is renamed back first.

    Parameters
    ----------
    final : str or Path
        The destination path of the writes.

    Returns
    -------
    list of Path
        The paths removed or restored.
    """
    final = Path(final)
    parent = final.parent
    if not parent.is_dir():
        return []
    prefix = f".{final.name}."
    stale: list[tuple[str, Path]] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        match = _LEFTOVER.fullmatch(entry.name[len(prefix) - 1:])
        if match is None:
            continue
        pid = match.group(2)
        if pid is not None and (int(pid) == os.getpid() or _pid_alive(int(pid))):
            continue
        stale.append((match.group(1), entry))
    touched: list[Path] = []
    olds = sorted((p for kind, p in stale if kind == "old"), key=lambda p: p.stat().st_mtime)
    if olds and not (final.exists() or final.is_symlink()):
        os.replace(olds[-1], final)
        logger.warning("%s: restored the previous version after an interrupted write", final)
        touched.append(final)
        olds = olds[:-1]
    for kind, path in stale:
        if kind == "tmp" or path in olds:
            remove_path(path)
            touched.append(path)
    return touched


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_exchange_unsupported = False


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2``); False if unsupported."""
    global _exchange_unsupported
    if _exchange_unsupported or not hasattr(os, "fsencode"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        _exchange_unsupported = True
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        _exchange_unsupported = True  # the file system cannot exchange: use two renames
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success move it to ``final`` atomically.

    Works for files and for directories (Zarr stores, CTC folders). If the block raises,
    the temporary path is removed and ``final`` is left untouched. Leftovers of earlier
    killed writes of ``final`` are removed first (:func:`clean_leftovers`). A folder
    replacing an existing ``final`` is exchanged with it in one atomic step where the
    system allows it (Linux), so ``final`` never goes missing.

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
    clean_leftovers(final)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = final.with_name(f".{final.name}.tmp-{tag}")
    try:
        yield tmp
    except BaseException:
        remove_path(tmp)
        raise
    if tmp.is_dir() and final.exists():
        # os.replace cannot replace a non-empty folder: exchange the two, then drop the old
        if _exchange(tmp, final):
            remove_path(tmp)
            return
        old = final.with_name(f".{final.name}.old-{tag}")
        os.replace(final, old)
        os.replace(tmp, final)
        remove_path(old)
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
