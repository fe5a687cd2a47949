"""Training the detection U-Net: prior, incremental (interactive) and batch modes.

:class:`DetectionTrainer` keeps a model, its Adam optimiser, a seeded random generator,
the normalised frames and the loss history across calls, which is what an interactive
notebook session needs::

    trainer = DetectionTrainer(model, cfg)
    trainer.prior(images)                            # self-supervised start, no labels
    trainer.incremental(images[t], annotations, frame=t)   # seconds on a CPU
    trainer.batch(images, annotations)               # epochs over all annotated frames
    trainer.save("detector.pt")

The functions :func:`train_prior`, :func:`train_incremental` and :func:`train_batch`
wrap one trainer call each. Crops are drawn around annotated spots (the origin is
uniform among the crop positions that contain the spot); augmentation is
:mod:`celltrack.detect.augment`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from celltrack.detect.augment import apply, random_transform
from celltrack.detect.config import DetectionConfig
from celltrack.detect.labels import PERIPHERY, render_labels, spot_arrays
from celltrack.detect.losses import DetectionLoss, prior_loss
from celltrack.detect.model import DetectionUNet, save_model
from celltrack.detect.predict import normalize_frame
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph
from celltrack.graph.tags import REVIEWED, Tag, tags_of

__all__ = ["DetectionTrainer", "train_batch", "train_incremental", "train_prior"]

logger = logging.getLogger(__name__)

_TRAINING_TAGS = REVIEWED


def _as_movie(images: Any) -> np.ndarray:
    arr = np.asarray(images) if not hasattr(images, "shape") else images
    if arr.ndim == 3:
        arr = np.asarray(arr)[None]
    if arr.ndim != 4 or min(arr.shape) < 1:
        raise ShapeError(
            f"images must be a (T, Z, Y, X) movie (2D data: Z = 1), got shape {arr.shape}"
        )
    return arr


class DetectionTrainer:
    """Stateful trainer of a :class:`DetectionUNet` (model, optimiser, rng, history).

    Parameters
    ----------
    model : DetectionUNet
        The model to train (modified in place).
    cfg : DetectionConfig, optional
        Loss, augmentation, optimisation and label settings.
    voxel_size : sequence of 3 float, optional
        Voxel size (z, y, x) µm of the data; default the model's.

    Attributes
    ----------
    history : dict of str to list
        Per step: ``mode``, ``loss``, ``nll``, ``dice``, ``smooth``, ``lr``, ``seconds``.
    """

    def __init__(
        self,
        model: DetectionUNet,
        cfg: DetectionConfig | None = None,
        *,
        voxel_size: Sequence[float] | None = None,
    ) -> None:
        if not isinstance(model, DetectionUNet):
            raise InvalidInputError(
                f"model must be a DetectionUNet (build_model / load_model), got "
                f"{type(model).__name__}"
            )
        self.model = model
        self.cfg = cfg or DetectionConfig()
        self.voxel_size = check_voxel_size(
            voxel_size if voxel_size is not None else model.voxel_size
        )
        tc = self.cfg.train
        if tc.num_threads is not None:
            torch.set_num_threads(tc.num_threads)
        torch.manual_seed(tc.seed)
        self.rng = np.random.default_rng(tc.seed)
        self.device = torch.device(tc.device)
        self.model.to(self.device)
        self.loss_fn = DetectionLoss(self.cfg.loss, self.voxel_size)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=tc.learning_rate)
        self.history: dict[str, list] = {
            k: [] for k in ("mode", "loss", "nll", "dice", "smooth", "lr", "seconds")
        }
        self._frames: dict[tuple[int, int], tuple[Any, np.ndarray]] = {}

    # ------------------------------------------------------------------ data
    def _frame(self, images: np.ndarray, t: int) -> np.ndarray:
        key = (id(images), int(t))
        cached = self._frames.get(key)
        if cached is None or cached[0] is not images:  # the id may be reused by a new array
            if len(self._frames) > 64:
                self._frames.clear()
            norm = normalize_frame(
                np.asarray(images[t]), median_correction=self.cfg.predict.median_correction
            )
            cached = self._frames[key] = (images, norm)
        return cached[1]

    def _crop(
        self,
        frame: np.ndarray,
        labels: np.ndarray | None,
        centre_vox: np.ndarray | None,
        augment: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """One (augmented) crop of ``crop_shape`` (clipped) containing ``centre_vox``."""
        shape = np.asarray(frame.shape)
        crop = np.minimum(np.asarray(self.cfg.train.crop_shape), shape)
        two_d = shape[0] == 1
        if centre_vox is None:
            origin = np.array([self.rng.integers(0, s - c + 1) for s, c in zip(shape, crop)])
        else:
            p = np.clip(np.round(centre_vox).astype(int), 0, shape - 1)
            lo = np.maximum(p - crop + 1, 0)
            hi = np.minimum(p, shape - crop)
            origin = np.array([self.rng.integers(a, b + 1) for a, b in zip(lo, hi)])
        transform = (
            random_transform(self.rng, self.cfg.augment, voxel_size=self.voxel_size, two_d=two_d)
            if augment
            else None
        )
        if transform is None or transform.is_affine_identity:
            sl = tuple(slice(o, o + c) for o, c in zip(origin, crop))
            img = frame[sl][None]
            lab = None if labels is None else labels[sl]
        else:
            # raw region large enough that zoom + rotation of the crop stays inside it
            grow = np.ones(3)
            spin = abs(np.cos(transform.angle)) + abs(np.sin(transform.angle))
            grow[1:] = spin / min(transform.zoom[1], transform.zoom[2])
            grow[0] = 1.0 / transform.zoom[0]
            raw = np.ceil(crop * grow).astype(int) + 2
            if two_d:
                raw[0] = 1
            centre = origin + (crop - 1) / 2.0
            start = np.round(centre - (raw - 1) / 2.0).astype(int)
            pad_lo = np.maximum(-start, 0)
            pad_hi = np.maximum(start + raw - shape, 0)
            sl = tuple(
                slice(max(s, 0), min(s + r, n)) for s, r, n in zip(start, raw, shape)
            )
            widths = list(zip(pad_lo, pad_hi))
            img = np.pad(frame[sl], widths, mode="edge")[None]
            lab = None if labels is None else np.pad(labels[sl], widths, mode="constant")
        fg = None if lab is None else lab >= PERIPHERY
        if transform is None:
            return img, lab
        img, lab, _ = apply(
            transform, img, lab, voxel_size=self.voxel_size, out_shape=crop, foreground=fg
        )
        return img, lab

    # ------------------------------------------------------------------ steps
    def _record(self, mode: str, loss: float, parts: dict[str, float], lr: float, t0: float):
        h = self.history
        h["mode"].append(mode)
        h["loss"].append(float(loss))
        h["nll"].append(parts.get("nll", float("nan")))
        h["dice"].append(parts.get("dice", float("nan")))
        h["smooth"].append(parts.get("smooth", float("nan")))
        h["lr"].append(float(lr))
        h["seconds"].append(time.perf_counter() - t0)

    def _set_lr(self, step: int, total: int) -> None:
        """Cosine decay from ``learning_rate`` to ``final_lr_fraction`` of it over ``total``."""
        tc = self.cfg.train
        frac = tc.final_lr_fraction
        progress = step / max(total - 1, 1)
        scale = frac + (1 - frac) * 0.5 * (1 + np.cos(np.pi * progress))
        for group in self.optimizer.param_groups:
            group["lr"] = tc.learning_rate * float(scale)

    def _step(self, images: np.ndarray, labels: np.ndarray, optimizer, mode: str) -> float:
        t0 = time.perf_counter()
        self.model.train()
        x = torch.from_numpy(np.ascontiguousarray(images)).float().to(self.device)
        y = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64)).to(self.device)
        optimizer.zero_grad(set_to_none=True)
        loss, parts = self.loss_fn(self.model(x), y)
        value = float(loss.detach())
        if loss.requires_grad and value > 0:
            loss.backward()
            optimizer.step()
        self._record(mode, value, parts, optimizer.param_groups[0]["lr"], t0)
        return value

    def _annotated_frame(
        self, images: np.ndarray, annotations: TrackGraph, t: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frame = self._frame(images, t)
        spots = annotations.subgraph(nodes=annotations.t == t)
        labels = render_labels(
            spots, frame.shape, self.voxel_size, self.cfg.labels, image=frame
        )
        pos, _, tags = spot_arrays(spots, self.cfg.labels.point_radius_um)
        centres = pos[np.isin(tags, _TRAINING_TAGS)] / self.voxel_size
        if not np.any(labels > 0):
            raise InvalidInputError(
                f"frame {t} has no labelled voxels: give annotations tagged "
                f"{', '.join(_TRAINING_TAGS)} (got {spots.num_nodes} spots), or set "
                "labels.background_threshold"
            )
        return frame, labels, centres

    def _draw_batch(self, items: list[tuple[np.ndarray, np.ndarray, np.ndarray]]):
        imgs, labs = [], []
        for frame, labels, centres in items:
            for _ in range(5):  # retry crops that lost every label to the transform
                c = centres[self.rng.integers(len(centres))] if len(centres) else None
                img, lab = self._crop(frame, labels, c)
                if np.any(lab > 0):
                    break
            imgs.append(img)
            labs.append(lab)
        return np.stack(imgs), np.stack(labs)

    # ------------------------------------------------------------------ modes
    def prior(self, images: Any, *, progress: bool = False) -> dict[str, list]:
        """Self-supervised initialisation from raw intensity (no annotations).

        One epoch per ``cfg.train.prior_learning_rates`` entry, ``prior_crops`` random
        crops each from random frames, loss :func:`~celltrack.detect.losses.prior_loss`.
        Uses its own Adam optimiser; the trainer's optimiser is reset afterwards.
        """
        movie = _as_movie(images)
        self.model.check_input((1, 1, *movie.shape[1:]))
        tc = self.cfg.train
        opt = torch.optim.Adam(self.model.parameters(), lr=tc.prior_learning_rates[0])
        total = len(tc.prior_learning_rates) * tc.prior_crops
        bar = tqdm(total=total, desc="prior", disable=not progress, leave=False)
        for lr in tc.prior_learning_rates:
            for group in opt.param_groups:
                group["lr"] = lr
            for _ in range(tc.prior_crops):
                t0 = time.perf_counter()
                batch = []
                for _ in range(tc.batch_size):
                    t = int(self.rng.integers(movie.shape[0]))
                    img, _ = self._crop(self._frame(movie, t), None, None)
                    batch.append(img)
                x = torch.from_numpy(np.stack(batch)).float().to(self.device)
                self.model.train()
                opt.zero_grad(set_to_none=True)
                loss = prior_loss(self.model(x), x)
                loss.backward()
                opt.step()
                self._record("prior", float(loss.detach()), {}, lr, t0)
                bar.update(1)
        bar.close()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=tc.learning_rate)
        return self.history

    def incremental(
        self,
        image: np.ndarray,
        annotations: TrackGraph,
        *,
        frame: int | None = None,
        steps: int | None = None,
        progress: bool = False,
    ) -> dict[str, list]:
        """A few optimisation steps on crops around one frame's annotations.

        Parameters
        ----------
        image : ndarray, shape (Z, Y, X) or (T, Z, Y, X)
            The annotated frame, or the movie (then ``frame`` picks it).
        annotations : TrackGraph
            Annotations (only those of ``frame`` are used when ``frame`` is given,
            otherwise all must be of one frame).
        frame : int, optional
            Frame index.
        steps : int, optional
            Optimisation steps (default ``cfg.train.incremental_steps``).
        progress : bool
            Show a tqdm bar.
        """
        if not isinstance(annotations, TrackGraph):
            spot_arrays(annotations, 1.0)  # raises the explanatory error
        image = np.asarray(image) if not hasattr(image, "ndim") else image
        if frame is None:
            frames = np.unique(annotations.t)
            if frames.size > 1:
                raise InvalidInputError(
                    f"annotations span frames {frames.tolist()[:5]}: pass frame=t"
                )
            frame = int(frames[0]) if frames.size else 0
        if image.ndim == 4:
            movie, t = image, int(frame)
            if not 0 <= t < movie.shape[0]:
                raise InvalidInputError(
                    f"frame {t} is outside the movie's 0..{movie.shape[0] - 1}"
                )
        else:
            movie = _as_movie(image)
            annotations = annotations.subgraph(nodes=annotations.t == int(frame))
            annotations = TrackGraph(
                {**dict(annotations.nodes), "t": np.zeros(annotations.num_nodes, np.int64)}
            )
            t = 0
        if annotations.num_nodes == 0 or not np.any(annotations.t == t):
            raise InvalidInputError(
                f"no annotations in frame {frame}: annotate at least one nucleus (tag tp/fn) "
                "before training"
            )
        self.model.check_input((1, 1, *movie.shape[1:]))
        item = self._annotated_frame(movie, annotations, t)
        n = steps if steps is not None else self.cfg.train.incremental_steps
        for i in tqdm(range(n), desc="incremental", disable=not progress, leave=False):
            self._set_lr(i, n)
            imgs, labs = self._draw_batch([item] * self.cfg.train.batch_size)
            self._step(imgs, labs, self.optimizer, "incremental")
        return self.history

    def batch(
        self,
        images: Any,
        annotations: TrackGraph,
        *,
        epochs: int | None = None,
        checkpoint: str | Path | None = None,
        progress: bool = False,
    ) -> dict[str, list]:
        """Epochs over all annotated frames (``crops_per_frame`` crops per frame per epoch).

        Parameters
        ----------
        images : array_like, shape (T, Z, Y, X)
            The movie.
        annotations : TrackGraph
            Annotations of any frames.
        epochs : int, optional
            Default ``cfg.train.epochs``.
        checkpoint : str or Path, optional
            Save the model there (atomically) after every epoch.
        progress : bool
            Show a tqdm bar over steps.
        """
        movie = _as_movie(images)
        if not isinstance(annotations, TrackGraph):
            spot_arrays(annotations, 1.0)
        tags = tags_of(annotations, default=Tag.TP)
        frames = np.unique(annotations.t[np.isin(tags, _TRAINING_TAGS)])
        if frames.size == 0:
            raise InvalidInputError(
                "no training annotations (tags tp, fn, tb, fb, tn, fp) in any frame"
            )
        if frames.min() < 0 or frames.max() >= movie.shape[0]:
            raise InvalidInputError(
                f"annotations in frames {frames.min()}..{frames.max()} but the movie has "
                f"{movie.shape[0]} frames"
            )
        self.model.check_input((1, 1, *movie.shape[1:]))
        items = [self._annotated_frame(movie, annotations, int(t)) for t in frames]
        tc = self.cfg.train
        n_epochs = epochs if epochs is not None else tc.epochs
        per_epoch = len(items) * tc.crops_per_frame
        bar = tqdm(total=n_epochs * per_epoch, desc="batch", disable=not progress, leave=False)
        steps_per_epoch = -(-per_epoch // tc.batch_size)
        for epoch in range(n_epochs):
            order = self.rng.permutation(np.repeat(np.arange(len(items)), tc.crops_per_frame))
            for i in range(0, per_epoch, tc.batch_size):
                step = epoch * steps_per_epoch + i // tc.batch_size
                self._set_lr(step, n_epochs * steps_per_epoch)
                chunk = [items[k] for k in order[i : i + tc.batch_size]]
                self._step(*self._draw_batch(chunk), self.optimizer, "batch")
                bar.update(len(chunk))
            if checkpoint is not None:
                self.save(checkpoint, meta={"epoch": epoch + 1})
        bar.close()
        return self.history

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Save the model (atomically) with the config and the loss history."""
        info = {
            "config": self.cfg.model_dump(mode="json"),
            "history": {k: list(v) for k, v in self.history.items()},
            **(meta or {}),
        }
        return save_model(path, self.model, info)


def train_prior(
    model: DetectionUNet, images: Any, cfg: DetectionConfig | None = None, *, progress: bool = False
) -> dict[str, list]:
    """Self-supervised initialisation of ``model`` from a (T, Z, Y, X) movie; returns history."""
    return DetectionTrainer(model, cfg).prior(images, progress=progress)


def train_incremental(
    model: DetectionUNet,
    image: np.ndarray,
    annotations: TrackGraph,
    cfg: DetectionConfig | None = None,
    *,
    frame: int | None = None,
    steps: int | None = None,
    progress: bool = False,
) -> dict[str, list]:
    """A few steps on one frame's annotations (see :meth:`DetectionTrainer.incremental`)."""
    return DetectionTrainer(model, cfg).incremental(
        image, annotations, frame=frame, steps=steps, progress=progress
    )


def train_batch(
    model: DetectionUNet,
    images: Any,
    annotations: TrackGraph,
    cfg: DetectionConfig | None = None,
    *,
    epochs: int | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = False,
) -> dict[str, list]:
    """Epochs over all annotated frames (see :meth:`DetectionTrainer.batch`)."""
    return DetectionTrainer(model, cfg).batch(
        images, annotations, epochs=epochs, checkpoint=checkpoint, progress=progress
    )
