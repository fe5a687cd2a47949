"""A killed block-wise driver leaves no worker processes behind (fork and forkserver)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

_DRIVER = textwrap.dedent(
    """
    import sys, time
    from celltrack.solve.blockwise.executors import ProcessExecutor

    def slow(task):
        time.sleep(120)
        return task

    if __name__ == "__main__":
        ex = ProcessExecutor(2, start_method=sys.argv[1], max_in_flight=4)
        results = ex.imap_unordered(slow, range(4))
        import threading
        threading.Thread(target=lambda: next(results), daemon=True).start()
        while len(ex._pool._processes or ()) < 2:  # workers start on demand
            time.sleep(0.05)
        time.sleep(0.5)
        print(" ".join(str(p) for p in ex._pool._processes), flush=True)
        time.sleep(120)  # the test kills this process now
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork/forkserver on Linux")
@pytest.mark.parametrize("start_method", ["fork", "forkserver"])
def test_workers_die_with_a_sigkilled_driver(tmp_path, start_method):
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), start_method], stdout=subprocess.PIPE, text=True
    )
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "orphaned block-wise workers still running"
