"""Batch training of Linajea's movement vectors from a few tens of annotated links.

Each epoch draws ``crops_per_frame`` crops from every frame that holds an annotated
child (or ``crops_per_epoch`` crops in all, spread over those frames, which bounds the
steps however many frames are annotated). A crop of the window of frames around t
contains a random annotated child (kept in the middle 60 % of the crop), augmented with
:mod:`celltrack.nn.augment` identically for every frame of the window, the ball mask and
the vectors (flips negate their component, rotations rotate and zooms scale the vectors).
With ``train.shift_um`` the earlier frames of the window are first moved by a random
whole-voxel offset ``d`` (frame t−k by ``k · d``) and ``d`` is added to the vectors, so
the targets stay exact (parent − voxel) while the displacements vary beyond the few the
annotated frame holds (:func:`window_shift`). The loss is the squared error
of the vectors in units of ``max_displacement_um`` (so the axes are balanced), averaged
over the masked voxels. The loop, the learning-rate schedule and the checkpoints are
:mod:`celltrack.nn`'s: after every epoch the model, the optimiser, the generator state,
the history and the epoch are written atomically, and a run resumed from that checkpoint
reproduces the uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from celltrack.config.movement import MovementConfig, MovementLossConfig
from celltrack.errors import CheckpointError, InvalidInputError
from celltrack.flow.labels import FlowLinks
from celltrack.flow.movement_model import build_movement_model, check_movement_model
from celltrack.flow.movement_targets import movement_links, movement_training_target
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph
from celltrack.io import as_movie
from celltrack.nn.checkpoint import load_checkpoint
from celltrack.nn.crops import sample_labelled_crop
from celltrack.nn.linajea_unet import ARCH_NAME, LinajeaUNet, load_linajea_model
from celltrack.nn.schedule import cosine_lr
from celltrack.nn.training import (
    TrainingState,
    TrainResult,
    check_same_run,
    fit_epochs,
    restore_training_state,
    save_training_checkpoint,
)
from celltrack.nn.windows import frame_window

__all__ = [
    "MovementFrame",
    "MovementTrainResult",
    "axis_weights",
    "check_window_fits",
    "epoch_frames",
    "masked_mse",
    "movement_crop",
    "movement_frames",
    "shift_arguments",
    "train_movement",
    "window_shift",
]

logger = logging.getLogger(__name__)

#: the annotated child lies this fraction of the crop away from its faces (where possible)
CROP_MARGIN = 0.2
#: config sections that shape a training run (a resumed run must share them)
TRAINING_SECTIONS = ("window", "normalize", "target", "model", "loss", "augment", "train", "joint")


@dataclass
class MovementTrainResult(TrainResult):
    """Outcome of :func:`train_movement` (and of the joint trainer).

    Attributes
    ----------
    model : LinajeaUNet
        The trained model (eval mode, on CPU).
    history : TrainingHistory
        One record per epoch (mean ``loss`` and its terms), including the epochs before a
        resume.
    checkpoint : Path or None
        The checkpoint; at the end it holds the finished model
        (:func:`celltrack.nn.linajea_unet.load_linajea_model`).
    n_links : int
        Number of links the targets came from.
    """

    n_links: int = 0


@dataclass
class MovementFrame:
    """The training data of one annotated frame t.

    Attributes
    ----------
    t : int
        The child frame.
    image : ndarray, shape (C, Z, Y, X), float32
        Normalised frames of the window around t.
    vectors : ndarray, shape (3, Z, Y, X), float32
        Movement-vector targets (µm).
    mask : ndarray, shape (Z, Y, X), float32
        1 where the vectors are trained.
    centres : ndarray, shape (K, 3)
        The annotated children of frame t (voxels), around which crops are drawn.
    """

    t: int
    image: np.ndarray
    vectors: np.ndarray
    mask: np.ndarray
    centres: np.ndarray


def axis_weights(cfg: MovementLossConfig, axes: Sequence[int]) -> torch.Tensor:
    """``dim_weights`` of the predicted ``axes`` (into z, y, x), normalised to sum 1.

    Raises
    ------
    InvalidInputError
        If the predicted axes all have weight 0.
    """
    w = np.asarray(cfg.dim_weights, np.float64)[list(axes)]
    if w.sum() <= 0:
        raise InvalidInputError(
            f"loss.dim_weights {cfg.dim_weights} give weight 0 to every predicted axis "
            f"{list(axes)}; give one of them a positive weight"
        )
    return torch.tensor(w / w.sum(), dtype=torch.float32)


def masked_mse(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    scale: Sequence[float] | torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error of vectors over the masked voxels, in units of ``scale``.

    Parameters
    ----------
    pred, target : Tensor, shape (B, C, Z, Y, X)
        Predicted and target vectors (µm); the target is clipped to ±``scale`` (what the
        model can output).
    mask : Tensor, shape (B, Z, Y, X) or (B, 1, Z, Y, X)
        Voxel weights (1 = trained, 0 = ignored).
    scale : sequence of C float or Tensor
        Per-component scale (µm), e.g. the model's ``max_displacement_um`` of its axes.
    weights : Tensor, shape (C,), optional
        Per-component weights summing to 1 (default equal).

    Returns
    -------
    Tensor
        Scalar: ``Σ_v m_v Σ_c w_c ((pred − target) / scale)²_c,v / Σ_v m_v``; an exact 0
        (without gradient through the data) when the mask is empty.
    """
    c = pred.shape[1]
    s = torch.as_tensor(scale, dtype=pred.dtype, device=pred.device).view(1, c, 1, 1, 1)
    w = (
        torch.full((c,), 1.0 / c, dtype=pred.dtype, device=pred.device)
        if weights is None
        else weights.to(pred.device, pred.dtype)
    ).view(1, c, 1, 1, 1)
    m = mask if mask.dim() == pred.dim() else mask.unsqueeze(1)
    m = m.to(pred.dtype)
    err = ((pred / s - (target / s).clamp(-1.0, 1.0)) ** 2 * w).sum(dim=1, keepdim=True)
    total = m.sum()
    if float(total) <= 0:
        return (pred * 0.0).sum()
    return (err * m).sum() / total


