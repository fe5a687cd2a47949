"""The training loop machinery shared by detection and flow.

- :class:`TrainingState`: what a run carries between steps besides the model (optimiser,
  numpy random generator, history, position);
- :func:`save_training_checkpoint` / :func:`restore_training_state`: the model, the
  optimiser, the generator state, the history and the position written atomically in one
  checkpoint that loads with ``weights_only=True``, and read back so that a resumed run
  reproduces the uninterrupted one exactly;
- :func:`optimisation_step` and :func:`fit_epochs`: epochs of optimisation steps with a
  learning rate per step, one :class:`~celltrack.nn.history.TrainRecord` per step or per
  epoch, and a checkpoint after every epoch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from celltrack.errors import CheckpointError
from celltrack.nn.checkpoint import save_checkpoint
from celltrack.nn.history import TrainingHistory, TrainRecord
from celltrack.nn.schedule import set_lr
from celltrack.nn.threads import torch_threads
from celltrack.progress import progress_bar, report

__all__ = [
    "TrainResult",
    "TrainingState",
    "check_same_run",
    "fit_crop_epochs",
    "fit_epochs",
    "optimisation_step",
    "restore_training_state",
    "save_training_checkpoint",
]

logger = logging.getLogger(__name__)

LossFn = Callable[[Any], tuple[torch.Tensor, Mapping[str, float]]]


@dataclass
class TrainingState:
    """Everything a run needs besides the model to continue exactly where it stopped.

    Attributes
    ----------
    optimizer : torch.optim.Optimizer
        The optimiser (its moment estimates are part of the state).
    rng : numpy.random.Generator
        Source of crop positions and augmentations.
    history : TrainingHistory
        Records so far.
    position : dict
        Where the run stands, plain values, e.g. ``{"phase": "batch", "epoch": 3}``
        (epochs completed in that phase).
    """

    optimizer: torch.optim.Optimizer
    rng: np.random.Generator
    history: TrainingHistory = field(default_factory=TrainingHistory)
    position: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Optimisation steps recorded so far."""
        return self.history[-1].step if len(self.history) else 0


@dataclass
class TrainResult:
    """Outcome of a training run (see ``train_detection`` and ``train_flow``).

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (eval mode, on CPU).
    history : TrainingHistory
        Records of the whole run (including the part before a resume).
    checkpoint : Path or None
        The checkpoint file; at the end it holds the finished model.
    """

    model: torch.nn.Module
    history: TrainingHistory = field(default_factory=TrainingHistory)
    checkpoint: Path | None = None


