"""Typed training history shared by detection and flow: one record per step or epoch.

A :class:`TrainingHistory` is a sequence of :class:`TrainRecord` and round-trips through
plain values (:meth:`TrainingHistory.to_list` / :meth:`TrainingHistory.from_list`), so it
is stored in checkpoints that load with ``weights_only=True``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, overload

from celltrack.errors import InvalidInputError

__all__ = ["TrainRecord", "TrainingHistory"]

_FIELDS = ("mode", "epoch", "step", "loss", "lr", "seconds")


@dataclass(frozen=True)
class TrainRecord:
    """One optimisation step (detection) or one epoch (flow) of training.

    Attributes
    ----------
    mode : str
        What produced it: ``"prior"``, ``"incremental"``, ``"batch"`` (detection) or
        ``"flow"``.
    epoch : int
        1-based epoch within its mode (1 for a single incremental update).
    step : int
        Optimisation steps taken by the trainer up to and including this record.
    loss : float
        Total loss (mean over the epoch's steps for an epoch record).
    parts : dict of str to float
        The loss terms (e.g. ``nll``, ``dice``, ``smooth`` or ``instance``, ``ssim``).
    lr : float
        Learning rate used (1/step).
    seconds : float
        Wall time of the step or epoch (s).
    """

    mode: str
    epoch: int
    step: int
    loss: float
    parts: dict[str, float] = field(default_factory=dict)
    lr: float = float("nan")
    seconds: float = 0.0

    def __getitem__(self, key: str) -> Any:
        """A field (``record["loss"]``) or a loss term (``record["dice"]``)."""
        if key in _FIELDS:
            return getattr(self, key)
        if key in self.parts:
            return self.parts[key]
        raise KeyError(f"no field or loss term {key!r}; have {[*_FIELDS, *self.parts]}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (str, int, float, dict) for checkpoints and JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainRecord:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                mode=str(values["mode"]),
                epoch=int(values["epoch"]),
                step=int(values["step"]),
                loss=float(values["loss"]),
                parts={str(k): float(v) for k, v in dict(values.get("parts", {})).items()},
                lr=float(values.get("lr", float("nan"))),
                seconds=float(values.get("seconds", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"a training record needs mode, epoch, step and loss, got {dict(values)} ({exc})"
            ) from None


class TrainingHistory(Sequence[TrainRecord]):
    """Records in training order.

    ``history[i]`` is a :class:`TrainRecord`, ``history[a:b]`` a TrainingHistory and
    ``history["loss"]`` (same as ``history.column("loss")``) the list of one field or
    loss term over all records.
    """

    def __init__(self, records: Iterable[TrainRecord] = ()) -> None:
        self._records: list[TrainRecord] = list(records)

    def append(self, record: TrainRecord) -> None:
        """Add one record at the end."""
        if not isinstance(record, TrainRecord):
            raise InvalidInputError(f"expected a TrainRecord, got {type(record).__name__}")
        self._records.append(record)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[TrainRecord]:
        return iter(self._records)

    @overload
    def __getitem__(self, key: int) -> TrainRecord: ...
    @overload
    def __getitem__(self, key: slice) -> TrainingHistory: ...
    @overload
    def __getitem__(self, key: str) -> list[Any]: ...
    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            return self.column(key)
        if isinstance(key, slice):
            return TrainingHistory(self._records[key])
        return self._records[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrainingHistory) and self._records == other._records

    def __repr__(self) -> str:
        last = f", last loss {self._records[-1].loss:.4g}" if self._records else ""
        return f"TrainingHistory({len(self)} records{last})"

    def column(self, name: str) -> list[Any]:
        """One field (``mode``, ``epoch``, ``step``, ``loss``, ``lr``, ``seconds``) or loss
        term over all records; NaN for records without that term."""
        if name in _FIELDS:
            return [getattr(r, name) for r in self._records]
        if not any(name in r.parts for r in self._records) and self._records:
            known = sorted({k for r in self._records for k in r.parts})
            raise KeyError(f"no field or loss term {name!r}; have {[*_FIELDS, *known]}")
        return [r.parts.get(name, math.nan) for r in self._records]

    def to_list(self) -> list[dict[str, Any]]:
        """Plain values, one dict per record."""
        return [r.to_dict() for r in self._records]

    @classmethod
    def from_list(cls, values: Iterable[Mapping[str, Any]]) -> TrainingHistory:
        """Inverse of :meth:`to_list`."""
        return cls(TrainRecord.from_dict(v) for v in values)
