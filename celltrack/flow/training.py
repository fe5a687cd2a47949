"""Batch training of the flow model from a few tens of annotated links.

Each epoch draws ``crops_per_frame`` crops from every frame that holds an annotated
child. A crop is centred near a random annotated child (so it always sees labels),
augmented with :mod:`celltrack.detect.augment` applied identically to both frames, the
label mask and the flow vectors (flips negate, rotations rotate, zooms scale them), and
the flow loss is minimised with Adam. After every epoch the model, the optimiser state
and the loss history are checkpointed atomically; an interrupted run resumes from the
checkpoint.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from celltrack.detect.augment import apply, random_transform
from celltrack.detect.predict import normalize_frame
from celltrack.errors import CheckpointError, InvalidInputError, ShapeError
from celltrack.flow.config import FlowConfig, FlowTrainConfig
from celltrack.flow.frames import check_movie
from celltrack.flow.labels import flow_links, render_flow_labels
from celltrack.flow.losses import FlowLoss
from celltrack.flow.model import (
    ARCH_NAME,
    FlowUNet,
    build_flow_model,
    model_from_payload,
    save_flow_model,
)
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph
from celltrack.nn import load_checkpoint

__all__ = ["FlowTrainResult", "sample_crop", "train_flow"]

logger = logging.getLogger(__name__)

_MAX_TRIES = 20


@dataclass
class FlowTrainResult:
    """Outcome of :func:`train_flow`.

    Attributes
    ----------
    model : FlowUNet
        The trained model (eval mode, on CPU).
    history : list of dict
        One entry per epoch: ``epoch``, mean ``loss``, ``instance``, ``ssim``, ``smooth``.
    checkpoint : Path or None
        Where the model was saved.
    n_links : int
        Number of links the labels came from.
    """

    model: FlowUNet
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    n_links: int = 0


def sample_crop(
    rng: np.random.Generator,
    prev: np.ndarray,
    cur: np.ndarray,
    labels: np.ndarray,
    centres: np.ndarray,
    cfg: FlowConfig,
    voxel_size: np.ndarray,
    max_displacement_um: Sequence[float],
    *,
    two_d: bool,
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
    two_d : bool
        2D+t data (never zoom or flip z).

    Returns
    -------
    image : ndarray, shape (2, z, y, x), float32
        Frames t−1 and t.
    target : ndarray, shape (4, z, y, x), float32
        Augmented labels (vectors renormalised and clipped to [−1, 1]; mask 0/1). The
        mask holds at least one labelled voxel unless none survived 20 attempts.
    """
    shape = np.asarray(cur.shape)
    crop = np.minimum(np.asarray(cfg.train.crop_shape), shape)
    scale = np.asarray(max_displacement_um, np.float32)[:, None, None, None]
    image = target = None
    for _ in range(_MAX_TRIES):
        tf = random_transform(rng, cfg.train.augment, voxel_size=voxel_size, two_d=two_d)
        spread = abs(np.cos(tf.angle)) + abs(np.sin(tf.angle))
        zoom = np.asarray(tf.zoom)
        raw = crop.astype(np.float64) / zoom
        raw[1:] *= spread * max(zoom[1:]) / min(zoom[1:])
        raw = np.minimum(np.ceil(raw).astype(int), shape)
        centre = centres[rng.integers(len(centres))]
        jitter = rng.uniform(-0.3, 0.3, 3) * crop
        origin = np.rint(centre + jitter - raw / 2).astype(int)
        origin = np.clip(origin, 0, shape - raw)
        sl = tuple(slice(o, o + r) for o, r in zip(origin, raw))
        pair = np.stack([prev[sl], cur[sl]])
        mask = (labels[3][sl] > 0).astype(np.uint8)
        vectors = labels[:3][(slice(None), *sl)] * scale
        image, mask_out, vec = apply(
            tf,
            pair,
            labels=mask,
            vectors=vectors,
            voxel_size=voxel_size,
            out_shape=crop,
            vector_unit="um",
        )
        assert mask_out is not None and vec is not None  # both were given
        target = np.concatenate(
            [np.clip(vec / scale, -1.0, 1.0), mask_out[None].astype(np.float32)]
        ).astype(np.float32)
        if mask_out.any():
            break
    return image, target  # type: ignore[return-value]


def epoch_learning_rate(cfg: FlowTrainConfig, epoch: int) -> float:
    """Learning rate of ``epoch`` (0-based): cosine from ``learning_rate`` to
    ``learning_rate × final_lr_fraction`` at the last epoch."""
    if cfg.epochs <= 1 or cfg.final_lr_fraction == 1.0:
        return cfg.learning_rate
    progress = epoch / (cfg.epochs - 1)
    f = cfg.final_lr_fraction
    return cfg.learning_rate * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * progress)))