def save_training_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    arch: dict[str, Any],
    state: TrainingState,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write model, optimiser, generator state, history and position atomically.

    The file is an ordinary :func:`~celltrack.nn.checkpoint.save_checkpoint` checkpoint
    (so the stage's ``load_model`` reads it) whose ``meta`` also holds ``history`` and
    ``training`` (optimiser state, generator state, position).

    Parameters
    ----------
    path : str or Path
        Destination.
    model : torch.nn.Module
        The model.
    arch : dict
        Its architecture description (see :func:`save_checkpoint`).
    state : TrainingState
        Optimiser, generator, history and position.
    meta : dict, optional
        Extra plain values (config dump, counts, ...).
    """
    training = {
        "optimizer": state.optimizer.state_dict(),
        "rng": state.rng.bit_generator.state,
        "position": dict(state.position),
    }
    info = {**(meta or {}), "history": state.history.to_list(), "training": training}
    return save_checkpoint(path, model, arch, info)


def restore_training_state(
    payload: dict[str, Any], state: TrainingState, source: str = "checkpoint"
) -> None:
    """Load the optimiser, generator, history and position of ``payload`` into ``state``.

    The model's weights are loaded by the caller (the stage knows its architecture).

    Raises
    ------
    CheckpointError
        If the checkpoint holds no training state (a plain model file) or a state that
        does not fit this optimiser or generator.
    """
    meta = payload.get("meta", {})
    training = meta.get("training")
    if not isinstance(training, dict) or not {"optimizer", "rng", "position"} <= set(training):
        raise CheckpointError(
            f"{source} holds a model but no training state (optimiser, random generator, "
            "position), so training cannot resume from it; pass resume=False to start over"
        )
    try:
        state.optimizer.load_state_dict(training["optimizer"])
        bit_generator = state.rng.bit_generator
        if training["rng"].get("bit_generator") != type(bit_generator).__name__:
            raise ValueError(f"generator {training['rng'].get('bit_generator')!r}")
        bit_generator.state = training["rng"]
        history = TrainingHistory.from_list(meta.get("history", []))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{source} holds a training state that does not fit this run ({exc}); delete "
            "it or pass resume=False"
        ) from None
    state.history = history
    state.position = dict(training["position"])


def optimisation_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor
) -> float:
    """Back-propagate ``loss`` and step ``optimizer``; returns the loss value.

    A loss without gradient or of exactly 0 (e.g. a batch without labelled voxels) takes
    no step, so Adam's moments are not disturbed by empty batches.
    """
    value = float(loss.detach())
    optimizer.zero_grad(set_to_none=True)
    if loss.requires_grad and value > 0:
        loss.backward()
        optimizer.step()
    return value


def fit_epochs(
    model: torch.nn.Module,
    state: TrainingState,
    *,
    mode: str,
    epochs: int,
    batches: Callable[[int, np.random.Generator], Iterable[Any]],
    loss_of: LossFn,
    lr_of: Callable[[int, int], float],
    record: Literal["step", "epoch"] = "step",
    on_epoch_end: Callable[[TrainingState], None] | None = None,
    progress: bool = False,
    num_threads: int | None = None,
) -> TrainingHistory:
    """Run epochs ``state.position["epoch"] .. epochs − 1`` of optimisation steps.

    Parameters
    ----------
    model : torch.nn.Module
        The model (put in training mode).
    state : TrainingState
        Optimiser, generator, history and position; updated in place. Epochs already
        completed in this ``mode`` (``position == {"phase": mode, "epoch": k}``) are
        skipped; another phase starts at epoch 0.
    mode : str
        Name of the phase (``"prior"``, ``"batch"``, ``"flow"``, ...).
    epochs : int
        Number of epochs of the phase.
    batches : callable
        ``batches(epoch, rng)`` yields the epoch's batches, drawn with ``rng``.
    loss_of : callable
        ``loss_of(batch) -> (loss, parts)``: forward pass and loss of one batch.
    lr_of : callable
        ``lr_of(epoch, step_in_epoch)``: learning rate of a step.
    record : {'step', 'epoch'}
        One record per step, or one per epoch (means of its steps).
    on_epoch_end : callable, optional
        Called with ``state`` after every epoch (position already advanced), e.g. to
        write a checkpoint.
    progress : bool
        Show a tqdm bar over epochs.
    num_threads : int, optional
        torch CPU threads while training (None = the cores free now,
        :func:`celltrack.nn.threads.choose_threads`); the previous count is restored after.

    Returns
    -------
    TrainingHistory
        ``state.history``.
    """
    with torch_threads(num_threads, what=f"{mode} training"):
        return _fit_epochs(
            model, state, mode=mode, epochs=epochs, batches=batches, loss_of=loss_of,
            lr_of=lr_of, record=record, on_epoch_end=on_epoch_end, progress=progress,
        )


def fit_crop_epochs(
    model: torch.nn.Module,
    state: TrainingState,
    items: Sequence[Any],
    *,
    epochs: int,
    crops_per_frame: int,
    batch_size: int,
    batch_of: Callable[[list[Any], np.random.Generator], Any],
    loss_of: LossFn,
    lr_of: Callable[[int, int], float],
    on_epoch_end: Callable[[TrainingState], None] | None = None,
    progress: bool = False,
    num_threads: int | None = None,
) -> TrainingHistory:
    """Batch training: epochs of ``crops_per_frame`` crops per item, in shuffled batches.

    Each epoch draws a permutation of the items repeated ``crops_per_frame`` times and
    feeds them ``batch_size`` at a time to ``batch_of`` (phase ``"batch"`` of
    :func:`fit_epochs`, resumable by epoch).

    Parameters
    ----------
    items : sequence
        The annotated frames (whatever ``batch_of`` crops from).
    batch_of : callable
        ``batch_of(items_of_the_batch, rng)``: the batch of crops.
    lr_of : callable
        ``lr_of(step, total_steps)``: the learning rate of a step of the whole run.
    model, state, epochs, loss_of, on_epoch_end, progress, num_threads
        As for :func:`fit_epochs`.
    """
    per_epoch = len(items) * crops_per_frame
    steps_per_epoch = -(-per_epoch // batch_size)
    total = epochs * steps_per_epoch

    def batches(epoch: int, rng: np.random.Generator) -> Iterator[Any]:
        order = rng.permutation(np.repeat(np.arange(len(items)), crops_per_frame))
        for i in range(0, per_epoch, batch_size):
            yield batch_of([items[k] for k in order[i : i + batch_size]], rng)

    return fit_epochs(
        model,
        state,
        mode="batch",
        epochs=epochs,
        batches=batches,
        loss_of=loss_of,
        lr_of=lambda epoch, i: lr_of(epoch * steps_per_epoch + i, total),
        on_epoch_end=on_epoch_end,
        progress=progress,
        num_threads=num_threads,
    )


def _fit_epochs(
    model: torch.nn.Module,
    state: TrainingState,
    *,
    mode: str,
    epochs: int,
    batches: Callable[[int, np.random.Generator], Iterable[Any]],
    loss_of: LossFn,
    lr_of: Callable[[int, int], float],
    record: Literal["step", "epoch"],
    on_epoch_end: Callable[[TrainingState], None] | None,
    progress: bool,
) -> TrainingHistory:
    """:func:`fit_epochs` with the threads already set."""
    start = int(state.position.get("epoch", 0)) if state.position.get("phase") == mode else 0
    state.position = {"phase": mode, "epoch": start}
    bar = progress_bar(range(start, epochs), desc=mode, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        epoch_start = time.perf_counter()
        sums: dict[str, float] = {}
        n = 0
        lr0 = float("nan")
        for i, batch in enumerate(batches(epoch, state.rng)):
            t0 = time.perf_counter()
            lr = float(lr_of(epoch, i))
            lr0 = lr if i == 0 else lr0
            set_lr(state.optimizer, lr)
            loss, parts = loss_of(batch)
            value = optimisation_step(model, state.optimizer, loss)
            n += 1
            report(mode, epoch - start, epochs - start, loss=value, step=i + 1)
            if record == "step":
                state.history.append(
                    TrainRecord(
                        mode, epoch + 1, state.steps + 1, value,
                        {k: float(v) for k, v in parts.items()}, lr, time.perf_counter() - t0,
                    )
                )
            else:
                for k, v in {"loss": value, **parts}.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
        if record == "epoch":
            means = {k: v / max(n, 1) for k, v in sums.items()}
            state.history.append(
                TrainRecord(
                    mode, epoch + 1, state.steps + n, means.pop("loss", float("nan")), means,
                    lr0, time.perf_counter() - epoch_start,
                )
            )
        state.position = {"phase": mode, "epoch": epoch + 1}
        logger.debug("%s epoch %d/%d done", mode, epoch + 1, epochs)
        if on_epoch_end is not None:
            on_epoch_end(state)
    bar.close()
    return state.history


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def check_same_run(
    saved: Mapping[str, Any] | None,
    current: Mapping[str, Any],
    *,
    sections: Iterable[str],
    ignore: Iterable[str] = ("train.epochs", "train.device", "train.num_threads"),
    source: str = "checkpoint",
) -> None:
    """Refuse to resume a checkpoint written by a run of another training config.

    Parameters
    ----------
    saved : mapping or None
        The config dump stored in the checkpoint (None: an old checkpoint without one,
        accepted).
    current : mapping
        ``cfg.model_dump(mode="json")`` of this run.
    sections : iterable of str
        Top-level sections that shape training (e.g. ``labels``, ``model``, ``train``).
    ignore : iterable of str
        Dotted keys that may differ (more epochs extend a run; the device does not
        change the result).

    Raises
    ------
    CheckpointError
        Naming the first differing keys.
    """
    if saved is None:
        return
    keep = set(sections)
    skip = set(ignore)
    a = {k: v for k, v in _flatten(saved).items() if k.split(".")[0] in keep and k not in skip}
    b = {k: v for k, v in _flatten(current).items() if k.split(".")[0] in keep and k not in skip}
    differ = sorted(k for k in a.keys() | b.keys() if _plain(a.get(k)) != _plain(b.get(k)))
    if differ:
        shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in differ[:3])
        raise CheckpointError(
            f"{source} was written by a run of another training config ({shown}); resuming "
            "it would mix two runs: delete it, choose another checkpoint path or pass "
            "resume=False"
        )


def _plain(value: Any) -> Any:
    """Lists and tuples compare equal (JSON dumps and checkpoints disagree on them)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
