"""Training the detection model: prior, incremental (interactive) and batch modes.

:class:`DetectionTrainer` keeps a model, its Adam optimiser, a seeded numpy generator,
the normalised frames and the :class:`~celltrack.nn.TrainingHistory` across calls, which
is what an interactive session needs::

    trainer = DetectionTrainer(model, cfg)
    trainer.prior(images)                                  # self-supervised, no labels
    trainer.incremental(images, annotations, frame=t)      # seconds on a CPU
    trainer.batch(images, annotations, checkpoint="det.pt")  # epochs, resumable
    trainer.save("detector.pt")

:func:`train_detection` is the one-call batch run (prior first for a new model) with a
checkpoint that a killed run resumes from exactly. Everything runs on the shared
machinery of :mod:`celltrack.nn` (crops, augmentation, schedule, epochs, checkpoints);
no global random state is read or changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from celltrack.config.detection import DetectionConfig
from celltrack.detect.api import open_movie
from celltrack.detect.detector import check_detector, check_detector_input, class_scores
from celltrack.detect.evidence import (
    DRAWN_NUCLEUS_TAGS,
    NucleusStatistics,
    nucleus_statistics,
    pool_statistics,
)
from celltrack.detect.labels import (
    PERIPHERY,
    label_summary,
    render_labels,
    spot_arrays,
    training_codes,
)
from celltrack.detect.losses import DetectionLoss, prior_loss
from celltrack.detect.model import ARCH_NAME, DetectionUNet, build_model, model_from_payload
from celltrack.errors import CheckpointError, InvalidInputError
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph
from celltrack.graph.tags import REVIEWED, Tag, tags_of
from celltrack.io import ImageSeries
from celltrack.nn.checkpoint import load_checkpoint
from celltrack.nn.crops import sample_crop, sample_labelled_crop
from celltrack.nn.history import TrainingHistory
from celltrack.nn.normalize import normalize_frame
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

__all__ = [
    "DetectionTrainResult",
    "DetectionTrainer",
    "train_batch",
    "train_detection",
    "train_incremental",
    "train_prior",
]

logger = logging.getLogger(__name__)

_TRAINING_TAGS = REVIEWED
#: config sections whose values shape training (a resume must not mix them)
_TRAINING_SECTIONS = ("labels", "model", "loss", "augment", "train", "normalize")


def _prior_target(x: torch.Tensor) -> torch.Tensor:
    """The prior's target: each crop's intensity shifted to start at 0, scaled into [0, 1].

    The prior asks the centre probability to follow the intensity, so its target must be a
    probability-like [0, 1] map whatever the input normalisation (percentile normalisation
    puts bright voxels above 1). A crop whose range exceeds 1 is min–max scaled; a crop with
    a smaller range (an empty background crop) is only shifted, so its noise is not
    stretched into false "nuclei" (a per-crop min–max cost 0.03 DET on the synthetic demo).
    """
    flat = x.flatten(1)
    lo = flat.min(dim=1).values.view(-1, *([1] * (x.dim() - 1)))
    hi = flat.max(dim=1).values.view(-1, *([1] * (x.dim() - 1)))
    return (x - lo) / (hi - lo).clamp(min=1.0)


def _digest(annotations: TrackGraph, t: int) -> int:
    """A cheap fingerprint of one frame's annotations (positions and tags)."""
    rows = annotations.t == t
    tags = tags_of(annotations, default=Tag.TP)[rows]
    return hash((annotations.positions[rows].round(6).tobytes(), tuple(tags.tolist())))


@dataclass(frozen=True)
class _Frame:
    """One annotated frame ready for cropping."""

    image: np.ndarray  # (1, Z, Y, X) normalised
    labels: np.ndarray  # (Z, Y, X) label codes
    foreground: np.ndarray  # (Z, Y, X) bool: periphery or centre
    centres: np.ndarray  # (K, 3) voxels of the reviewed spots
    summary: dict[str, int]  # label_summary of the rendered labels