def epoch_frames(
    rng: np.random.Generator,
    frames: Sequence[int],
    crops_per_frame: int,
    crops_per_epoch: int | None = None,
) -> np.ndarray:
    """The frame of every crop of one epoch, in random order.

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness (order, and which frames get the remainder).
    frames : sequence of int
        The annotated frames.
    crops_per_frame : int
        Crops per frame when ``crops_per_epoch`` is None.
    crops_per_epoch : int, optional
        Total crops of the epoch, spread evenly over ``frames`` (the remainder goes to
        frames drawn at random without repetition).

    Returns
    -------
    ndarray of int, shape (n_crops,)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sorted(epoch_frames(rng, [3, 7], 2).tolist()), epoch_frames(rng, [3, 7], 2, 5).size
    ([3, 3, 7, 7], 5)
    """
    f = np.asarray(list(frames), np.int64)
    if crops_per_epoch is None:
        items = np.repeat(f, int(crops_per_frame))
    else:
        each, rest = divmod(int(crops_per_epoch), f.size)
        items = np.repeat(f, each)
        if rest:
            items = np.concatenate([items, rng.choice(f, rest, replace=False)])
    rng.shuffle(items)
    return items


def check_window_fits(window: Sequence[int], num_frames: int) -> None:
    """Refuse a window of more frames than the movie has.

    Raises
    ------
    InvalidInputError
        If ``before + 1 + after > num_frames``.
    """
    before, after = (int(v) for v in window)
    if before + 1 + after > num_frames:
        raise InvalidInputError(
            f"window {(before, after)} spans {before + 1 + after} frames but the movie has "
            f"{num_frames}; shorten the window (e.g. window=(1, 0)) or give a longer movie"
        )


