"""How many torch CPU threads to use: the cores that are free now, not all of them.

On a shared machine, torch's default (one thread per core) oversubscribes the CPU as soon
as other processes run: measured on a loaded 2-core machine, one frame took 1.8 s with one
thread and 83 s with two. :func:`choose_threads` takes the cores this process may run on,
subtracts the 1-minute load average of everything else, and keeps at least one and at most
torch's current setting (so a process that chose ``torch.set_num_threads(1)`` keeps it).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["available_cores", "choose_threads", "torch_threads"]

logger = logging.getLogger(__name__)

_STARTED = time.monotonic()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def choose_threads(requested: int | None = None) -> int:
    """Threads for torch: ``requested`` if given, else the cores free right now.

    Parameters
    ----------
    requested : int, optional
        A user's explicit setting (``num_threads`` of a train or predict config); returned
        unchanged.

    Returns
    -------
    int
        ``requested``, or ``cores - round(load of other processes)``, at least 1 and at
        most ``torch.get_num_threads()``, where the
        load of others is the 1-minute load average minus this process' own mean CPU use
        since celltrack was imported (cores busy).
    """
    if requested is not None:
        return int(requested)
    import torch

    cores = min(available_cores(), torch.get_num_threads())
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return max(1, cores)
    times = os.times()
    own = (times.user + times.system) / max(time.monotonic() - _STARTED, 60.0)
    others = max(0.0, load - own)
    return max(1, min(cores, round(available_cores() - others)))


@contextmanager
def torch_threads(requested: int | None = None, *, what: str = "prediction") -> Iterator[int]:
    """Run a block with :func:`choose_threads` torch threads, restoring the old count after.

    Parameters
    ----------
    requested : int, optional
        Explicit thread count (None = choose from the free cores).
    what : str
        Named in the debug log line.

    Yields
    ------
    int
        The thread count in use.
    """
    import torch

    before = torch.get_num_threads()
    threads = choose_threads(requested)
    if threads != before:
        torch.set_num_threads(threads)
    logger.debug("%s: %d torch CPU thread(s) of %d core(s)", what, threads, available_cores())
    try:
        yield threads
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
