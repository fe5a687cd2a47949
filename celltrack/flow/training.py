"""Batch training of the flow model from a few tens of annotated links.

Each epoch draws ``crops_per_frame`` crops from every frame that holds an annotated
child. A crop contains a random annotated child (kept in the middle 60 % of the crop, so
the frame pair around it is seen), augmented with :mod:`celltrack.nn.augment` applied
identically to both frames, the label mask and the flow vectors (flips negate, rotations
rotate, zooms scale them), and the flow loss is minimised with Adam. The loop, the
learning-rate schedule, the crops and the checkpoints are the shared machinery of
:mod:`celltrack.nn`: after every epoch the model, the optimiser, the generator state, the
history and the epoch are written atomically, and a run resumed from that checkpoint
reproduces the uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from celltrack.config.flow import FlowConfig, FlowTrainConfig
from celltrack.errors import CheckpointError, InvalidInputError, ShapeError
from celltrack.flow.labels import flow_links, render_flow_labels
from celltrack.flow.losses import FlowLoss
from celltrack.flow.model import ARCH_NAME, FlowUNet, build_flow_model, model_from_payload
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph
from celltrack.io import as_movie
from celltrack.nn.checkpoint import load_checkpoint
from celltrack.nn.crops import sample_labelled_crop
from celltrack.nn.normalize import normalize_frame
from celltrack.nn.schedule import cosine_lr
from celltrack.nn.training import (
    TrainingState,
    TrainResult,
    check_same_run,
    fit_epochs,
    restore_training_state,
    save_training_checkpoint,
)

__all__ = ["FlowTrainResult", "epoch_learning_rate", "flow_crop", "train_flow"]

logger = logging.getLogger(__name__)

#: the annotated child lies this fraction of the crop away from its faces (where possible)
CROP_MARGIN = 0.2
_TRAINING_SECTIONS = ("label", "model", "loss", "train", "normalize")


@dataclass
class FlowTrainResult(TrainResult):
    """Outcome of :func:`train_flow`.

    Attributes
    ----------
    model : FlowUNet
        The trained model (eval mode, on CPU).
    history : TrainingHistory
        One record per epoch (mean ``loss`` and terms ``instance``, ``ssim``, ``smooth``),
        including the epochs before a resume.
    checkpoint : Path or None
        The checkpoint; at the end it holds the finished model (:func:`load_flow_model`).
    n_links : int
        Number of links the labels came from.
    """

    n_links: int = 0


def flow_crop(
    rng: np.random.Generator,
    prev: np.ndarray,
    cur: np.ndarray,
    labels: np.ndarray,
    centres: np.ndarray,
    cfg: FlowConfig,
    voxel_size: np.ndarray,
    max_displacement_um: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one augmented training crop around a random annotated child.

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness (crop position and augmentation).
    prev, cur : ndarray, shape (Z, Y, X), float32
        Normalised frames t−1 and t.
    labels : ndarray, shape (4, Z, Y, X)
        Flow labels of frame t (normalised displacement + mask).
    centres : ndarray, shape (K, 3)
        Child centres of frame t in voxels.
    cfg : FlowConfig
        ``train.crop_shape`` and ``train.augment`` are used.
    voxel_size : ndarray, shape (3,)
        Voxel size (z, y, x) µm.
    max_displacement_um : sequence of 3 float
        Label normalisation (z, y, x) µm.

    Returns
    -------
    image : ndarray, shape (2, z, y, x), float32
        Frames t−1 and t.
    target : ndarray, shape (4, z, y, x), float32
        Augmented labels (vectors renormalised and clipped to [−1, 1]; mask 0/1). The
        mask holds at least one labelled voxel unless none survived 20 attempts.
    """
    scale = np.asarray(max_displacement_um, np.float32)[:, None, None, None]
    crop = sample_labelled_crop(
        rng,
        np.stack([prev, cur]),
        cfg.train.crop_shape,
        centres,
        margin=CROP_MARGIN,
        labels=(labels[3] > 0).astype(np.uint8),
        vectors=labels[:3] * scale,
        augment=cfg.train.augment,
        voxel_size=voxel_size,
        vector_unit="um",
    )
    assert crop.labels is not None and crop.vectors is not None  # both were given
    target = np.concatenate(
        [np.clip(crop.vectors / scale, -1.0, 1.0), crop.labels[None].astype(np.float32)]
    )
    return crop.image, target.astype(np.float32)


def epoch_learning_rate(cfg: FlowTrainConfig, epoch: int) -> float:
    """Learning rate of ``epoch`` (0-based): :func:`celltrack.nn.cosine_lr` over the epochs."""
    return cosine_lr(cfg.learning_rate, epoch, cfg.epochs, cfg.final_lr_fraction)


def _resume(
    path: Path, model: FlowUNet | None, cfg: FlowConfig
) -> tuple[FlowUNet, dict[str, Any]]:
    """Rebuild (or load into ``model``) the checkpoint's model; return it and the payload."""
    source = f"checkpoint '{path}'"
    payload = load_checkpoint(path, expected_name=ARCH_NAME)
    check_same_run(
        payload.get("meta", {}).get("config"),
        cfg.model_dump(mode="json"),
        sections=_TRAINING_SECTIONS,
        source=source,
    )
    loaded = model_from_payload(payload, source)
    if model is not None:
        if model.arch() != loaded.arch():
            raise CheckpointError(
                f"{source} holds a different FlowUNet ({loaded.arch()}) than the model given "
                f"({model.arch()}); delete it or pass resume=False"
            )
        model.load_state_dict(loaded.state_dict())
        loaded = model
    return loaded, payload