def _resume(
    path: Path, model: FlowUNet | None
) -> tuple[FlowUNet, dict[str, Any]]:
    payload = load_checkpoint(path, expected_name=ARCH_NAME)
    loaded = model_from_payload(payload, f"checkpoint '{path}'")
    if model is not None:
        if model.arch() != loaded.arch():
            raise CheckpointError(
                f"checkpoint '{path}' holds a different FlowUNet ({loaded.arch()}) than the "
                f"model given ({model.arch()}); delete it or pass resume=False"
            )
        model.load_state_dict(loaded.state_dict())
        loaded = model
    return loaded, dict(payload.get("meta", {}))


def train_flow(
    images: Any,
    links: TrackGraph,
    voxel_size: Sequence[float],
    cfg: FlowConfig | None = None,
    *,
    model: FlowUNet | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    progress: bool = False,
) -> FlowTrainResult:
    """Train (or fine-tune) a flow model from annotated links.

    Parameters
    ----------
    images : array_like (T, Z, Y, X) / (T, Y, X) or sequence of frames
        Raw movie (indexed lazily frame by frame; zarr/dask work).
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
        Saved after every epoch (atomically).
    resume : bool
        If ``checkpoint`` exists, continue from it (weights, optimiser, epoch count).
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
        If frames differ in shape.
    GraphError
        If a link does not join consecutive frames.
    """
    cfg = cfg or FlowConfig()
    tcfg = cfg.train
    vs = check_voxel_size(voxel_size)
    movie = check_movie(images)
    two_d = movie.frame_shape[0] == 1
    fl = flow_links(links, cfg.label)
    if len(fl) == 0:
        raise InvalidInputError(
            "no annotated link to train the flow model from; give a TrackGraph with edges "
            "parent → child (approved=True when an 'approved' column exists)"
        )
    if tcfg.num_threads is not None:
        torch.set_num_threads(tcfg.num_threads)
    meta: dict[str, Any] = {}
    ckpt = None if checkpoint is None else Path(checkpoint)
    if ckpt is not None and resume and ckpt.is_file():
        model, meta = _resume(ckpt, model)
        logger.info("resuming flow training from %s (epoch %s)", ckpt, meta.get("epoch"))
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tcfg.seed)
            model = build_flow_model(cfg, vs, two_d=two_d)
    if model.two_d != two_d:
        raise ShapeError(
            f"the model is {'2D+t' if model.two_d else '3D'} but the frames have Z = "
            f"{movie.frame_shape[0]}"
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
    norm = {t: normalize_frame(movie[t]) for t in sorted({*frames, *(t - 1 for t in frames)})}

    device = torch.device(tcfg.device)
    model.to(device).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=tcfg.learning_rate)
    if "optimizer" in meta:
        try:
            optimiser.load_state_dict(meta["optimizer"])
        except (ValueError, KeyError) as exc:
            logger.warning("optimiser state in the checkpoint does not fit (%s); reset", exc)
    loss_fn = FlowLoss(cfg.loss, model.max_displacement_um, vs, two_d=two_d)
    history: list[dict[str, float]] = list(meta.get("history", []))
    start = int(meta.get("epoch", 0))
    for epoch in tqdm(range(start, tcfg.epochs), desc="flow epochs", disable=not progress):
        for group in optimiser.param_groups:
            group["lr"] = epoch_learning_rate(tcfg, epoch)
        rng = np.random.default_rng([tcfg.seed, epoch])
        items = np.repeat(np.asarray(frames), tcfg.crops_per_frame)
        rng.shuffle(items)
        sums = {"loss": 0.0, "instance": 0.0, "ssim": 0.0, "smooth": 0.0}
        steps = 0
        for b in range(0, items.size, tcfg.batch_size):
            crops = [
                sample_crop(
                    rng, norm[t - 1], norm[t], labels[t], centres[t], cfg, vs,
                    model.max_displacement_um, two_d=two_d,
                )
                for t in items[b : b + tcfg.batch_size].tolist()
            ]
            image = torch.from_numpy(np.stack([c[0] for c in crops])).to(device)
            target = torch.from_numpy(np.stack([c[1] for c in crops])).to(device)
            pred = model(image)
            loss, parts = loss_fn(pred, target, image[:, :1], image[:, 1:2])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            sums["loss"] += float(loss.detach())
            for k, v in parts.items():
                sums[k] += v
            steps += 1
        record = {"epoch": float(epoch + 1), **{k: v / max(steps, 1) for k, v in sums.items()}}
        history.append(record)
        logger.info("flow epoch %d: loss %.4f", epoch + 1, record["loss"])
        if ckpt is not None:
            save_flow_model(
                ckpt,
                model,
                meta={
                    "epoch": epoch + 1,
                    "history": history,
                    "config": cfg.model_dump(mode="json"),
                    "optimizer": optimiser.state_dict(),
                    "n_links": len(fl),
                },
            )
    model.to("cpu").eval()
    return FlowTrainResult(model=model, history=history, checkpoint=ckpt, n_links=len(fl))