def movement_frames(
    movie: Any,
    fl: FlowLinks,
    voxel_size: np.ndarray,
    cfg: MovementConfig,
    window: Sequence[int],
) -> dict[int, MovementFrame]:
    """Targets and normalised windows of every frame holding an annotated child.

    Parameters
    ----------
    movie : array_like, shape (T, Z, Y, X)
        The raw movie.
    fl : FlowLinks
        Annotated links (µm).
    voxel_size : ndarray, shape (3,)
        Voxel size (z, y, x) µm.
    cfg : MovementConfig
        ``target`` and ``normalize`` are used.
    window : (int, int)
        The model's frame window.

    Returns
    -------
    dict of int to MovementFrame
        Frames whose mask holds at least one voxel.

    Raises
    ------
    InvalidInputError
        If a child frame is outside ``[1, T)``.
    """
    n = int(movie.shape[0])
    if len(fl) and (fl.t.min() < 1 or fl.t.max() >= n):
        raise InvalidInputError(
            f"link child frames span {int(fl.t.min())}..{int(fl.t.max())} but the movie has "
            f"frames 0..{n - 1} (children need a previous frame); give the links of this movie"
        )
    out: dict[int, MovementFrame] = {}
    shape = tuple(int(s) for s in movie.shape[1:])
    for t in sorted({int(v) for v in fl.t}):
        vectors, mask = movement_training_target(shape, fl, t, voxel_size, cfg)
        if not mask.any():
            continue
        image = frame_window(movie, t, window, cfg.normalize)
        centres = fl.child[fl.t == t] / voxel_size
        out[t] = MovementFrame(t, image, vectors, mask, centres)
    return out