@dataclass
class DetectionTrainResult(TrainResult):
    """Outcome of :func:`train_detection`.

    Attributes
    ----------
    model : Detector
        The trained model (eval mode, on CPU).
    history : TrainingHistory
        One record per optimisation step (prior and batch), including the part before a
        resume.
    checkpoint : Path or None
        The checkpoint; at the end it holds the finished model (:func:`load_model`).
    frames : list of int
        Annotated frames trained on.
    label_summary : dict of str to int
        Voxels trained as centre, periphery, background (manual and automatic) and left
        unlabelled over those frames (:func:`celltrack.detect.labels.label_summary`).
    """

    frames: list[int] | None = None
    label_summary: dict[str, int] | None = None


class DetectionTrainer:
    """Stateful trainer of a detector (model, optimiser, generator, history).

    Parameters
    ----------
    model : Detector
        The model to train (modified in place): a :class:`DetectionUNet` or any
        :class:`~celltrack.detect.detector.Detector`. Only a DetectionUNet can be saved.
    cfg : DetectionConfig, optional
        Loss, augmentation, optimisation and label settings.
    voxel_size : sequence of 3 float, optional
        Voxel size (z, y, x) µm of the data; default the model's ``voxel_size``.

    Attributes
    ----------
    history : TrainingHistory
        One :class:`~celltrack.nn.TrainRecord` per step (``history["loss"]`` is the list
        of losses).
    state : TrainingState
        Optimiser, generator, history and position (what a checkpoint stores).
    """

    def __init__(
        self,
        model: Any,
        cfg: DetectionConfig | None = None,
        *,
        voxel_size: Sequence[float] | None = None,
    ) -> None:
        self.model = check_detector(model)
        self.cfg = cfg or DetectionConfig()
        if voxel_size is None:
            voxel_size = getattr(model, "voxel_size", None)
            if voxel_size is None:
                raise InvalidInputError(
                    f"{type(model).__name__} has no voxel_size attribute: pass "
                    "voxel_size=(z, y, x) in µm"
                )
        self.voxel_size = check_voxel_size(voxel_size)
        tc = self.cfg.train
        self.device = torch.device(tc.device)
        self.model.to(self.device)
        self.loss_fn = DetectionLoss(self.cfg.loss, self.voxel_size)
        self.state = TrainingState(
            torch.optim.Adam(self.model.parameters(), lr=tc.learning_rate),
            np.random.default_rng(tc.seed),
        )
        self._frames: dict[tuple[int, int], tuple[Any, np.ndarray]] = {}
        self._stats: dict[tuple[Any, ...], NucleusStatistics | None] = {}
        #: voxels per label kind of the last incremental / batch call (label_summary)
        self.label_summary: dict[str, int] = {}

    @property
    def history(self) -> TrainingHistory:
        """All records so far (prior, incremental and batch steps)."""
        return self.state.history

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The Adam optimiser of incremental and batch training."""
        return self.state.optimizer

    @property
    def rng(self) -> np.random.Generator:
        """The generator of crops and augmentations."""
        return self.state.rng

    # ------------------------------------------------------------------ data
    def _movie(self, images: Any) -> ImageSeries:
        movie = open_movie(images, self.voxel_size)
        check_detector_input(self.model, (1, 1, *movie.shape[1:]))
        return movie

    def _frame(self, movie: ImageSeries, owner: Any, t: int) -> np.ndarray:
        """Normalised frame ``t`` as (1, Z, Y, X), cached per input object."""
        key = (id(owner), int(t))
        cached = self._frames.get(key)
        if cached is None or cached[0] is not owner:  # the id may be reused by a new object
            if len(self._frames) > 64:
                self._frames.clear()
            norm = normalize_frame(
                np.asarray(movie[int(t)]),
                self.cfg.normalize,
                median_correction=self.cfg.predict.median_correction,
            )
            cached = self._frames[key] = (owner, norm[None])
        return cached[1]

    def _nucleus_statistics(
        self, movie: ImageSeries, owner: Any, annotations: TrackGraph, t: int
    ) -> NucleusStatistics | None:
        """Annotated-nucleus intensity statistics of frame ``t`` (cached; None without nuclei)."""
        key = (id(owner), int(t), annotations.num_nodes, _digest(annotations, t))
        if key not in self._stats:
            if len(self._stats) > 256:
                self._stats.clear()
            spots = annotations.subgraph(nodes=annotations.t == t)
            self._stats[key] = nucleus_statistics(
                self._frame(movie, owner, t)[0],
                spots,
                self.voxel_size,
                default_radius_um=self.cfg.labels.point_radius_um,
            )
        return self._stats[key]

    def _pooled_statistics(
        self, movie: ImageSeries, owner: Any, annotations: TrackGraph, exclude: int
    ) -> NucleusStatistics | None:
        """Statistics of up to 8 other frames with annotated nuclei (for a frame without)."""
        rows = np.isin(tags_of(annotations, default=Tag.TP), DRAWN_NUCLEUS_TAGS)
        frames = [int(f) for f in np.unique(annotations.t[rows]) if f != exclude]
        frames = [f for f in frames if 0 <= f < movie.shape[0]][:8]
        return pool_statistics(
            [self._nucleus_statistics(movie, owner, annotations, f) for f in frames]
        )

    def _annotated_frame(
        self, movie: ImageSeries, owner: Any, annotations: TrackGraph, t: int
    ) -> _Frame:
        image = self._frame(movie, owner, t)
        spots = annotations.subgraph(nodes=annotations.t == t)
        lc = self.cfg.labels
        pooled = None
        if lc.auto_background == "intensity" and not np.any(
            np.isin(tags_of(spots, default=Tag.TP), DRAWN_NUCLEUS_TAGS)
        ):
            pooled = self._pooled_statistics(movie, owner, annotations, t)
        labels = render_labels(
            spots, image.shape[1:], self.voxel_size, lc, image=image[0], statistics=pooled
        )
        pos, _, tags = spot_arrays(spots, lc.point_radius_um)
        if not np.any(labels > 0):
            raise InvalidInputError(
                f"frame {t} has no labelled voxels: give annotations tagged "
                f"{', '.join(_TRAINING_TAGS)} (got {spots.num_nodes} spots), or set "
                "labels.background_threshold"
            )
        centres = pos[np.isin(tags, list(_TRAINING_TAGS))] / self.voxel_size
        codes = training_codes(labels)
        return _Frame(image, codes, codes >= PERIPHERY, centres, label_summary(labels))

    def _report(self, items: Sequence[_Frame]) -> dict[str, int]:
        """Log and keep what the annotated frames train as (one line per set of frames)."""
        total: dict[str, int] = {}
        for item in items:
            for k, v in item.summary.items():
                total[k] = total.get(k, 0) + v
        self.label_summary = total
        logger.info(
            "training on %d frame(s): %d centre, %d periphery, %d background (%d automatic) "
            "voxels; %d unlabelled",
            len(items),
            total.get("centre", 0),
            total.get("periphery", 0),
            total.get("background", 0),
            total.get("background_automatic", 0),
            total.get("unlabelled", 0),
        )
        return total

    def _batch(self, frames: Sequence[_Frame], rng: np.random.Generator):
        crops = [
            sample_labelled_crop(
                rng,
                f.image,
                self.cfg.train.crop_shape,
                f.centres,
                labels=f.labels,
                foreground=f.foreground,
                augment=self.cfg.augment,
                voxel_size=self.voxel_size,
            )
            for f in frames
        ]
        return np.stack([c.image for c in crops]), np.stack([c.labels for c in crops])

    def _loss(self, batch: tuple[np.ndarray, np.ndarray]):
        x = torch.from_numpy(np.ascontiguousarray(batch[0])).float().to(self.device)
        y = torch.from_numpy(np.ascontiguousarray(batch[1]).astype(np.int64)).to(self.device)
        return self.loss_fn(F.log_softmax(class_scores(self.model, x), dim=1), y)

    def _lr(self, step: int, total: int) -> float:
        tc = self.cfg.train
        return cosine_lr(tc.learning_rate, step, total, tc.final_lr_fraction)

    # ------------------------------------------------------------------ modes
    def prior(self, images: Any, *, progress: bool = False) -> TrainingHistory:
        """Self-supervised initialisation from raw intensity (no annotations).

        One epoch per ``cfg.train.prior_learning_rates`` entry, ``prior_crops`` steps of
        random crops from random frames each, loss
        :func:`~celltrack.detect.losses.prior_loss`. Uses its own Adam optimiser; the
        trainer's optimiser is reset afterwards.

        Parameters
        ----------
        images : array_like, path or ImageSeries
            The movie (:func:`celltrack.io.as_movie`: 3-D arrays are (T, Y, X)).
        progress : bool
            Show a tqdm bar.
        """
        movie = self._movie(images)
        tc = self.cfg.train
        rates = tc.prior_learning_rates

        def batches(epoch: int, rng: np.random.Generator) -> Iterator[torch.Tensor]:
            for _ in range(tc.prior_crops):
                crops = []
                for _ in range(tc.batch_size):
                    t = int(rng.integers(movie.shape[0]))
                    crop = sample_crop(
                        rng,
                        self._frame(movie, images, t),
                        tc.crop_shape,
                        augment=self.cfg.augment,
                        voxel_size=self.voxel_size,
                    )
                    crops.append(crop.image)
                yield torch.from_numpy(np.stack(crops)).float().to(self.device)

        def loss_of(x: torch.Tensor):
            log_prob = F.log_softmax(class_scores(self.model, x), dim=1)
            return prior_loss(log_prob, _prior_target(x)), {}

        prior_state = TrainingState(
            torch.optim.Adam(self.model.parameters(), lr=rates[0]), self.rng, self.history
        )
        fit_epochs(
            self.model,
            prior_state,
            mode="prior",
            epochs=len(rates),
            batches=batches,
            loss_of=loss_of,
            lr_of=lambda epoch, _: rates[epoch],
            progress=progress,
            num_threads=self.cfg.train.num_threads,
        )
        self.state.optimizer = torch.optim.Adam(self.model.parameters(), lr=tc.learning_rate)
        self.state.position = dict(prior_state.position)
        return self.history

    def incremental(
        self,
        images: Any,
        annotations: TrackGraph,
        *,
        frame: int | None = None,
        steps: int | None = None,
        progress: bool = False,
    ) -> TrainingHistory:
        """A few optimisation steps on crops around one frame's annotations.

        Parameters
        ----------
        images : array_like, path or ImageSeries
            The movie (:func:`celltrack.io.as_movie`: 4-D (T, Z, Y, X), 3-D (T, Y, X));
            give a single volume as ``volume[None]``.
        annotations : TrackGraph
            Annotations; those of ``frame`` are used.
        frame : int, optional
            Frame index; may be omitted when all annotations are in one frame.
        steps : int, optional
            Optimisation steps (default ``cfg.train.incremental_steps``), with the
            learning rate decaying over them (``cfg.train.final_lr_fraction``).
        progress : bool
            Show a tqdm bar.
        """
        if not isinstance(annotations, TrackGraph):
            spot_arrays(annotations, 1.0)  # raises the explanatory error
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
        if annotations.num_nodes == 0 or not np.any(annotations.t == t):
            raise InvalidInputError(
                f"no annotations in frame {t}: annotate at least one nucleus (tag tp/fn) "
                "before training"
            )
        item = self._annotated_frame(movie, images, annotations, t)
        replay = self._replay_frames(movie, images, annotations, t)
        self._report([item, *replay])
        n = steps if steps is not None else self.cfg.train.incremental_steps
        bs = self.cfg.train.batch_size
        share = self.cfg.train.incremental_replay if replay else 0.0
        self.state.position = {}

        def crops(rng: np.random.Generator) -> list[_Frame]:
            """``bs`` frames: the edited one, each slot replaced by another with p = share."""
            return [
                replay[int(rng.integers(len(replay)))] if share and rng.random() < share else item
                for _ in range(bs)
            ]

        fit_epochs(
            self.model,
            self.state,
            mode="incremental",
            epochs=1,
            batches=lambda _, rng: (self._batch(crops(rng), rng) for _ in range(n)),
            loss_of=self._loss,
            lr_of=lambda _, i: self._lr(i, n),
            progress=progress,
            num_threads=self.cfg.train.num_threads,
        )
        return self.history

    def _replay_frames(
        self, movie: ImageSeries, owner: Any, annotations: TrackGraph, edited: int
    ) -> list[_Frame]:
        """The other frames with reviewed nuclei, rendered for replay (empty when off)."""
        if self.cfg.train.incremental_replay == 0:
            return []
        rows = np.isin(tags_of(annotations, default=Tag.TP), DRAWN_NUCLEUS_TAGS)
        frames = [int(f) for f in np.unique(annotations.t[rows])]
        frames = [f for f in frames if f != edited and 0 <= f < movie.shape[0]]
        return [self._annotated_frame(movie, owner, annotations, f) for f in frames]

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
            Default ``cfg.train.epochs``. The learning rate decays over all of them.
        checkpoint : str or Path, optional
            After every epoch the model and the training state (optimiser, generator,
            history, position) are written there atomically.
        resume : bool
            If ``checkpoint`` exists, continue the run it holds (model, optimiser,
            generator, history and epoch); the result equals an uninterrupted run.
        progress : bool
            Show a tqdm bar over epochs.
        """
        movie = self._movie(images)
        if not isinstance(annotations, TrackGraph):
            spot_arrays(annotations, 1.0)
        tags = tags_of(annotations, default=Tag.TP)
        frames = np.unique(annotations.t[np.isin(tags, list(_TRAINING_TAGS))])
        if frames.size == 0:
            raise InvalidInputError(
                "no training annotations (tags tp, fn, tb, fb, tn, fp) in any frame"
            )
        if frames.min() < 0 or frames.max() >= movie.shape[0]:
            raise InvalidInputError(
                f"annotations in frames {frames.min()}..{frames.max()} but the movie has "
                f"{movie.shape[0]} frames"
            )
        ckpt = None if checkpoint is None else Path(checkpoint)
        if ckpt is not None:
            self._check_savable()
        if resume and ckpt is not None and ckpt.is_file():
            self.restore(ckpt)
            logger.info("resuming detection training from %s (%s)", ckpt, self.state.position)
        else:
            self.state.position = {}
        items = [self._annotated_frame(movie, images, annotations, int(t)) for t in frames]
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
    def _check_savable(self) -> DetectionUNet:
        if not isinstance(self.model, DetectionUNet):
            raise CheckpointError(
                f"checkpoints hold DetectionUNet models; a {type(self.model).__name__} has no "
                "architecture record to rebuild it from: save its state_dict yourself"
            )
        return self.model

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Save the model and the training state atomically (loadable by ``load_model``).

        ``meta`` holds extra plain values; the config and the history are always stored.
        """
        model = self._check_savable()
        info = {"config": self.cfg.model_dump(mode="json"), **(meta or {})}
        return save_training_checkpoint(path, model, model.arch, self.state, info)

    def restore(self, path: str | Path) -> dict[str, Any]:
        """Load weights, optimiser, generator, history and position from a checkpoint.

        Returns
        -------
        dict
            The position (``{"phase": ..., "epoch": ...}``) the checkpoint was written at.

        Raises
        ------
        CheckpointError
            If the file is missing or unsafe, holds another architecture or a run of
            another training config, or has no training state.
        """
        model = self._check_savable()
        source = f"checkpoint '{path}'"
        payload = load_checkpoint(path, expected_name=ARCH_NAME)
        check_same_run(
            payload.get("meta", {}).get("config"),
            self.cfg.model_dump(mode="json"),
            sections=_TRAINING_SECTIONS,
            source=source,
        )
        loaded = model_from_payload(payload, source)
        if loaded.arch != model.arch:
            raise CheckpointError(
                f"{source} holds a different DetectionUNet ({loaded.arch}) than the model "
                f"being trained ({model.arch}); delete it or pass resume=False"
            )
        restore_training_state(payload, self.state, source)
        model.load_state_dict(loaded.state_dict())
        model.to(self.device)
        return dict(self.state.position)


def train_detection(
    images: Any,
    annotations: TrackGraph,
    voxel_size: Sequence[float],
    cfg: DetectionConfig | None = None,
    *,
    model: Any = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    prior: bool = True,
    progress: bool = False,
) -> DetectionTrainResult:
    """Batch-train a detection model from reviewed annotations (prior first for a new one).

    Parameters
    ----------
    images : array_like, path or ImageSeries
        The movie (:func:`celltrack.io.as_movie`: 4-D (T, Z, Y, X), 3-D (T, Y, X)).
    annotations : TrackGraph
        Reviewed spots (tags tp, fn, fp, tn, tb, fb; ``unlabeled`` is ignored).
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) µm.
    cfg : DetectionConfig, optional
        All settings (see :meth:`DetectionConfig.cpu`).
    model : Detector, optional
        Model to fine-tune; a new :class:`DetectionUNet` (seeded by ``cfg.train.seed``,
        2D when Z = 1) when omitted.
    checkpoint : str or Path, optional
        Model and training state, written atomically after the prior and after every
        epoch; at the end it holds the finished model (:func:`load_model` reads it).
    resume : bool
        If ``checkpoint`` exists, continue from it; the result equals an uninterrupted
        run. A checkpoint of another training config is refused.
    prior : bool
        Run the self-supervised prior before the epochs when the model is new.
    progress : bool
        Show tqdm bars.

    Returns
    -------
    DetectionTrainResult

    Raises
    ------
    InvalidInputError
        If there is no reviewed annotation in the movie's frames.
    CheckpointError
        If a checkpoint is asked for a model that is not a DetectionUNet, or the one to
        resume from does not fit.
    """
    cfg = cfg or DetectionConfig()
    vs = check_voxel_size(voxel_size)
    movie = open_movie(images, vs)
    new = model is None
    if new:
        model = build_model(cfg.model, vs, two_d=movie.shape[1] == 1, seed=cfg.train.seed)
    trainer = DetectionTrainer(model, cfg, voxel_size=vs)
    ckpt = None if checkpoint is None else Path(checkpoint)
    if ckpt is not None:
        trainer._check_savable()
    resuming = resume and ckpt is not None and ckpt.is_file()
    if prior and new and not resuming:
        trainer.prior(movie, progress=progress)
        if ckpt is not None:
            trainer.save(ckpt)
    trainer.batch(movie, annotations, checkpoint=ckpt, resume=resuming, progress=progress)
    if ckpt is not None:
        trainer.save(ckpt)
    trainer.model.to("cpu").eval()
    tags = tags_of(annotations, default=Tag.TP)
    frames = np.unique(annotations.t[np.isin(tags, list(_TRAINING_TAGS))]).tolist()
    return DetectionTrainResult(
        model=trainer.model,
        history=trainer.history,
        checkpoint=ckpt,
        frames=frames,
        label_summary=dict(trainer.label_summary),
    )


def train_prior(
    model: Any, images: Any, cfg: DetectionConfig | None = None, *, progress: bool = False
) -> TrainingHistory:
    """Self-supervised initialisation of ``model`` from a movie; returns the history."""
    return DetectionTrainer(model, cfg).prior(images, progress=progress)


def train_incremental(
    model: Any,
    images: Any,
    annotations: TrackGraph,
    cfg: DetectionConfig | None = None,
    *,
    frame: int | None = None,
    steps: int | None = None,
    progress: bool = False,
) -> TrainingHistory:
    """A few steps on one frame's annotations (see :meth:`DetectionTrainer.incremental`)."""
    return DetectionTrainer(model, cfg).incremental(
        images, annotations, frame=frame, steps=steps, progress=progress
    )


def train_batch(
    model: Any,
    images: Any,
    annotations: TrackGraph,
    cfg: DetectionConfig | None = None,
    *,
    epochs: int | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = False,
) -> TrainingHistory:
    """Epochs over all annotated frames (see :meth:`DetectionTrainer.batch`)."""
    return DetectionTrainer(model, cfg).batch(
        images, annotations, epochs=epochs, checkpoint=checkpoint, progress=progress
    )
