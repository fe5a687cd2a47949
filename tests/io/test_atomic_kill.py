"""Crash safety of atomic writes: real SIGKILLs at random (seeded) points in subprocesses.

Checks (issue #12, item 5): a killed folder write leaves nothing under the final name but
the old or the new complete version, a plain reader always finds a store there (the
folder swap is one ``renameat2(RENAME_EXCHANGE)``), and any ``.name.tmp-*`` leftover is
removed by the next write.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from celltrack.io import atomic
from celltrack.io.atomic import atomic_path, clean_leftovers

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SIGKILL / renameat2 on Linux")

_FOLDER_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from celltrack.io.atomic import atomic_path

    final, chunks = Path(sys.argv[1]), int(sys.argv[2])
    version = int(sys.argv[3])
    while True:
        version += 1
        with atomic_path(final) as tmp:
            tmp.mkdir()
            for i in range(chunks):
                (tmp / f"chunk{i}").write_bytes(bytes([version % 251]) * 2048)
            (tmp / "complete").write_text(str(version))
        print(version, flush=True)
""")


def _leftovers(final: Path) -> list[str]:
    return sorted(p.name for p in final.parent.iterdir() if p.name.startswith(f".{final.name}."))


def _check_complete(final: Path, chunks: int) -> int:
    """The folder under the final name is one whole version; return that version."""
    assert final.is_dir(), f"no store under {final.name} after the kill"
    version = int((final / "complete").read_text())
    files = sorted(p.name for p in final.iterdir())
    assert len(files) == chunks + 1, files
    for i in range(chunks):
        assert (final / f"chunk{i}").read_bytes() == bytes([version % 251]) * 2048
    return version


def _start(script: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                            text=True, env=env)


@pytest.mark.parametrize("seed", range(6))
def test_killed_folder_swaps_leave_old_or_new_and_no_lasting_leftovers(tmp_path, seed):
    rng = random.Random(seed)
    final, chunks = tmp_path / "store.zarr", 40
    with atomic_path(final) as tmp:  # version 0, so every write below is a swap
        tmp.mkdir()
        for i in range(chunks):
            (tmp / f"chunk{i}").write_bytes(bytes([0]) * 2048)
        (tmp / "complete").write_text("0")
    proc = _start(_FOLDER_WRITER, str(final), str(chunks), "0")
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # one swap done: the writer is in its loop
        time.sleep(rng.uniform(0.0, 0.08))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    _check_complete(final, chunks)  # a plain reader finds a whole store
    # whatever the kill left (a half-written tmp, an old copy being deleted) goes on the
    # next write
    with atomic_path(final) as tmp:
        tmp.mkdir()
        for i in range(chunks):
            (tmp / f"chunk{i}").write_bytes(bytes([7]) * 2048)
        (tmp / "complete").write_text("7")
    assert _check_complete(final, chunks) == 7
    assert _leftovers(final) == []


def test_killed_first_write_leaves_no_final_name_and_a_removable_leftover(tmp_path):
    final = tmp_path / "new.geff"
    script = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from celltrack.io.atomic import atomic_path
        with atomic_path(Path(sys.argv[1])) as tmp:
            tmp.mkdir()
            (tmp / "half").write_text("x")
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = _start(script, str(final))
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert not final.exists()
    left = _leftovers(final)
    assert len(left) == 1 and left[0].startswith(".new.geff.tmp-")
    assert clean_leftovers(final) == [tmp_path / left[0]]
    assert _leftovers(final) == []


def test_leftovers_of_a_live_writer_are_kept(tmp_path):
    final = tmp_path / "s.zarr"
    live = tmp_path / f".s.zarr.tmp-{os.getppid()}-0123abcd"
    live.mkdir()
    dead = tmp_path / ".s.zarr.tmp-99999999"  # an older name without a pid: stale
    dead.mkdir()
    assert clean_leftovers(final) == [dead]
    assert live.exists()


def test_two_rename_fallback_is_restored_by_the_next_write(tmp_path, monkeypatch):
    final = tmp_path / "s.zarr"
    final.mkdir()
    (final / "v").write_text("old")
    # a kill between "final → .old" and "tmp → final" of the fallback swap
    os.replace(final, tmp_path / ".s.zarr.old-99999998-0123abcd")
    (tmp_path / ".s.zarr.tmp-99999998-4567cdef").mkdir()
    assert not final.exists()
    clean_leftovers(final)
    assert (final / "v").read_text() == "old"
    assert _leftovers(final) == []
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    with atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "v").write_text("new")
    assert (final / "v").read_text() == "new"
    assert _leftovers(final) == []


_IMAGE_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from celltrack.io import write_image
    path, version = sys.argv[1], 0
    while True:
        version += 1
        movie = np.full((4, 2, 32, 32), version % 200, np.uint8)
        write_image(movie, path, voxel_size=(1, 1, 1), overwrite=True)
        print(version, flush=True)
""")


@pytest.mark.parametrize("seed", range(2))
def test_killed_write_image_keeps_a_readable_movie(tmp_path, seed):
    from celltrack.io import read_image, write_image

    rng = random.Random(100 + seed)
    path = tmp_path / "movie.zarr"
    write_image(np.zeros((4, 2, 32, 32), np.uint8), path, voxel_size=(1, 1, 1))
    proc = _start(_IMAGE_WRITER, str(path))
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.05))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    movie = read_image(path).to_numpy()  # complete: missing chunks would be an error
    assert np.all(movie == movie.flat[0])
    write_image(movie, path, voxel_size=(1, 1, 1), overwrite=True)
    assert _leftovers(path) == []