def train_flow(
    images: Any,
    links: TrackGraph,
    voxel_size: Sequence[float],
    cfg: FlowConfig | None = None,
    *,
    model: FlowUNet | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> FlowTrainResult:
    """Train (or fine-tune) a flow model from annotated links.

    Parameters
    ----------
    images : array_like, path or ImageSeries
        Raw movie, opened by :func:`celltrack.io.as_movie` (4-D (T, Z, Y, X), 3-D
        (T, Y, X) 2D+t); frames are read lazily.
    links : TrackGraph
        Annotated links parent (t−1) → child (t); with an ``approved`` edge column only
        approved links are used (see :class:`FlowLabelConfig`).
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) µm.
    cfg : FlowConfig, optional
        All settings (defaults if omitted; see :meth:`FlowConfig.cpu`).
    model : FlowUNet, optional
        Model to fine-tune; its ``max_displacement_um`` normalises the labels. A new model
        is built (seeded by ``cfg.train.seed``) when omitted.
    checkpoint : str or Path, optional
        Model and training state, written atomically after every epoch; at the end it
        holds the finished model.
    resume : bool
        If ``checkpoint`` exists, continue from it (weights, optimiser, generator,
        history, epoch): the result equals an uninterrupted run. A checkpoint of another
        training config is refused (more epochs are allowed: they extend the run).
    progress : bool
        Show a progress bar over epochs.

    Returns
    -------
    FlowTrainResult

    Raises
    ------
    InvalidInputError
        If no usable link remains, or the model and data disagree on 2D/3D.
    ShapeError
        If the movie is not (T, Z, Y, X) / (T, Y, X).
    GraphError
        If a link does not join consecutive frames.
    CheckpointError
        If the checkpoint to resume from does not fit.
    """
    cfg = cfg or FlowConfig()
    tcfg = cfg.train
    vs = check_voxel_size(voxel_size)
    movie = as_movie(images, voxel_size=vs)
    two_d = movie.shape[1] == 1
    fl = flow_links(links, cfg.label)
    if len(fl) == 0:
        raise InvalidInputError(
            "no annotated link to train the flow model from; give a TrackGraph with edges "
            "parent → child (approved=True when an 'approved' column exists)"
        )
    ckpt = None if checkpoint is None else Path(checkpoint)
    payload = None
    if ckpt is not None and resume and ckpt.is_file():
        model, payload = _resume(ckpt, model, cfg)
    if model is None:
        model = build_flow_model(cfg, vs, two_d=two_d, seed=tcfg.seed)
    if not isinstance(model, FlowUNet):
        raise InvalidInputError(f"model must be a FlowUNet, got {type(model).__name__}")
    if model.two_d != two_d:
        raise ShapeError(
            f"the model is {'2D+t' if model.two_d else '3D'} but the frames have Z = "
            f"{movie.shape[1]}"
        )
    label_cfg = cfg.label
    if tuple(model.max_displacement_um) != tuple(label_cfg.max_displacement_um):
        logger.info(
            "using the model's max_displacement_um %s instead of the config's %s",
            model.max_displacement_um,
            label_cfg.max_displacement_um,
        )
        label_cfg = label_cfg.model_copy(
            update={"max_displacement_um": model.max_displacement_um}
        )
    labels = render_flow_labels(fl, movie.shape, vs, label_cfg)
    if not labels:
        raise InvalidInputError("no annotated child ellipsoid lies inside the images")
    frames = sorted(labels)
    centres = {t: fl.child[fl.t == t] / vs for t in frames}
    needed = sorted({*frames, *(t - 1 for t in frames)})
    norm = {t: normalize_frame(np.asarray(movie[t]), cfg.normalize) for t in needed}

    device = torch.device(tcfg.device)
    model.to(device).train()
    state = TrainingState(
        torch.optim.Adam(model.parameters(), lr=tcfg.learning_rate),
        np.random.default_rng(tcfg.seed),
    )
    if payload is not None:
        restore_training_state(payload, state, f"checkpoint '{ckpt}'")
        logger.info("resuming flow training from %s (%s)", ckpt, state.position)
    loss_fn = FlowLoss(cfg.loss, model.max_displacement_um, vs, two_d=two_d)
    max_um = model.max_displacement_um

    def batches(epoch: int, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        items = np.repeat(np.asarray(frames), tcfg.crops_per_frame)
        rng.shuffle(items)
        for b in range(0, items.size, tcfg.batch_size):
            crops = [
                flow_crop(rng, norm[t - 1], norm[t], labels[t], centres[t], cfg, vs, max_um)
                for t in items[b : b + tcfg.batch_size].tolist()
            ]
            image = torch.from_numpy(np.stack([c[0] for c in crops])).to(device)
            target = torch.from_numpy(np.stack([c[1] for c in crops])).to(device)
            yield image, target

    def loss_of(batch: tuple[torch.Tensor, torch.Tensor]):
        image, target = batch
        return loss_fn(model(image), target, image[:, :1], image[:, 1:2])

    def save(state: TrainingState) -> None:
        meta = {"config": cfg.model_dump(mode="json"), "n_links": len(fl)}
        save_training_checkpoint(ckpt, model, model.arch(), state, meta)  # type: ignore[arg-type]
        logger.info("flow epoch %s: loss %.4f", state.position["epoch"], state.history[-1].loss)

    fit_epochs(
        model,
        state,
        mode="flow",
        epochs=tcfg.epochs,
        batches=batches,
        loss_of=loss_of,
        lr_of=lambda epoch, _: epoch_learning_rate(tcfg, epoch),
        record="epoch",
        on_epoch_end=None if ckpt is None else save,
        progress=progress,
        num_threads=tcfg.num_threads,
    )
    if ckpt is not None:
        save(state)
    model.to("cpu").eval()
    return FlowTrainResult(model=model, history=state.history, checkpoint=ckpt, n_links=len(fl))