def window_shift(
    rng: np.random.Generator,
    shift_um: Sequence[float],
    voxel_size: Sequence[float],
    window: Sequence[int],
    *,
    two_d: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the shift augmentation of one crop (see ``MovementTrainConfig.shift_um``).

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness.
    shift_um : sequence of 3 float
        Largest extra displacement per axis (z, y, x) in µm.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    window : (int, int)
        Frames before and after t in the window.
    two_d : bool
        2D+t data: z is never shifted.

    Returns
    -------
    channel_shift : ndarray of int, shape (before + 1 + after, 3)
        Voxels by which each frame of the window is moved: ``k · d`` for frame t−k,
        ``−k · d`` for frame t+k, 0 for t, with ``d`` uniform over the integer voxels
        within ±``shift_um``.
    offset_um : ndarray, shape (3,)
        ``d`` in µm: what the shift adds to the vectors of frame t towards frame t−1.

    Examples
    --------
    >>> shift, off = window_shift(np.random.default_rng(0), (0, 3, 3), (1, 1, 1), (1, 0))
    >>> shift[1].tolist(), bool((shift[0] * 1.0 == off).all())
    ([0, 0, 0], True)
    """
    vs = np.asarray(voxel_size, float)
    reach = np.floor(np.asarray(shift_um, float) / vs + 1e-9).astype(np.int64)
    if two_d:
        reach[0] = 0
    d = np.array([rng.integers(-r, r + 1) if r > 0 else 0 for r in reach], np.int64)
    before, after = (int(v) for v in window)
    k = np.arange(-before, after + 1)  # frame t + k
    return -k[:, None] * d[None, :], (d * vs).astype(np.float64)


def shift_arguments(
    rng: np.random.Generator,
    cfg: MovementConfig,
    voxel_size: Sequence[float],
    window: Sequence[int],
    *,
    two_d: bool,
) -> dict[str, Any]:
    """The crop arguments of the shift augmentation (empty when ``train.shift_um`` is 0).

    Returns
    -------
    dict
        ``channel_shift`` and ``vector_offset`` for
        :func:`celltrack.nn.crops.sample_labelled_crop`, drawn by :func:`window_shift`.
    """
    if not any(v > 0 for v in cfg.train.shift_um):
        return {}
    channel_shift, offset = window_shift(
        rng, cfg.train.shift_um, voxel_size, window, two_d=two_d
    )
    return {"channel_shift": channel_shift, "vector_offset": offset}


def movement_crop(
    rng: np.random.Generator,
    frame: MovementFrame,
    cfg: MovementConfig,
    voxel_size: np.ndarray,
    axes: Sequence[int],
    *,
    window: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one augmented training crop around a random annotated child.

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness (shift, crop position and augmentation).
    frame : MovementFrame
        The frame's window, targets and children.
    cfg : MovementConfig
        ``train.crop_shape``, ``train.shift_um`` and ``augment`` are used.
    voxel_size : ndarray, shape (3,)
        Voxel size (z, y, x) µm.
    axes : sequence of int
        Predicted components (into z, y, x): (1, 2) for 2D+t.
    window : (int, int), optional
        The frame window of ``frame.image`` (default ``cfg.window``); only needed by the
        shift augmentation.

    Returns
    -------
    image : ndarray, shape (C, z, y, x), float32
        The window's frames.
    vectors : ndarray, shape (len(axes), z, y, x), float32
        Augmented targets (µm).
    mask : ndarray, shape (z, y, x), float32
        Augmented mask (0/1); holds a voxel unless none survived 20 attempts.
    """
    shift = shift_arguments(rng, cfg, voxel_size, cfg.window if window is None else window,
                            two_d=frame.image.shape[1] == 1)
    crop = sample_labelled_crop(
        rng,
        frame.image,
        cfg.train.crop_shape,
        frame.centres,
        margin=CROP_MARGIN,
        labels=(frame.mask > 0).astype(np.uint8),
        vectors=frame.vectors,
        augment=cfg.augment,
        voxel_size=voxel_size,
        vector_unit="um",
        **shift,
    )
    assert crop.labels is not None and crop.vectors is not None  # both were given
    return (
        crop.image,
        np.ascontiguousarray(crop.vectors[list(axes)], np.float32),
        (crop.labels > 0).astype(np.float32),
    )


def resume_model(
    path: Path,
    model: LinajeaUNet | None,
    saved_check: Callable[[Mapping[str, Any]], None],
    heads: Sequence[str],
) -> tuple[LinajeaUNet, dict[str, Any]]:
    """Load a training checkpoint's model (into ``model`` if given) and its payload.

    Parameters
    ----------
    path : Path
        The checkpoint.
    model : LinajeaUNet, optional
        Receives the weights (its architecture must match).
    saved_check : callable
        Called with the checkpoint's ``meta`` to refuse another run's checkpoint.
    heads : sequence of str
        Heads the model must have.

    Raises
    ------
    CheckpointError
        If the checkpoint does not fit.
    """
    source = f"checkpoint '{path}'"
    payload = load_checkpoint(path, expected_name=ARCH_NAME)
    saved_check(payload.get("meta", {}))
    loaded = load_linajea_model(path, heads=heads)
    if model is not None:
        if model.arch() != loaded.arch():
            raise CheckpointError(
                f"{source} holds a different LinajeaUNet ({loaded.arch()}) than the model "
                f"given ({model.arch()}); delete it or pass resume=False"
            )
        model.load_state_dict(loaded.state_dict())
        loaded = model
    return loaded, payload


def run_epochs(
    model: LinajeaUNet,
    cfg: MovementConfig,
    *,
    mode: str,
    payload: dict[str, Any] | None,
    checkpoint: Path | None,
    meta: dict[str, Any],
    batches: Callable[[int, np.random.Generator, int], Iterator[Any]],
    loss_of: Callable[[Any], tuple[torch.Tensor, Mapping[str, float]]],
    progress: bool,
) -> TrainingState:
    """The epochs of a movement (or joint) training run, with checkpoints and resume.

    ``batches(epoch, rng, first_step)`` yields the epoch's batches; ``first_step`` is the
    number of optimisation steps taken before the epoch (for step schedules).
    """
    tcfg = cfg.train
    device = torch.device(tcfg.device)
    model.to(device).train()
    state = TrainingState(
        torch.optim.Adam(model.parameters(), lr=tcfg.learning_rate),
        np.random.default_rng(tcfg.seed),
    )
    if payload is not None:
        restore_training_state(payload, state, f"checkpoint '{checkpoint}'")
        logger.info("resuming %s training from %s (%s)", mode, checkpoint, state.position)

    def save(state: TrainingState) -> None:
        save_training_checkpoint(checkpoint, model, model.arch(), state, meta)  # type: ignore[arg-type]
        logger.info("%s epoch %s: loss %.4f", mode, state.position["epoch"], state.history[-1].loss)

    fit_epochs(
        model,
        state,
        mode=mode,
        epochs=tcfg.epochs,
        batches=lambda epoch, rng: batches(epoch, rng, state.steps),
        loss_of=loss_of,
        lr_of=lambda epoch, _: cosine_lr(
            tcfg.learning_rate, epoch, tcfg.epochs, tcfg.final_lr_fraction
        ),
        record="epoch",
        on_epoch_end=None if checkpoint is None else save,
        progress=progress,
        num_threads=tcfg.num_threads,
    )
    if checkpoint is not None:
        save(state)
    model.to("cpu").eval()
    return state


def train_movement(
    images: Any,
    links: TrackGraph,
    voxel_size: Sequence[float],
    cfg: MovementConfig | None = None,
    *,
    model: LinajeaUNet | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> MovementTrainResult:
    """Train (or fine-tune) a movement-vector model from annotated links.

    Parameters
    ----------
    images : array_like, path or ImageSeries
        Raw movie, opened by :func:`celltrack.io.as_movie` (4-D (T, Z, Y, X), 3-D
        (T, Y, X) 2D+t); only the windows of annotated frames are read.
    links : TrackGraph
        Annotated links parent (t−1) → child (t), positions in µm; with an ``approved``
        edge column only approved links are used.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) µm.
    cfg : MovementConfig, optional
        All settings (defaults if omitted; see :meth:`MovementConfig.cpu`).
    model : LinajeaUNet, optional
        Model with a movement head to fine-tune; its ``window`` and
        ``max_displacement_um`` win over the config's. A new movement-only model is built
        (seeded by ``cfg.train.seed``) when omitted.
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
    MovementTrainResult

    Raises
    ------
    InvalidInputError
        If no usable link remains, the window spans more frames than the movie, or the
        model is not a movement model.
    ShapeError
        If the movie is not (T, Z, Y, X) / (T, Y, X), or the model and data disagree on
        2D/3D.
    GraphError
        If a link does not join consecutive frames.
    CheckpointError
        If the checkpoint to resume from does not fit.
    """
    cfg = cfg or MovementConfig()
    if not isinstance(cfg, MovementConfig):
        raise InvalidInputError(f"cfg must be a MovementConfig, got {type(cfg).__name__}")
    vs = check_voxel_size(voxel_size)
    movie = as_movie(images, voxel_size=vs)
    two_d = movie.shape[1] == 1
    fl = movement_links(links, cfg)
    if len(fl) == 0:
        raise InvalidInputError(
            "no annotated link to train movement vectors from; give a TrackGraph with edges "
            "parent → child (approved=True when an 'approved' column exists)"
        )
    ckpt = None if checkpoint is None else Path(checkpoint)
    dump = cfg.model_dump(mode="json")

    def same_run(meta: Mapping[str, Any]) -> None:
        check_same_run(
            meta.get("config"), dump, sections=TRAINING_SECTIONS, source=f"checkpoint '{ckpt}'"
        )

    payload = None
    if ckpt is not None and resume and ckpt.is_file():
        model, payload = resume_model(ckpt, model, same_run, ("movement",))
    if model is None:
        model = build_movement_model(cfg, vs, two_d=two_d, seed=cfg.train.seed)
    model = check_movement_model(model, two_d=two_d)
    if tuple(model.window) != tuple(cfg.window):
        logger.info("using the model's frame window %s instead of the config's %s",
                    model.window, cfg.window)
    check_window_fits(model.window, movie.shape[0])
    data = movement_frames(movie, fl, vs, cfg, model.window)
    if not data:
        raise InvalidInputError("no annotated child lies inside the images")
    frames = sorted(data)
    axes = model.movement_axes
    weights = axis_weights(cfg.loss, axes)
    scale = [model.max_displacement_um[a] for a in axes]
    move = model.channels("movement")
    device = torch.device(cfg.train.device)
    tcfg = cfg.train

    window = model.window

    def batches(epoch: int, rng: np.random.Generator, first_step: int) -> Iterator[Any]:
        items = epoch_frames(rng, frames, tcfg.crops_per_frame, tcfg.crops_per_epoch)
        for b in range(0, items.size, tcfg.batch_size):
            crops = [
                movement_crop(rng, data[t], cfg, vs, axes, window=window)
                for t in items[b : b + tcfg.batch_size].tolist()
            ]
            yield tuple(
                torch.from_numpy(np.stack([c[i] for c in crops])).to(device) for i in range(3)
            )

    def loss_of(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict[str, float]]:
        image, target, mask = batch
        mse = masked_mse(model(image)[:, move], target, mask, scale, weights)
        return cfg.loss.movement_weight * mse, {"mask": float(mse.detach())}

    meta = {"config": dump, "n_links": len(fl)}
    state = run_epochs(
        model, cfg, mode="movement", payload=payload, checkpoint=ckpt, meta=meta,
        batches=batches, loss_of=loss_of, progress=progress,
    )
    return MovementTrainResult(
        model=model, history=state.history, checkpoint=ckpt, n_links=len(fl)
    )
