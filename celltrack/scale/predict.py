"""Block-wise prediction of detection probabilities, flow, cell indicator and movement vectors.

:func:`predict_blockwise` cuts every frame into blocks (:class:`~celltrack.scale.BlockGrid`:
cores aligned to the network's downsampling factor, a halo of its receptive radius), runs
the network on each block's read region, keeps the core and writes it straight into a
chunked Zarr array ``(T, C, Z, Y, X)`` (one chunk per block core). The result equals one
forward pass over the whole normalised frame (up to float rounding) because

1. every block is normalised with its *frame's* percentiles and slice medians, gathered
   block-wise first (:mod:`celltrack.scale.intensity`: exact for integer data);
2. GroupNorm layers use the whole frame's statistics, gathered block-wise in one partial
   pass per layer (:mod:`celltrack.scale.norms`; ``group_norm="block"`` skips this);
3. the halo covers the receptive field and block origins line up with the pooling grid.

The run is resumable: the output folder holds a fingerprint of the problem, the model
checkpoint the workers load (once per process), per-frame statistics and one marker per
finished block, written only after its chunk. A rerun skips finished blocks and yields the
identical array. Blocks run on :func:`celltrack.solve.blockwise.executors.make_executor`
executors (``"processes"`` by default, ``"serial"``, a ``dask.distributed`` Client or a
scheduler address); a worker holds one block's input, activations and output at a time,
so its peak memory is bounded by the block size, not the frame size.

Output layout (a Zarr v3 group at ``out``)::

    out/prediction      float32/float16 (T, C, Z, Y, X), chunks (1, C, *block core); C is 3
                        (detection classes, flow or movement in µm), 1 (indicator), or
                        the channels asked for (``channels=``)
    out/_manifest.json  fingerprint of model, movie, grid and settings
    out/_model.pt       the network (weights_only checkpoint)
    out/_stats/         per-frame normalisation (JSON) and GroupNorm statistics (npz)
    out/_blocks/        one empty marker file per finished block
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import resource
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from celltrack.config.nn import BlockwisePredictConfig, NormalizeConfig
from celltrack.errors import CheckpointError, InvalidInputError, ShapeError
from celltrack.nn.tiling import network_divisor
from celltrack.progress import progress_bar
from celltrack.scale.blocks import Block, BlockGrid, receptive_halo
from celltrack.scale.intensity import (
    FrameNormalization,
    SliceSummary,
    apply_normalization,
    frame_normalization,
    merge_summaries,
    summarize_block,
)

__all__ = ["BlockwiseResult", "predict_blockwise"]

logger = logging.getLogger(__name__)

Kind = Literal["detection", "flow", "indicator", "movement"]

#: Output channels of each kind, as named in the store's attributes.
CHANNELS: dict[str, list[str]] = {
    "detection": ["background", "periphery", "centre"],
    "flow": ["flow_z_um", "flow_y_um", "flow_x_um"],
    "indicator": ["indicator"],
    "movement": ["movement_z_um", "movement_y_um", "movement_x_um"],
}


@dataclass
class BlockwiseResult:
    """What :func:`predict_blockwise` produced.

    Attributes
    ----------
    path : Path
        The output Zarr group.
    array : zarr.Array
        ``(T, C, Z, Y, X)`` predictions (opened read-only): detection probabilities of
        background, periphery, centre; backward flow in µm (z, y, x); the cell indicator
        (C = 1); or movement vectors (parent centre − voxel, µm, z, y, x). Frames not
        predicted (flow and movement: frame 0) hold NaN.
    kind : {'detection', 'flow', 'indicator', 'movement'}
    frames : list of int
        Frames predicted.
    grid : BlockGrid
    stats : dict
        Blocks done now and before, seconds per phase, worker peak RSS (bytes).
    """

    path: Path
    array: Any
    kind: Kind
    frames: list[int]
    grid: BlockGrid
    stats: dict[str, Any]


# ---------------------------------------------------------------------------- models
def _model_kind(model: Any, head: str | None) -> Kind:
    from celltrack.detect.model import DetectionUNet
    from celltrack.flow.model import FlowUNet
    from celltrack.nn.linajea_unet import LinajeaUNet

    if isinstance(model, LinajeaUNet):
        if head is None and len(model.heads) > 1:
            raise InvalidInputError(
                f"this LinajeaUNet has the heads {list(model.heads)}: pass head='indicator' or "
                "head='movement' to say which map to predict"
            )
        head = head or model.heads[0]
        if head not in model.heads:
            raise InvalidInputError(
                f"this LinajeaUNet has the heads {list(model.heads)}, not '{head}'"
            )
        return head  # type: ignore[return-value]
    if head is not None:
        raise InvalidInputError(
            f"head= selects the map of a LinajeaUNet; a {type(model).__name__} has one output"
        )
    if isinstance(model, FlowUNet):
        return "flow"
    if isinstance(model, DetectionUNet):
        return "detection"
    from celltrack.detect.detector import check_detector

    check_detector(model)  # raises InvalidInputError for anything else
    return "detection"


def _state_token(model: Any) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        arr = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}{arr.dtype}{arr.shape}".encode())
        digest.update(arr.tobytes())
    digest.update(type(model).__name__.encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class _ModelRef:
    kind: Kind
    path: str | None  # checkpoint; None = registered in this process only
    token: str
    dtype: str = "float32"  # parameter dtype the network computes in


_MODELS: dict[str, tuple[Any, Any]] = {}  # token -> (model, NormStats), per process


def _save_model(model: Any, kind: Kind, path: Path) -> bool:
    from celltrack.detect.model import DetectionUNet, save_model
    from celltrack.flow.model import FlowUNet, save_flow_model
    from celltrack.nn.linajea_unet import LinajeaUNet, save_linajea_model

    if isinstance(model, LinajeaUNet):
        save_linajea_model(path, model)
        return True
    if isinstance(model, FlowUNet):
        save_flow_model(path, model)
        return True
    if isinstance(model, DetectionUNet):
        save_model(path, model)
        return True
    return False


def _load_model(ref: _ModelRef, device: str) -> tuple[Any, Any]:
    cached = _MODELS.get(ref.token)
    if cached is not None:
        return cached
    if ref.path is None:
        raise InvalidInputError(
            "this model cannot be saved as a celltrack checkpoint, so it runs only with "
            "executor='serial'"
        )
    if ref.kind == "flow":
        from celltrack.flow.model import load_flow_model

        model = load_flow_model(ref.path)
    elif ref.kind in ("indicator", "movement"):
        from celltrack.nn.linajea_unet import load_linajea_model

        model = load_linajea_model(ref.path, heads=(ref.kind,))
    else:
        from celltrack.detect.model import load_model

        model = load_model(ref.path)[0]
    import torch

    return _register(model.to(getattr(torch, ref.dtype)), ref.token, device)


def _register(model: Any, token: str, device: str) -> tuple[Any, Any]:
    from celltrack.scale.norms import NormStats

    model.eval()
    model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    entry = (model, NormStats(model))
    _MODELS.clear()  # one model per worker at a time
    _MODELS[token] = entry
    return entry


def _param_dtype(model: Any) -> str:
    for p in model.parameters():
        return str(p.dtype).removeprefix("torch.")
    return "float32"


# ---------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class _Job:
    """Everything a worker needs, small enough to send with every task."""

    series: Any  # ImageSeries (pickles without its pixels)
    out: str  # path of the prediction array
    kind: Kind
    model: _ModelRef
    grid: BlockGrid
    device: str
    threads: int | None
    group_norm: str
    dtype: str
    window: tuple[int, int] = (0, 0)  # LinajeaUNet: frames before and after t
    channels: tuple[int, ...] = (0, 1, 2)  # output channels kept in the store

    def input_frames(self, t: int) -> list[int]:
        """The frames the network reads for frame ``t``, in channel order: flow t−1 and
        t; a LinajeaUNet its window around t (clamped to the movie); detection t."""
        if self.kind == "flow":
            return [t - 1, t]
        if self.kind in ("indicator", "movement"):
            from celltrack.nn.windows import window_frames

            return window_frames(t, int(self.series.shape[0]), self.window)
        return [t]


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _peak_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _summary_task(args: tuple[_Job, int, int]) -> tuple[int, int, list[SliceSummary], int]:
    from celltrack.io.images import read_block

    job, t, b = args
    block = job.grid[b]
    data = read_block(job.series, t, block.core)
    return t, block.core[0].start, summarize_block(data), _peak_rss()


def _block_input(job: _Job, t: int, block: Block, norms: dict[int, FrameNormalization]) -> Any:
    import torch

    from celltrack.io.images import read_block

    z0 = block.read[0].start
    chans = [
        apply_normalization(read_block(job.series, f, block.read), norms[f], z0)
        for f in job.input_frames(t)
    ]
    dtype = getattr(torch, job.model.dtype)
    return torch.from_numpy(np.stack(chans)[None]).to(device=job.device, dtype=dtype)


def _gn_task(
    args: tuple[_Job, int, int, int, dict, list],
) -> tuple[int, np.ndarray, np.ndarray, int]:
    import torch

    from celltrack.scale.norms import StopForward

    job, t, b, layer, norms, frozen = args
    _set_threads(job.threads)
    model, stats = _load_model(job.model, job.device)
    block = job.grid[b]
    x = _block_input(job, t, block, norms)
    stats.set_frozen(frozen)
    stats.collect = layer
    stats.core = block.core_in_padded(job.grid.divisor)
    stats.padded = [-(-s // d) * d for s, d in zip(block.read_shape, job.grid.divisor)]
    stats.result = None
    try:
        with torch.inference_mode():
            model(x)
    except StopForward:
        pass
    finally:
        stats.collect = None
    if stats.result is None:
        raise RuntimeError(f"GroupNorm layer {layer} was not reached in the forward pass")
    sums, squares, count = stats.result
    return t, sums, squares, count


def _forward(job: _Job, model: Any, x: Any) -> Any:
    import torch

    if job.kind == "detection":
        from celltrack.detect.detector import class_scores

        return torch.softmax(class_scores(model, x), dim=1)
    if job.kind == "indicator":
        return model(x)[:, model.channels("indicator")]
    if job.kind == "movement":
        out = model(x)[:, model.channels("movement")]
        vectors = torch.zeros((out.shape[0], 3, *out.shape[2:]), dtype=out.dtype, device=out.device)
        vectors[:, model.movement_axes] = out
        return vectors
    out = model(x)
    scale = torch.as_tensor(model.max_displacement_um, dtype=out.dtype, device=out.device)
    flow = torch.zeros((out.shape[0], 3, *out.shape[2:]), dtype=out.dtype, device=out.device)
    flow[:, model.axes] = out * scale[model.axes].view(1, -1, 1, 1, 1)
    return flow


_ARRAYS: dict[str, Any] = {}


def _open_out(path: str) -> Any:
    import zarr

    arr = _ARRAYS.get(path)
    if arr is None:
        _ARRAYS.clear()
        arr = _ARRAYS[path] = zarr.open_array(path, mode="r+")
    return arr


def _predict_task(args: tuple[_Job, int, int, dict, list]) -> tuple[int, int, float, int]:
    import torch

    job, t, b, norms, frozen = args
    start = time.perf_counter()
    _set_threads(job.threads)
    model, stats = _load_model(job.model, job.device)
    block = job.grid[b]
    x = _block_input(job, t, block, norms)
    stats.set_frozen(frozen if job.group_norm == "frame" else [])
    with torch.inference_mode():
        out = _forward(job, model, x)
    core = block.core_in_read
    pred = out[(0, list(job.channels), *core)].float().cpu().numpy().astype(job.dtype)
    del out, x
    arr = _open_out(job.out)
    arr[(t, slice(None), *block.core)] = pred
    marker = Path(job.out).parent / "_blocks" / f"t{t:06d}_b{b:07d}"
    marker.touch()
    return t, b, time.perf_counter() - start, _peak_rss()


# ---------------------------------------------------------------------------- driver
def _as_series(image: Any) -> Any:
    from celltrack.io.images import ImageSeries, read_image

    if isinstance(image, ImageSeries):
        return image
    if isinstance(image, (str, Path)):
        return read_image(image, voxel_size=(1.0, 1.0, 1.0))
    arr = np.asarray(image) if not hasattr(image, "chunks") else image
    if len(arr.shape) != 4:
        raise ShapeError(
            f"predict_blockwise takes a (T, Z, Y, X) movie, got shape {tuple(arr.shape)}; "
            "promote 2D+t data to Z = 1 (celltrack.io.as_movie)"
        )
    return read_image(arr, voxel_size=(1.0, 1.0, 1.0))


def _in_memory(series: Any) -> bool:
    from celltrack.io.series import ArrayBackend

    backend = series._backend
    return (
        isinstance(backend, ArrayBackend)
        and isinstance(backend.array, np.ndarray)
        and not isinstance(backend.array, np.memmap)
    )


def _fingerprint(meta: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()


def _prepare_store(path: Path, key: str, resume: bool) -> bool:
    """Create or check the output folder; True when it already holds this problem."""
    manifest = path / "_manifest.json"
    if path.exists() and resume and manifest.exists():
        try:
            found = json.loads(manifest.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"'{manifest}' is unreadable ({exc}); delete '{path}' or pass resume=False"
            ) from None
        if found != key:
            raise CheckpointError(
                f"'{path}' holds a prediction of a different problem (the model, movie, block "
                "grid or settings changed); use another output path or pass resume=False to "
                "overwrite it"
            )
        return True
    if path.exists():
        ours = manifest.exists() or (path / "zarr.json").exists()
        if not path.is_dir() or (any(path.iterdir()) and not ours):
            raise CheckpointError(
                f"'{path}' exists and is not a block-wise prediction; choose another output path"
            )
        shutil.rmtree(path)
    return False


def _norm_file(path: Path, t: int) -> Path:
    return path / "_stats" / f"norm_t{t:06d}.json"


def _gn_file(path: Path, t: int) -> Path:
    return path / "_stats" / f"gn_t{t:06d}.npz"


def _norms_of(
    job: _Job, t: int, norms: dict[int, FrameNormalization]
) -> dict[int, FrameNormalization]:
    """The normalisations of the frames the network reads for frame ``t`` (sent per task)."""
    return {f: norms[f] for f in job.input_frames(t)}


def _run(
    executor: Any, fn: Any, tasks: Iterable[Any], total: int, desc: str, progress: bool
) -> Iterator[Any]:
    bar = progress_bar(total=total, desc=desc, disable=not progress, leave=False, unit="block")
    try:
        for result in executor.imap_unordered(fn, tasks):
            bar.update(1)
            yield result
    finally:
        bar.close()


def predict_blockwise(
    model: Any,
    image: Any,
    out: str | Path,
    cfg: BlockwisePredictConfig | None = None,
    *,
    normalization: NormalizeConfig | None = None,
    median_correction: bool = False,
    frames: Sequence[int] | None = None,
    head: str | None = None,
    channels: Sequence[int] | None = None,
    executor: Any = "processes",
    resume: bool = True,
    stop_after: int | None = None,
    progress: bool = False,
) -> BlockwiseResult:
    """Predict a network's map block by block into a chunked Zarr array.

    Parameters
    ----------
    model : DetectionUNet, FlowUNet or LinajeaUNet
        The network; a :class:`~celltrack.detect.model.DetectionUNet` (or another
        detector, serial executor only) gives 3 class probabilities, a
        :class:`~celltrack.flow.model.FlowUNet` the backward flow of frame t towards
        t−1 in µm (z, y, x), a :class:`~celltrack.nn.linajea_unet.LinajeaUNet` the cell
        indicator (1 channel) or the movement vectors (towards the parents in t−1, µm,
        z, y, x; z is 0 for 2D+t) from its window of frames.
    image : ImageSeries, path or array, shape (T, Z, Y, X)
        The movie, read lazily block by block (:func:`celltrack.io.images.read_block`).
        In-memory arrays are first copied to ``out/_input.zarr`` for worker processes.
    out : str or Path
        Output Zarr group (created; see the module docstring for its layout).
    cfg : BlockwisePredictConfig, optional
        Block core, halo, output dtype, GroupNorm handling, workers, threads, device.
    normalization : NormalizeConfig, optional
        Per-frame normalisation; must be the training's (default percentile 1 – 99.8).
    median_correction : bool
        Median-correct z slices first (as ``PredictConfig.median_correction``).
    frames : sequence of int, optional
        Frames to predict (default all; flow and movement: 1 … T−1).
    head : {'indicator', 'movement'}, optional
        The LinajeaUNet head to predict; needed for a joint model (both heads).
    channels : sequence of int, optional
        Output channels to store (default all), e.g. ``(2,)``: only the detector's centre
        probability, which is all spot extraction reads (a third of the disk and writes).
    executor : str, distributed.Client or executor
        ``"processes"`` (default; ``cfg.n_workers`` spawned workers with
        ``cfg.num_threads`` or 1 torch thread each), ``"serial"``, a dask Client or a
        scheduler address (the output path must be shared by the workers).
    resume : bool
        Keep finished blocks of an earlier run of the same problem (default); False
        deletes ``out`` first.
    stop_after : int, optional
        Predict at most this many blocks in this call and return (a time-boxed run; call
        again to continue).
    progress : bool
        Show progress bars.

    Returns
    -------
    BlockwiseResult

    Raises
    ------
    InvalidInputError
        On a model that is neither a detector, a flow model nor a LinajeaUNet, a head that
        the model lacks, bad frames or bad channels.
    ShapeError
        If the movie is not (T, Z, Y, X) or does not fit the model (e.g. Z > 1 for a 2D
        model), or a flow movie has fewer than 2 frames.
    CheckpointError
        If ``out`` holds a prediction of another problem and ``resume`` is True.

    Notes
    -----
    With ``group_norm='frame'`` a detection U-Net with L GroupNorm layers takes L partial
    passes over the blocks before the prediction pass (statistics are stored, so a rerun
    skips them); flow U-Nets have no GroupNorm.
    """
    import torch
    import zarr

    from celltrack import __version__
    from celltrack.scale.norms import NormStats, group_norm_layers
    from celltrack.solve.blockwise.executors import make_executor

    cfg = cfg or BlockwisePredictConfig()
    normalization = normalization or NormalizeConfig()
    kind = _model_kind(model, head)
    series = _as_series(image)
    n_t, *frame_shape = series.shape
    window = (0, 0)
    if kind == "detection":
        from celltrack.detect.detector import check_detector_input

        check_detector_input(model, (1, 1, *frame_shape))
    elif kind in ("indicator", "movement"):
        from celltrack.detect.indicator_model import check_indicator_model
        from celltrack.flow.movement_model import check_movement_model

        if kind == "indicator":
            check_indicator_model(model, frame_shape)
        else:
            check_movement_model(model, two_d=frame_shape[0] == 1)
        window = model.window
    elif model.two_d and frame_shape[0] != 1:
        raise ShapeError(
            f"this is a 2D+t flow model but the frames have Z = {frame_shape[0]}; train a 3D "
            "model for 3D data"
        )
    backward = kind in ("flow", "movement")  # frame t against its parents in t − 1
    default = range(1, n_t) if backward else range(n_t)
    wanted = sorted({int(t) for t in (default if frames is None else frames)})
    low = 1 if backward else 0
    if kind == "flow" and n_t < 2:
        raise ShapeError(f"flow needs at least 2 frames, the movie has {n_t}")
    if any(not low <= t < n_t for t in wanted):
        raise InvalidInputError(
            f"frames must lie in [{low}, {n_t - 1}] for {kind} on a movie of {n_t} frames, got "
            f"{[t for t in wanted if not low <= t < n_t]}"
        )
    names = CHANNELS[kind]
    keep = tuple(range(len(names))) if channels is None else tuple(int(c) for c in channels)
    if not keep or len(set(keep)) != len(keep) or not all(0 <= c < len(names) for c in keep):
        raise InvalidInputError(
            f"channels must be distinct indices of the {kind} output {names}, got "
            f"{None if channels is None else list(channels)}"
        )
    divisor = network_divisor(model)
    halo = cfg.halo if cfg.halo is not None else receptive_halo(model)
    grid = BlockGrid(frame_shape, cfg.block_shape, halo, divisor)
    layers = group_norm_layers(model) if cfg.group_norm == "frame" else []
    token = _state_token(model)
    meta = {
        "kind": kind,
        "channels": list(keep),
        "window": list(window),
        "model": token,
        "movie": [series.source, list(series.shape), str(series.dtype)],
        "grid": grid.describe(),
        "normalization": normalization.model_dump(mode="json"),
        "median_correction": bool(median_correction),
        "frames": wanted,
        "dtype": cfg.dtype,
        "group_norm": cfg.group_norm,
    }
    key = _fingerprint(meta)
    root = Path(out)
    resumed = _prepare_store(root, key, resume)
    t_start = time.perf_counter()
    if not resumed:
        root.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(root, mode="w")
        arr = group.create_array(
            "prediction",
            shape=(n_t, len(keep), *frame_shape),
            chunks=(1, len(keep), *grid.block_shape),
            dtype=cfg.dtype,
            fill_value=np.nan,
        )
        arr.attrs.update(
            {
                "celltrack_version": __version__,
                "kind": kind,
                "axes": "TCZYX",
                "channels": [names[c] for c in keep],
                "frames": wanted,
                "block_shape": list(grid.block_shape),
                "halo": list(grid.halo),
                "config": cfg.model_dump(mode="json"),
                "normalization": normalization.model_dump(mode="json"),
                "median_correction": bool(median_correction),
            }
        )
        (root / "_stats").mkdir(exist_ok=True)
        (root / "_blocks").mkdir(exist_ok=True)
    from celltrack.io.atomic import atomic_write_text

    serial = executor == "serial" or getattr(executor, "name", None) == "serial"
    model_path: str | None = str(root / "_model.pt")
    if not (root / "_model.pt").exists():
        if not _save_model(model, kind, root / "_model.pt"):
            model_path = None
    if model_path is None and not serial:
        raise InvalidInputError(
            f"a {type(model).__name__} cannot be saved as a celltrack checkpoint for worker "
            "processes; pass executor='serial' or use a DetectionUNet"
        )
    if serial:
        _register(copy.deepcopy(model), token, cfg.device)
    if _in_memory(series) and not serial:
        from celltrack.io.images import read_image, write_image

        spill = root / "_input.zarr"
        if not spill.exists():
            write_image(series, spill, ome=False)
        series = read_image(spill, voxel_size=series.voxel_size)
    if not resumed:
        atomic_write_text(
            root / "_manifest.json", json.dumps({"fingerprint": key, **meta}, indent=2)
        )

    threads = cfg.num_threads if not serial else None
    if not serial and threads is None:
        threads = 1
    job = _Job(
        series=series,
        out=str(root / "prediction"),
        kind=kind,
        model=_ModelRef(kind, model_path, token, _param_dtype(model)),
        grid=grid,
        device=cfg.device,
        threads=threads,
        group_norm=cfg.group_norm,
        dtype=cfg.dtype,
        window=window,
        channels=keep,
    )
    owned = isinstance(executor, str)
    if executor == "processes":
        ex = make_executor("processes", cfg.n_workers, start_method=cfg.start_method)
    else:
        ex = make_executor(executor)
    from celltrack.nn.threads import torch_threads

    stats: dict[str, Any] = {"blocks": len(grid) * len(wanted), "resumed": resumed}
    peak = 0
    try:
        with torch_threads(cfg.num_threads if serial else torch.get_num_threads()):
            # --- 1. per-frame intensity statistics
            t0 = time.perf_counter()
            inputs = sorted({f for t in wanted for f in job.input_frames(t)})
            norms: dict[int, FrameNormalization] = {}
            for t in inputs:
                file = _norm_file(root, t)
                if file.exists():
                    norms[t] = FrameNormalization.from_dict(json.loads(file.read_text("utf-8")))
            todo = [t for t in inputs if t not in norms]
            parts: dict[int, list[list[SliceSummary]]] = {
                t: [[] for _ in range(frame_shape[0])] for t in todo
            }
            tasks = ((job, t, b) for t in todo for b in range(len(grid)))
            for t, z0, summaries, rss in _run(
                ex, _summary_task, tasks, len(todo) * len(grid), "intensity", progress
            ):
                peak = max(peak, rss)
                for dz, s in enumerate(summaries):
                    slot = parts[t][z0 + dz]
                    slot.append(s)
                    if len(slot) > 8:
                        slot[:] = [merge_summaries(slot)]
            for t in todo:
                merged = [merge_summaries(p) for p in parts.pop(t)]
                norms[t] = frame_normalization(
                    merged, normalization, median_correction=median_correction
                )
                if not norms[t].exact:
                    logger.info(
                        "frame %d: float data with many distinct values per block slice; its "
                        "percentiles are approximate (see celltrack.scale.intensity)",
                        t,
                    )
                atomic_write_text(_norm_file(root, t), json.dumps(norms[t].to_dict()))
            stats["intensity_s"] = time.perf_counter() - t0
            # --- 2. whole-frame GroupNorm statistics, one layer at a time
            t0 = time.perf_counter()
            frozen: dict[int, list] = {}
            for t in wanted:
                file = _gn_file(root, t)
                if file.exists():
                    with np.load(file) as data:
                        frozen[t] = [
                            (data[f"mean{i}"], data[f"var{i}"]) for i in range(len(layers))
                        ]
            done_blocks = {p.name for p in (root / "_blocks").iterdir()}
            gn_todo = [
                t
                for t in wanted
                if t not in frozen
                and layers
                and any(f"t{t:06d}_b{b:07d}" not in done_blocks for b in range(len(grid)))
            ]
            for t in gn_todo:
                frozen[t] = []
            for i, layer in enumerate(layers):
                if not gn_todo:
                    break
                acc = {
                    t: [np.zeros(layer.num_groups), np.zeros(layer.num_groups), 0] for t in gn_todo
                }
                tasks = (
                    (job, t, b, i, _norms_of(job, t, norms), frozen[t])
                    for t in gn_todo
                    for b in range(len(grid))
                )
                for t, sums, squares, count in _run(
                    ex,
                    _gn_task,
                    tasks,
                    len(gn_todo) * len(grid),
                    f"groupnorm {i + 1}/{len(layers)}",
                    progress,
                ):
                    acc[t][0] += sums
                    acc[t][1] += squares
                    acc[t][2] += count
                for t in gn_todo:
                    frozen[t].append(NormStats.finish(*acc[t]))
            from celltrack.io.atomic import atomic_path

            for t in gn_todo:
                with atomic_path(_gn_file(root, t)) as tmp:
                    with open(tmp, "wb") as handle:
                        np.savez(
                            handle,
                            **{f"mean{i}": m for i, (m, _) in enumerate(frozen[t])},
                            **{f"var{i}": v for i, (_, v) in enumerate(frozen[t])},
                        )
            stats["groupnorm_s"] = time.perf_counter() - t0
            # --- 3. prediction
            t0 = time.perf_counter()
            pending = [
                (t, b)
                for t in wanted
                for b in range(len(grid))
                if f"t{t:06d}_b{b:07d}" not in done_blocks
            ]
            stats["done_before"] = stats["blocks"] - len(pending)
            if stop_after is not None:
                pending = pending[: max(int(stop_after), 0)]
            tasks = (
                (job, t, b, _norms_of(job, t, norms), frozen.get(t, []))
                for t, b in pending
            )
            seconds = 0.0
            for _t, _b, sec, rss in _run(
                ex, _predict_task, tasks, len(pending), "blocks", progress
            ):
                seconds += sec
                peak = max(peak, rss)
            stats["predicted"] = len(pending)
            stats["predict_s"] = time.perf_counter() - t0
            stats["block_s"] = seconds
    finally:
        if owned:
            ex.close()
        if serial:
            _MODELS.clear()
            _ARRAYS.clear()
    stats["seconds"] = time.perf_counter() - t_start
    stats["worker_peak_rss_bytes"] = peak
    array = zarr.open_array(root / "prediction", mode="r")
    return BlockwiseResult(root, array, kind, wanted, grid, stats)
