"""Executors that run block tasks: in-process, local processes, or dask.distributed.

Every executor offers ``imap_unordered(fn, tasks)``: it consumes an iterator of tasks
lazily (at most ``max_in_flight`` submitted but unfinished, so the driver never builds all
sub-graphs at once) and yields ``fn(task)`` results as they complete.

- ``"serial"``: in the calling process (debugging, tiny problems).
- ``"processes"``: a :class:`concurrent.futures.ProcessPoolExecutor` with ``n_workers``,
  whose workers exit by themselves when the driver dies (even by SIGKILL).
- a :class:`distributed.Client`, or a scheduler address string such as
  ``"tcp://10.0.0.1:8786"`` (a client is connected and closed again): the same code runs
  on a laptop ``LocalCluster`` or an HPC cluster (e.g. started with dask-jobqueue).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from celltrack.errors import DependencyError, InvalidInputError

__all__ = ["DaskExecutor", "ProcessExecutor", "SerialExecutor", "make_executor"]


class SerialExecutor:
    """Run tasks one after the other in this process."""

    n_workers = 1
    name = "serial"

    def imap_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Yield ``fn(task)`` for each task, in order."""
        for task in tasks:
            yield fn(task)

    def close(self) -> None:
        """Nothing to release."""


def _die_with_driver(driver_pid: int, poll_s: float = 0.25) -> None:
    """Worker initializer: exit as soon as the driver process is gone.

    A pool's workers outlive a driver killed with SIGKILL (nothing runs in the driver to
    stop them, and with ``forkserver`` their parent is not even the driver), each holding
    hundreds of MiB. A daemon thread in every worker checks every ``poll_s`` seconds that
    the driver still exists and ends the worker otherwise.
    """

    def watch() -> None:
        while True:
            try:
                os.kill(driver_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # pragma: no cover - a reused pid of another user
                os._exit(1)
            time.sleep(poll_s)

    threading.Thread(target=watch, name="celltrack-die-with-driver", daemon=True).start()


class ProcessExecutor:
    """Run tasks in a pool of local worker processes.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes (default: the number of CPUs).
    start_method : str, optional
        ``"fork"``, ``"spawn"`` or ``"forkserver"`` (default: the platform's).
    max_in_flight : int, optional
        Submitted-but-unfinished tasks at most (default ``2 * n_workers``).
    """

    name = "processes"

    def __init__(
        self,
        n_workers: int | None = None,
        *,
        start_method: str | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        self.n_workers = int(n_workers or os.cpu_count() or 1)
        if self.n_workers < 1:
            raise InvalidInputError(f"n_workers must be >= 1, got {n_workers}")
        context = multiprocessing.get_context(start_method) if start_method else None
        self._pool = cf.ProcessPoolExecutor(
            max_workers=self.n_workers,
            mp_context=context,
            initializer=_die_with_driver,
            initargs=(os.getpid(),),
        )
        self.max_in_flight = int(max_in_flight or 2 * self.n_workers)

    def imap_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Yield ``fn(task)`` results in completion order (bounded submission)."""
        pending: set[cf.Future] = set()
        iterator = iter(tasks)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self.max_in_flight:
                    try:
                        task = next(iterator)
                    except StopIteration:
                        exhausted = True
                        break
                    pending.add(self._pool.submit(fn, task))
                if not pending:
                    return
                done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        """Shut the worker processes down."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Run tasks on a dask.distributed cluster.

    Parameters
    ----------
    client : distributed.Client or str
        A connected client, or a scheduler address (a client is created and closed by
        :meth:`close`).
    max_in_flight : int, optional
        Submitted-but-unfinished tasks at most (default ``2 *`` the cluster's threads).
    """

    name = "dask"

    def __init__(self, client: Any, *, max_in_flight: int | None = None) -> None:
        try:
            import distributed
        except ImportError as exc:
            raise DependencyError(
                "the dask executor needs dask.distributed, an optional extra: "
                "pip install 'celltrack[dask]' (or use executor='processes' on one machine)"
            ) from exc
        self._owned = isinstance(client, str)
        self.client = distributed.Client(client) if self._owned else client
        threads = sum(self.client.nthreads().values()) or 1
        self.n_workers = threads
        self.max_in_flight = int(max_in_flight or 2 * threads)

    def imap_unordered(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Yield ``fn(task)`` results in completion order (bounded submission)."""
        from distributed import as_completed

        iterator = iter(tasks)
        first = []
        for task in iterator:
            first.append(self.client.submit(fn, task, pure=False))
            if len(first) >= self.max_in_flight:
                break
        if not first:
            return
        queue = as_completed(first)
        for future in queue:
            result = future.result()
            future.release()
            nxt = next(iterator, None)
            if nxt is not None:
                queue.add(self.client.submit(fn, nxt, pure=False))
            yield result

    def close(self) -> None:
        """Close the client if this executor created it."""
        if self._owned:
            self.client.close()


def make_executor(
    spec: Any,
    n_workers: int | None = None,
    *,
    start_method: str | None = None,
) -> SerialExecutor | ProcessExecutor | DaskExecutor:
    """Build an executor from ``"serial"``, ``"processes"``, a dask Client or an address.

    Parameters
    ----------
    spec : str or distributed.Client or executor
        ``"serial"``, ``"processes"``, a scheduler address (``"tcp://…"``, ``"tls://…"``,
        ``"host:port"``), a ``distributed.Client``, or an object with ``imap_unordered``.
    n_workers : int, optional
        Worker processes for ``"processes"``.
    start_method : str, optional
        Multiprocessing start method for ``"processes"``.

    Raises
    ------
    InvalidInputError
        For anything else.
    """
    if hasattr(spec, "imap_unordered"):
        return spec
    if isinstance(spec, str):
        if spec == "serial":
            return SerialExecutor()
        if spec == "processes":
            return ProcessExecutor(n_workers, start_method=start_method)
        if "://" in spec or ":" in spec:
            return DaskExecutor(spec)
        raise InvalidInputError(
            f"unknown executor '{spec}': expected 'serial', 'processes', a dask scheduler "
            "address such as 'tcp://host:8786', or a distributed.Client"
        )
    if type(spec).__name__ == "Client" and hasattr(spec, "submit"):
        return DaskExecutor(spec)
    raise InvalidInputError(
        f"executor must be 'serial', 'processes', a dask scheduler address or a "
        f"distributed.Client, got {type(spec).__name__}"
    )
