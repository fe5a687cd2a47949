"""Training the cell indicator from annotated points: masked MSE on crops, batch and incremental.

The loss (:func:`indicator_loss`) is Linajea's masked mean squared error: the squared
difference between the predicted and the target indicator, weighted per voxel by the
training weight of :func:`~celltrack.detect.indicator_targets.indicator_training_target`
(0 = untrained) and divided by the summed weight of the batch.

Crops (:mod:`celltrack.nn.crops`, augmented by :mod:`celltrack.nn.augment`) are drawn
around a random reviewed annotation of a frame (confirmed nuclei and rejected marks
alike); :data:`BACKGROUND_CROP_SHARE` of them are centred on a random voxel trained as
background (automatic background or a rejected mark) instead, so the network also sees
empty regions. Target and weight travel through the crop's geometry as one
nearest-neighbour label volume (code ``k + target / 2``, where ``k`` indexes the frame's
distinct weights), so zoom, rotation and flips move them exactly with the image.

:class:`IndicatorTrainer` keeps model, optimiser, generator and history across calls
(``batch`` epochs over all annotated frames, resumable; ``incremental`` steps on one
frame with replay of the others, like :class:`~celltrack.detect.DetectionTrainer`);
:func:`train_indicator` is the one-call, resumable batch run. The loop, schedule and
checkpoints are the shared machinery of :mod:`celltrack.nn`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from celltrack.config.indicator import IndicatorConfig
from celltrack.detect.api import open_movie
from celltrack.detect.evidence import (
    DRAWN_NUCLEUS_TAGS,
    NucleusStatistics,
    nucleus_statistics,
    pool_statistics,
)
from celltrack.detect.indicator_model import build_indicator_model, check_indicator_model
from celltrack.detect.indicator_targets import indicator_training_target
from celltrack.errors import CheckpointError, InvalidInputError
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph
from celltrack.graph.tags import REVIEWED, Tag, tags_of
from celltrack.io import ImageSeries
from celltrack.nn.checkpoint import load_checkpoint
from celltrack.nn.crops import sample_crop, sample_labelled_crop
from celltrack.nn.history import TrainingHistory
from celltrack.nn.linajea_unet import ARCH_NAME, LinajeaUNet, load_linajea_model
from celltrack.nn.schedule import cosine_lr
from celltrack.nn.training import (
    TrainingState,
    TrainResult,
    check_same_run,
    fit_crop_epochs,
    fit_epochs,
    restore_training_state,
    save_training_checkpoint,
)
from celltrack.nn.windows import frame_window

__all__ = [
    "BACKGROUND_CROP_SHARE",
    "IndicatorTrainResult",
    "IndicatorTrainer",
    "indicator_loss",
    "train_indicator",
]

logger = logging.getLogger(__name__)

#: Share of the training crops centred on a random voxel trained as background (fraction).
BACKGROUND_CROP_SHARE = 0.2
#: config sections whose values shape training (a resume must not mix them)
_TRAINING_SECTIONS = ("window", "normalize", "target", "model", "loss", "augment", "train")


def indicator_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Masked mean squared error ``Σ w (pred − target)² / Σ w``.

    Parameters
    ----------
    pred, target, weight : torch.Tensor, same shape (e.g. (B, 1, Z, Y, X))
        Predicted and target indicator, and the per-voxel weight (≥ 0; 0 = ignored).

    Returns
    -------
    torch.Tensor
        Scalar; exactly 0 (still attached to ``pred``) when every weight is 0.

    Raises
    ------
    InvalidInputError
        If the shapes differ.
    """
    if pred.shape != target.shape or pred.shape != weight.shape:
        raise InvalidInputError(
            f"pred, target and weight must have one shape, got {tuple(pred.shape)}, "
            f"{tuple(target.shape)} and {tuple(weight.shape)}"
        )
    total = weight.sum()
    if float(total) <= 0:
        return (pred * 0.0).sum()
    return (weight * (pred - target) ** 2).sum() / total


