"""Progress of long work, for a terminal (tqdm bars) and for anyone listening (a viewer).

Every long loop in celltrack makes its bar with :func:`progress_bar`; training loops also
call :func:`report` after each optimisation step. Both print nothing extra: they
behave as plain tqdm bars (shown when the caller asked for ``progress=True``). Inside a
``with report_progress(callback):`` block, in the same thread or task, each of them also
calls ``callback(ProgressEvent)``, whether or not a bar is shown; the napari plugin uses
this to drive its progress bar and loss read-out from a background worker::

    with report_progress(lambda e: print(e.desc, e.n, e.total, e.info)):
        project.train_detection(frame=0)
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

__all__ = [
    "ProgressEvent",
    "RemainingTime",
    "progress_bar",
    "report",
    "report_progress",
    "set_stage_listener",
]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of progress.

    Attributes
    ----------
    desc : str
        What is running (the bar's label, e.g. ``"incremental"``, ``"detect"``).
    n : int
        Units done so far (epochs, frames, tiles, …).
    total : int or None
        Units in all (None when unknown).
    info : dict of str to float
        Extra read-outs, e.g. ``{"loss": 0.21, "step": 12}``.
    """

    desc: str
    n: int
    total: int | None
    info: dict[str, float] = field(default_factory=dict)


Listener = Callable[[ProgressEvent], None]

_LISTENER: contextvars.ContextVar[Listener | None] = contextvars.ContextVar(
    "celltrack_progress_listener", default=None
)
_STAGE: contextvars.ContextVar[Listener | None] = contextvars.ContextVar(
    "celltrack_stage_listener", default=None
)


@contextlib.contextmanager
def report_progress(callback: Listener) -> Iterator[None]:
    """Call ``callback(ProgressEvent)`` for every progress step inside the block.

    The listener is bound to the current thread (a context variable): work in other
    threads is not reported to it. Exceptions raised by ``callback`` propagate.
    """
    token = _LISTENER.set(callback)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def set_stage_listener(callback: Listener | None) -> None:
    """Put ``callback`` in this thread's one stage slot (None empties it).

    For work whose start and end are not one ``with`` block: a pipeline stage begins in
    one method and ends in another. The slot holds one listener, so a stage that never
    ended is replaced, not stacked, by the next one; listeners of :func:`report_progress`
    keep hearing every event.
    """
    _STAGE.set(callback)


def _active() -> Listener | None:
    """The listeners to tell now: the ``report_progress`` one and the stage slot's."""
    user, stage = _LISTENER.get(), _STAGE.get()
    if user is None or stage is None:
        return user or stage

    def both(event: ProgressEvent) -> None:
        user(event)
        stage(event)

    return both


def _now() -> float:
    return time.perf_counter()


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class RemainingTime:
    """A listener that says, once per bar, how long the rest will take when it is long.

    After ``after_s`` seconds of a bar with a known total, it extrapolates the rate seen
    so far; when at least ``min_left_s`` seconds remain it calls ``say`` with a line such
    as ``"   train_detection: batch 3/40 after 12 s; about 3 min left"``.

    Parameters
    ----------
    say : callable
        Receives the line.
    label : str
        What runs (a pipeline stage name).
    after_s, min_left_s : float
        Seconds to watch before estimating; shortest remaining time worth a line.
    """

    def __init__(
        self,
        say: Callable[[str], None],
        label: str,
        *,
        after_s: float = 5.0,
        min_left_s: float = 20.0,
    ) -> None:
        self.say = say
        self.label = label
        self.after_s = after_s
        self.min_left_s = min_left_s
        self._first: dict[str, tuple[float, int]] = {}
        self._said: set[str] = set()

    def __call__(self, event: ProgressEvent) -> None:
        now = _now()
        first = self._first.setdefault(event.desc, (now, event.n))
        if event.desc in self._said or not event.total:
            return
        elapsed, done = now - first[0], event.n - first[1]
        if done <= 0 or elapsed < self.after_s:
            return
        left = (event.total - event.n) * elapsed / done
        if left >= self.min_left_s:
            self._said.add(event.desc)
            self.say(
                f"   {self.label}: {event.desc} {event.n}/{event.total} after "
                f"{_duration(elapsed)}; about {_duration(left)} left"
            )


def report(desc: str, n: int, total: int | None = None, **info: float) -> None:
    """Tell the listener (if any) that ``n`` of ``total`` units of ``desc`` are done."""
    listener = _active()
    if listener is not None:
        listener(ProgressEvent(desc, int(n), total, {k: float(v) for k, v in info.items()}))


class _Silent:
    """A file that swallows what a listened-to but hidden bar would print."""

    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        return None


class _ReportingBar(tqdm):
    """A tqdm bar that also reports each update and its end to a listener."""

    def __init__(self, *args: Any, listener: Listener, **kwargs: Any) -> None:
        self._listener = listener
        super().__init__(*args, **kwargs)

    def _emit(self) -> None:
        total = None if self.total is None else int(self.total)
        self._listener(ProgressEvent(str(self.desc), int(self.n), total))

    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        self._emit()
        return shown

    def __iter__(self) -> Iterator[Any]:
        # tqdm's own iterator updates ``n`` without calling update(); count here instead
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def close(self) -> None:
        if not getattr(self, "_closed_report", False) and hasattr(self, "_listener"):
            self._closed_report = True
            self._emit()
        super().close()


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    desc: str,
    total: int | None = None,
    disable: bool = False,
    leave: bool = False,
    unit: str = "it",
) -> tqdm:
    """A tqdm bar (hidden when ``disable``) that also reports to :func:`report_progress`.

    Parameters
    ----------
    iterable : iterable, optional
        What to loop over (else call ``update()`` by hand).
    desc : str
        Label.
    total : int, optional
        Number of units (default ``len(iterable)`` when it has one).
    disable : bool
        Hide the bar (the listener still hears every update).
    leave : bool
        Keep the bar on screen when done.
    unit : str
        Unit name shown by tqdm.

    Returns
    -------
    tqdm
    """
    listener = _active()
    if listener is None:
        return tqdm(iterable, desc=desc, total=total, disable=disable, leave=leave, unit=unit)
    extra: dict[str, Any] = {"file": _Silent()} if disable else {}
    return _ReportingBar(
        iterable, desc=desc, total=total, leave=leave, unit=unit, listener=listener, **extra
    )
