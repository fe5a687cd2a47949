"""Long Project calls (training, prediction, linking) in a background thread.

The viewer stays responsive while a :class:`JobRunner` job runs: the work happens in
napari's worker thread pool, its progress (:mod:`celltrack.progress` events: the stage,
units done, the loss) comes back as Qt signals, and the result is handed to the caller's
callback in the GUI thread, where layers may be touched. One job runs at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, Signal

from celltrack.progress import ProgressEvent, report_progress

__all__ = ["JobRunner"]

logger = logging.getLogger(__name__)


class JobRunner(QObject):
    """Runs one Project call at a time off the GUI thread.

    Signals
    -------
    progress(ProgressEvent)
        Each progress step of the running job (delivered in the GUI thread).
    started(str)
        A job of that name started.
    finished(str, float)
        A job ended without error, after that many seconds.
    failed(str, str)
        A job raised; its name and the error message.
    """

    progress = Signal(object)
    started = Signal(str)
    finished = Signal(str, float)
    failed = Signal(str, str)

    def __init__(self) -> None:
        super().__init__()
        self.running: str | None = None
        self.last_error: str | None = None
        self._worker: Any = None

    def start(
        self,
        name: str,
        work: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
    ) -> bool:
        """Run ``work()`` in the background; ``on_done(result)`` then runs in the GUI thread.

        Returns False (and runs nothing) while another job runs.
        """
        from napari.qt.threading import create_worker

        if self.running is not None:
            logger.warning("%s is still running: %s waits until it ends", self.running, name)
            return False
        start = time.perf_counter()

        def run() -> Any:
            with report_progress(self._relay):
                return work()

        def done(result: Any) -> None:
            self.running = None
            self.last_error = None
            try:
                if on_done is not None:
                    on_done(result)
            finally:
                self.finished.emit(name, time.perf_counter() - start)

        def failed(error: BaseException) -> None:
            self.running = None
            self.last_error = f"{type(error).__name__}: {error}"
            logger.warning("%s failed: %s", name, self.last_error)
            self.failed.emit(name, str(error))

        self.running = name
        worker = create_worker(run, _start_thread=False)
        worker.returned.connect(done)
        worker.errored.connect(failed)
        self._worker = worker
        self.started.emit(name)
        worker.start()
        return True

    def _relay(self, event: ProgressEvent) -> None:
        """Forward a progress event from the worker thread (a queued Qt signal)."""
        self.progress.emit(event)