def _encode(target: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One float label volume ``k + target / 2`` (``k`` ≥ 1 indexes ``levels``; 0 = untrained)."""
    levels, index = np.unique(weight, return_inverse=True)
    index = index.reshape(weight.shape)
    if levels[0] != 0:  # no untrained voxel: keep level 0 = weight 0 anyway
        levels = np.concatenate([[0.0], levels])
        index = index + 1
    code = np.where(index > 0, index + 0.5 * np.clip(target, 0.0, 1.0), 0.0)
    return code.astype(np.float32), levels.astype(np.float32)


def _decode(code: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = np.floor(code).astype(np.int64)
    target = np.where(k > 0, (code - k) * 2.0, 0.0).astype(np.float32)
    return target, levels[k].astype(np.float32)


def _digest(annotations: TrackGraph, t: int) -> int:
    rows = annotations.t == t
    tags = tags_of(annotations, default=Tag.TP)[rows]
    return hash((annotations.positions[rows].round(6).tobytes(), tuple(tags.tolist())))


@dataclass(frozen=True)
class _Frame:
    """One annotated frame ready for cropping."""

    t: int
    image: np.ndarray  # (C, Z, Y, X) normalised window
    code: np.ndarray  # (Z, Y, X) float32 encoded target and weight
    levels: np.ndarray  # (K,) weight per code level (levels[0] = 0)
    centres: np.ndarray  # (N, 3) voxels of the reviewed annotations
    background: np.ndarray  # (M, 3) voxels trained as background (crop centres)
    summary: dict[str, float]


@dataclass
class IndicatorTrainResult(TrainResult):
    """Outcome of :func:`train_indicator`.

    Attributes
    ----------
    model : LinajeaUNet
        The trained model (eval mode, on CPU).
    history : TrainingHistory
        One record per optimisation step, including the part before a resume.
    checkpoint : Path or None
        The checkpoint; at the end it holds the finished model (:func:`load_linajea_model`).
    frames : list of int
        Annotated frames trained on.
    label_summary : dict of str to float
        Voxels trained (all, near nucleus centres, as background) and untrained, over
        those frames.
    """

    frames: list[int] | None = None
    label_summary: dict[str, float] | None = None


class IndicatorTrainer:
    """Stateful trainer of an indicator model (model, optimiser, generator, history).

    Parameters
    ----------
    model : LinajeaUNet
        A model with an ``indicator`` head (modified in place).
    cfg : IndicatorConfig, optional
        Target, loss, augmentation and optimisation settings.
    voxel_size : sequence of 3 float
        (z, y, x) µm of the data (a LinajeaUNet does not store one).

    Attributes
    ----------
    history : TrainingHistory
        One record per step (``history["loss"]``).
    state : TrainingState
        Optimiser, generator, history and position (what a checkpoint stores).
    """

    def __init__(
        self,
        model: LinajeaUNet,
        cfg: IndicatorConfig | None = None,
        *,
        voxel_size: Sequence[float],
    ) -> None:
        self.model = check_indicator_model(model)
        self.cfg = cfg or IndicatorConfig()
        if not isinstance(self.cfg, IndicatorConfig):
            raise InvalidInputError(
                f"cfg must be an IndicatorConfig, got {type(self.cfg).__name__}"
            )
        self.voxel_size = check_voxel_size(voxel_size)
        if tuple(self.model.window) != tuple(self.cfg.window):
            logger.info(
                "the model's frame window %s is used instead of the config's %s",
                self.model.window, self.cfg.window,
            )
        tc = self.cfg.train
        self.device = torch.device(tc.device)
        self.model.to(self.device)
        self.state = TrainingState(
            torch.optim.Adam(self.model.parameters(), lr=tc.learning_rate),
            np.random.default_rng(tc.seed),
        )
        self._cache: dict[tuple[Any, ...], tuple[Any, _Frame]] = {}
        self._stats: dict[tuple[Any, ...], tuple[Any, NucleusStatistics | None]] = {}
        #: voxels per kind of the last incremental / batch call
        self.label_summary: dict[str, float] = {}

    @property
    def history(self) -> TrainingHistory:
        """All records so far."""
        return self.state.history

    @property
    def rng(self) -> np.random.Generator:
        """The generator of crops and augmentations."""
        return self.state.rng

    # ------------------------------------------------------------------ data
    def _movie(self, images: Any) -> ImageSeries:
        movie = open_movie(images, self.voxel_size)
        check_indicator_model(self.model, movie.shape[1:])
        return movie

    def _statistics(
        self, movie: ImageSeries, owner: Any, annotations: TrackGraph, t: int
    ) -> NucleusStatistics | None:
        key = (id(owner), int(t), annotations.num_nodes, _digest(annotations, t))
        hit = self._stats.get(key)
        if hit is None or hit[0] is not owner:
            if len(self._stats) > 256:
                self._stats.clear()
            stats = nucleus_statistics(
                np.asarray(movie[int(t)]),
                annotations.subgraph(nodes=annotations.t == t),
                self.voxel_size,
                default_radius_um=self.cfg.target.nucleus_radius_um,
            )
            hit = self._stats[key] = (owner, stats)
        return hit[1]

    def _pooled(
        self, movie: ImageSeries, owner: Any, annotations: TrackGraph, exclude: int
    ) -> NucleusStatistics | None:
        rows = np.isin(tags_of(annotations, default=Tag.TP), DRAWN_NUCLEUS_TAGS)
        frames = [int(f) for f in np.unique(annotations.t[rows]) if f != exclude]
        frames = [f for f in frames if 0 <= f < movie.shape[0]][:8]
        return pool_statistics([self._statistics(movie, owner, annotations, f) for f in frames])

    def _frame(
        self, movie: ImageSeries, owner: Any, annotations: TrackGraph, t: int
    ) -> _Frame:
        key = (id(owner), int(t), annotations.num_nodes, _digest(annotations, t))
        hit = self._cache.get(key)
        if hit is not None and hit[0] is owner:
            return hit[1]
        if len(self._cache) > 64:
            self._cache.clear()
        spots = annotations.subgraph(nodes=annotations.t == t)
        tags = tags_of(spots, default=Tag.TP)
        pooled = None
        if self.cfg.target.auto_background == "intensity" and not np.isin(
            tags, DRAWN_NUCLEUS_TAGS
        ).any():
            pooled = self._pooled(movie, owner, annotations, t)
        raw = np.asarray(movie[int(t)])
        target, weight = indicator_training_target(
            raw, annotations, t, self.voxel_size, self.cfg, statistics=pooled
        )
        if not np.any(weight > 0):
            raise InvalidInputError(
                f"frame {t} has no trained voxel: give annotations tagged "
                f"{', '.join(REVIEWED)} (got {spots.num_nodes} spots)"
            )
        code, levels = _encode(target, weight)
        image = frame_window(
            movie, int(t), self.model.window, self.cfg.normalize,
            median_correction=self.cfg.predict.median_correction,
        )
        reviewed = np.isin(tags, REVIEWED)
        centres = spots.positions[reviewed] / self.voxel_size
        is_bg = (weight > 0) & (target < 0.01)  # automatic background and rejected marks
        background = np.argwhere(is_bg)
        if len(background) > 4096:  # a sample of the background is enough for crop centres
            pick = np.linspace(0, len(background) - 1, 4096).astype(int)
            background = background[pick]
        summary = {
            "nucleus": float(np.sum((weight > 0) & (target > 0.05))),
            "trained": float(np.sum(weight > 0)),
            "background": float(np.sum(is_bg)),
            "untrained": float(np.sum(weight == 0)),
        }
        item = _Frame(int(t), image, code, levels, centres, background.astype(float), summary)
        self._cache[key] = (owner, item)
        return item

    def _report(self, items: Sequence[_Frame]) -> dict[str, float]:
        total: dict[str, float] = {}
        for item in items:
            for k, v in item.summary.items():
                total[k] = total.get(k, 0.0) + v
        self.label_summary = total
        logger.info(
            "indicator training on %d frame(s): %d trained voxels (%d near nucleus centres, "
            "%d background), %d untrained",
            len(items), total.get("trained", 0), total.get("nucleus", 0),
            total.get("background", 0), total.get("untrained", 0),
        )
        return total

    def _crop(self, item: _Frame, rng: np.random.Generator):
        options = {
            "labels": item.code,
            "augment": self.cfg.augment,
            "voxel_size": self.voxel_size,
        }
        shape = self.cfg.train.crop_shape
        if len(item.background) and rng.random() < BACKGROUND_CROP_SHARE:
            centre = item.background[int(rng.integers(len(item.background)))]
            crop = sample_crop(rng, item.image, shape, centre=centre, **options)  # type: ignore[arg-type]
        else:
            crop = sample_labelled_crop(rng, item.image, shape, item.centres, **options)
        assert crop.labels is not None  # labels were given
        target, weight = _decode(crop.labels, item.levels)
        return crop.image, target, weight

    def _batch(self, items: Sequence[_Frame], rng: np.random.Generator):
        crops = [self._crop(item, rng) for item in items]
        return tuple(np.stack([c[i] for c in crops]) for i in range(3))

    def _loss(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray]):
        x, target, weight = (
            torch.from_numpy(np.ascontiguousarray(a)).float().to(self.device) for a in batch
        )
        pred = self.model(x)[:, self.model.channels("indicator")]
        return indicator_loss(pred, target[:, None], weight[:, None]), {}

    def _lr(self, step: int, total: int) -> float:
        tc = self.cfg.train
        return cosine_lr(tc.learning_rate, step, total, tc.final_lr_fraction)

    @staticmethod
    def _check_annotations(annotations: Any) -> TrackGraph:
        if not isinstance(annotations, TrackGraph):
            raise InvalidInputError(
                f"annotations must be a TrackGraph, got {type(annotations).__name__}; build "
                "one with TrackGraph.from_positions(t, positions, tag=...)"
            )
        return annotations

    # ------------------------------------------------------------------ modes
    def incremental(
        self,
        images: Any,
        annotations: TrackGraph,
        *,
        frame: int | None = None,
        steps: int | None = None,
        progress: bool = False,
    ) -> TrainingHistory:
        """A few optimisation steps on crops of one frame, replaying the others.

        Parameters
        ----------
        images : array_like, path or ImageSeries
            The movie (:func:`celltrack.io.as_movie`).
        annotations : TrackGraph
            Annotations; those of ``frame`` are trained, ``cfg.train.incremental_replay``
            of the crops come from the other frames with reviewed nuclei.
        frame : int, optional
            The edited frame; may be omitted when all annotations are in one frame.
        steps : int, optional
            Optimisation steps (default ``cfg.train.incremental_steps``).
        progress : bool
            Show a tqdm bar.

        Raises
        ------
        InvalidInputError
            If there is no annotation in the frame or the frame is outside the movie.
        """
        annotations = self._check_annotations(annotations)
        movie = self._movie(images)
        if frame is None:
            frames = np.unique(annotations.t)
            if frames.size > 1:
                raise InvalidInputError(
                    f"annotations span frames {frames.tolist()[:5]}: pass frame=t"
                )
            frame = int(frames[0]) if frames.size else 0
        t = int(frame)
        if not 0 <= t < movie.shape[0]:
            raise InvalidInputError(f"frame {t} is outside the movie's 0..{movie.shape[0] - 1}")
        if not np.any(annotations.t == t):
            raise InvalidInputError(
                f"no annotations in frame {t}: annotate at least one nucleus (tag tp/fn) "
                "before training"
            )
        item = self._frame(movie, images, annotations, t)
        replay: list[_Frame] = []
        if self.cfg.train.incremental_replay > 0:
            rows = np.isin(tags_of(annotations, default=Tag.TP), DRAWN_NUCLEUS_TAGS)
            others = [int(f) for f in np.unique(annotations.t[rows])]
            replay = [
                self._frame(movie, images, annotations, f)
                for f in others
                if f != t and 0 <= f < movie.shape[0]
            ]
        self._report([item, *replay])
        n = steps if steps is not None else self.cfg.train.incremental_steps
        bs = self.cfg.train.batch_size
        share = self.cfg.train.incremental_replay if replay else 0.0
        self.state.position = {}

        def pick(rng: np.random.Generator) -> list[_Frame]:
            return [
                replay[int(rng.integers(len(replay)))] if share and rng.random() < share else item
                for _ in range(bs)
            ]

        fit_epochs(
            self.model,
            self.state,
            mode="incremental",
            epochs=1,
            batches=lambda _, rng: (self._batch(pick(rng), rng) for _ in range(n)),
            loss_of=self._loss,
            lr_of=lambda _, i: self._lr(i, n),
            progress=progress,
            num_threads=self.cfg.train.num_threads,
        )
        return self.history

    def batch(
        self,
        images: Any,
        annotations: TrackGraph,
        *,
        epochs: int | None = None,
        checkpoint: str | Path | None = None,
        resume: bool = False,
        progress: bool = False,
    ) -> TrainingHistory:
        """Epochs over all annotated frames (``crops_per_frame`` crops per frame per epoch).

        Parameters
        ----------
        images : array_like, path or ImageSeries
            The movie (:func:`celltrack.io.as_movie`).
        annotations : TrackGraph
            Annotations of any frames (reviewed tags train; ``unlabeled`` is ignored).
        epochs : int, optional
            Default ``cfg.train.epochs``; the learning rate decays over all of them.
        checkpoint : str or Path, optional
            After every epoch the model and the training state are written there
            atomically.
        resume : bool
            If ``checkpoint`` exists, continue the run it holds; the result equals an
            uninterrupted run.
        progress : bool
            Show a tqdm bar over epochs.

        Raises
        ------
        InvalidInputError
            If no reviewed annotation lies in the movie's frames.
        CheckpointError
            If the checkpoint to resume from does not fit this run.
        """
        annotations = self._check_annotations(annotations)
        movie = self._movie(images)
        tags = tags_of(annotations, default=Tag.TP)
        frames = np.unique(annotations.t[np.isin(tags, REVIEWED)])
        if frames.size == 0:
            raise InvalidInputError(
                f"no training annotations (tags {', '.join(REVIEWED)}) in any frame"
            )
        if frames.min() < 0 or frames.max() >= movie.shape[0]:
            raise InvalidInputError(
                f"annotations in frames {frames.min()}..{frames.max()} but the movie has "
                f"{movie.shape[0]} frames"
            )
        ckpt = None if checkpoint is None else Path(checkpoint)
        if resume and ckpt is not None and ckpt.is_file():
            self.restore(ckpt)
            logger.info("resuming indicator training from %s (%s)", ckpt, self.state.position)
        else:
            self.state.position = {}
        items = [self._frame(movie, images, annotations, int(t)) for t in frames]
        self._report(items)
        tc = self.cfg.train
        fit_crop_epochs(
            self.model,
            self.state,
            items,
            epochs=epochs if epochs is not None else tc.epochs,
            crops_per_frame=tc.crops_per_frame,
            batch_size=tc.batch_size,
            batch_of=self._batch,
            loss_of=self._loss,
            lr_of=self._lr,
            on_epoch_end=None if ckpt is None else (lambda _: self.save(ckpt)),
            progress=progress,
            num_threads=tc.num_threads,
        )
        return self.history

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Save model and training state atomically (loadable by ``load_linajea_model``)."""
        info = {
            "config": self.cfg.model_dump(mode="json"),
            "voxel_size": [float(v) for v in self.voxel_size],
            **(meta or {}),
        }
        return save_training_checkpoint(path, self.model, self.model.arch(), self.state, info)

    def restore(self, path: str | Path) -> dict[str, Any]:
        """Load weights, optimiser, generator, history and position from a checkpoint.

        Raises
        ------
        CheckpointError
            If the file is missing or unsafe, holds another model or a run of another
            training config, or has no training state.
        """
        source = f"checkpoint '{path}'"
        payload = load_checkpoint(path, expected_name=ARCH_NAME)
        check_same_run(
            payload.get("meta", {}).get("config"),
            self.cfg.model_dump(mode="json"),
            sections=_TRAINING_SECTIONS,
            source=source,
        )
        loaded = load_linajea_model(path, heads=("indicator",))
        if loaded.arch() != self.model.arch():
            raise CheckpointError(
                f"{source} holds a different LinajeaUNet ({loaded.arch()}) than the model "
                f"being trained ({self.model.arch()}); delete it or pass resume=False"
            )
        restore_training_state(payload, self.state, source)
        self.model.load_state_dict(loaded.state_dict())
        self.model.to(self.device)
        return dict(self.state.position)


def train_indicator(
    images: Any,
    annotations: TrackGraph,
    voxel_size: Sequence[float],
    cfg: IndicatorConfig | None = None,
    *,
    model: LinajeaUNet | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> IndicatorTrainResult:
    """Batch-train a cell-indicator model from reviewed point annotations.

    Parameters
    ----------
    images : array_like, path or ImageSeries
        The movie (:func:`celltrack.io.as_movie`: 4-D (T, Z, Y, X), 3-D (T, Y, X)).
    annotations : TrackGraph
        Reviewed spots (tags tp, fn, fp, tn, tb, fb; ``unlabeled`` is ignored; no tag
        column = tp), positions in µm.
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    cfg : IndicatorConfig, optional
        All settings (see :meth:`IndicatorConfig.cpu`).
    model : LinajeaUNet, optional
        Model to fine-tune; a new one (:func:`build_indicator_model`, seeded by
        ``cfg.train.seed``, 2D+t when Z = 1) when omitted.
    checkpoint : str or Path, optional
        Model and training state, written atomically after every epoch; at the end it
        holds the finished model (:func:`celltrack.nn.linajea_unet.load_linajea_model`).
    resume : bool
        If ``checkpoint`` exists, continue from it; the result equals an uninterrupted
        run. A checkpoint of another training config is refused.
    progress : bool
        Show tqdm bars.

    Returns
    -------
    IndicatorTrainResult

    Raises
    ------
    InvalidInputError
        If there is no reviewed annotation in the movie's frames.
    CheckpointError
        If the checkpoint to resume from does not fit.
    """
    cfg = cfg or IndicatorConfig()
    vs = check_voxel_size(voxel_size)
    movie = open_movie(images, vs)
    if model is None:
        model = build_indicator_model(cfg, vs, two_d=movie.shape[1] == 1)
    trainer = IndicatorTrainer(model, cfg, voxel_size=vs)
    ckpt = None if checkpoint is None else Path(checkpoint)
    resuming = resume and ckpt is not None and ckpt.is_file()
    trainer.batch(movie, annotations, checkpoint=ckpt, resume=resuming, progress=progress)
    if ckpt is not None:
        trainer.save(ckpt)
    trainer.model.to("cpu").eval()
    tags = tags_of(annotations, default=Tag.TP)
    frames = np.unique(annotations.t[np.isin(tags, REVIEWED)]).tolist()
    return IndicatorTrainResult(
        model=trainer.model,
        history=trainer.history,
        checkpoint=ckpt,
        frames=frames,
        label_summary=dict(trainer.label_summary),
    )
