"""Tiled inference over one volume, blended seamlessly.

Overlapping tiles are weighted by separable linear ramps over the overlap (full weight
at the volume border) and the weighted sum is divided by the summed weights, so the
result is exact wherever tiles overlap, whatever the tiling (ELEPHANT summed without
normalising, which is exact only where the ramps tile perfectly). Model memory is
bounded by ``tile_shape × batch_size``. On 2D+t volumes (Z = 1) a tile configured with
z > 1 becomes the in-plane tile of the same voxel budget
(:func:`celltrack.nn.crops.planar_shape`), e.g. 32 × 128 × 128 → 1 × 720 × 720.

By default (``tile_mode="auto"``) the configured tile is a *voxel budget*: a frame that
fits it runs as one tile, and a larger one is cut into the fewest equal tiles within the
budget that keep the overlap, with sizes rounded to the network's downsampling factor
(:func:`choose_tile_shape`), so the tiles process few voxels beyond the frame's and all
run in full batches. ``tile_mode="fixed"`` uses the configured tile as given (clipped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch

from celltrack.errors import ShapeError
from celltrack.nn.crops import planar_shape
from celltrack.progress import progress_bar

__all__ = [
    "choose_tile_shape",
    "evaluating",
    "find_unet",
    "network_divisor",
    "predict_tiled",
    "tile_for",
    "tile_starts",
]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` with ≥ ``overlap``.

    Examples
    --------
    >>> tile_starts(100, 64, 16)
    [0, 36]
    """
    if tile >= size:
        return [0]
    step = max(tile - overlap, 1)
    n = int(np.ceil((size - tile) / step)) + 1
    return [round(float(v)) for v in np.linspace(0, size - tile, n)]


def _ceil_to(value: int, multiple: int) -> int:
    return -(-int(value) // int(multiple)) * int(multiple)


def _axis_options(size: int, overlap: int, divisor: int) -> list[tuple[int, int]]:
    """(tile length, number of tiles) options along one axis, one per distinct length."""
    options: dict[int, int] = {}
    for n in range(1, min(size, 64) + 1):
        tile = _ceil_to(-(-(size + (n - 1) * overlap) // n), divisor)
        tile = min(tile, size)
        if n > 1 and tile <= overlap:
            break
        if tile not in options:
            options[tile] = len(tile_starts(size, tile, overlap))
    return sorted(options.items())


def choose_tile_shape(
    shape: Sequence[int],
    budget: int,
    overlap: Sequence[int],
    divisor: Sequence[int] = (1, 1, 1),
    keep_whole: Sequence[bool] = (False, False, False),
) -> tuple[int, int, int]:
    """The tile (z, y, x) that covers a volume with the fewest voxels processed in all.

    A volume of at most ``budget`` voxels is one tile. Otherwise, among equal tiles of at
    most ``budget`` voxels whose neighbours overlap by ``overlap``, the one minimising the
    voxels the network processes (tiles × tile voxels, each axis padded to ``divisor`` as
    the U-Net does) is chosen, ties going to fewer tiles. Axes flagged in ``keep_whole``
    are never cut (:func:`predict_tiled` keeps every axis that fits in the configured
    tile: cutting a 5-slice stack into 1-slice tiles processes fewer padded voxels, but a
    3D network trained on 5-slice crops then sees a different image).

    Parameters
    ----------
    shape : sequence of 3 int
        Volume (Z, Y, X) in voxels.
    budget : int
        Most voxels per tile (memory bound), e.g. the product of the configured tile.
    overlap : sequence of 3 int
        Overlap (z, y, x) between neighbouring tiles in voxels.
    divisor : sequence of 3 int
        The network's total downsampling factor per axis.
    keep_whole : sequence of 3 bool
        Axes whose tile is the whole axis.

    Returns
    -------
    (int, int, int)
        Tile shape in voxels, at most ``shape`` per axis.

    Examples
    --------
    >>> choose_tile_shape((1, 256, 256), 720 * 720, (4, 16, 16), (1, 8, 8))
    (1, 256, 256)
    >>> choose_tile_shape((32, 256, 256), 32 * 128 * 128, (4, 16, 16), (2, 8, 8))
    (32, 96, 136)
    >>> choose_tile_shape((5, 443, 512), 5 * 256 * 256, (0, 32, 32), (2, 8, 8))
    (2, 443, 272)
    >>> choose_tile_shape((5, 443, 512), 5 * 256 * 256, (0, 32, 32), (2, 8, 8),
    ...                   keep_whole=(True, False, False))
    (5, 240, 272)
    """
    shape = [int(s) for s in shape]
    budget = max(int(budget), 1)
    if int(np.prod(shape)) <= budget:
        return tuple(shape)  # type: ignore[return-value]
    axes = [
        [(s, 1)] if whole else _axis_options(s, int(o), int(d))
        for s, o, d, whole in zip(shape, overlap, divisor, keep_whole)
    ]
    best: tuple[float, int, tuple[int, int, int]] | None = None
    for tz, nz in axes[0]:
        for ty, ny in axes[1]:
            if tz * ty > budget:
                continue
            for tx, nx in axes[2]:
                if tz * ty * tx > budget:
                    continue
                padded = np.prod([_ceil_to(t, d) for t, d in zip((tz, ty, tx), divisor)])
                key = (float(nz * ny * nx * padded), nz * ny * nx, (tz, ty, tx))
                if best is None or key[:2] < best[:2]:
                    best = key
    if best is None:  # the budget is below the smallest tile: fall back to the smallest
        return tuple(opts[-1][0] if len(opts) == 1 else opts[0][0] for opts in axes)  # type: ignore[return-value]
    return best[2]


def find_unet(model: Any) -> Any:
    """The :class:`celltrack.nn.UNet` inside a network (itself, or its first sub-module
    that is one), or None."""
    from celltrack.nn.unet import UNet

    if isinstance(model, UNet):
        return model
    modules = getattr(model, "modules", None)
    if modules is None:
        return None
    return next((m for m in modules() if isinstance(m, UNet)), None)


def network_divisor(model: Any) -> tuple[int, int, int]:
    """Total downsampling factor (z, y, x) of a network (1, 1, 1 when it has no U-Net).

    Parameters
    ----------
    model : torch.nn.Module
        A detection, flow or Linajea network (anything holding a
        :class:`celltrack.nn.UNet`), or an object with a ``divisor`` attribute.
    """
    unet = find_unet(model)
    div = unet.divisor if unet is not None else getattr(model, "divisor", None)
    if div is None:
        return (1, 1, 1)
    return tuple(int(v) for v in div)  # type: ignore[return-value]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    w = np.ones(length, np.float32)
    if overlap <= 0:
        return w
    ramp = (np.arange(overlap, dtype=np.float32) + 1) / (overlap + 1)
    n = min(overlap, length)
    if not at_start:
        w[:n] = np.minimum(w[:n], ramp[:n])
    if not at_end:
        w[-n:] = np.minimum(w[-n:], ramp[:n][::-1])
    return w


def _tiles(
    shape: Sequence[int], tile: Sequence[int], overlap: Sequence[int]
) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    starts = [tile_starts(s, t, o) for s, t, o in zip(shape, tile, overlap)]
    for z in starts[0]:
        for y in starts[1]:
            for x in starts[2]:
                origin = (z, y, x)
                sl = tuple(slice(o, min(o + t, s)) for o, t, s in zip(origin, tile, shape))
                ramps = [
                    _ramp(s.stop - s.start, ov, s.start == 0, s.stop == full)
                    for s, ov, full in zip(sl, overlap, shape)
                ]
                weight = ramps[0][:, None, None] * ramps[1][None, :, None] * ramps[2][None, None, :]
                yield sl, weight


@contextmanager
def evaluating(model: torch.nn.Module, device: str | torch.device) -> Iterator[torch.nn.Module]:
    """Run a block with ``model`` in eval mode on ``device``; restore its training mode after.

    Parameters
    ----------
    model : torch.nn.Module
        The network (moved to ``device`` in place).
    device : str or torch.device
        Where the model runs.
    """
    was_training = model.training
    model.eval()
    model.to(device)
    try:
        yield model
    finally:
        model.train(was_training)


def tile_for(
    shape: Sequence[int],
    tile_shape: Sequence[int],
    overlap: Sequence[int],
    tile_mode: Literal["auto", "fixed"],
    divisor: Sequence[int],
) -> list[int]:
    """The tile (z, y, x) :func:`predict_tiled` uses on a volume of ``shape`` (voxels).

    ``tile_shape`` is made planar for 2D+t volumes (:func:`planar_shape`). 'fixed': it,
    clipped to the volume. 'auto': :func:`choose_tile_shape` within its voxel budget,
    never cutting an axis that fits in it.
    """
    configured = [int(c) for c in planar_shape(tile_shape, shape)]
    if tile_mode == "fixed":
        return [min(c, int(s)) for c, s in zip(configured, shape)]
    whole = [int(s) <= c for s, c in zip(shape, configured)]
    budget = int(np.prod(configured))
    return list(choose_tile_shape(shape, budget, overlap, divisor, keep_whole=whole))


@torch.inference_mode()
def predict_tiled(
    model: Callable[[torch.Tensor], torch.Tensor],
    volume: np.ndarray,
    out_channels: int,
    *,
    tile_shape: Sequence[int],
    overlap: Sequence[int],
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    progress: bool = False,
    tile_mode: Literal["auto", "fixed"] = "auto",
    divisor: Sequence[int] | None = None,
) -> np.ndarray:
    """Run ``model`` over ``volume`` tile by tile and blend the outputs.

    Parameters
    ----------
    model : callable
        Maps a ``(B, C_in, z, y, x)`` float tensor to ``(B, out_channels, z, y, x)``.
    volume : ndarray, shape (C_in, Z, Y, X)
        Normalised input (float32).
    out_channels : int
        Number of output channels.
    tile_shape : sequence of 3 int
        Tile size (z, y, x) in voxels; clipped to the volume. On a volume with Z = 1 a
        tile with z > 1 becomes the in-plane tile of the same voxel budget
        (:func:`~celltrack.nn.crops.planar_shape`).
    overlap : sequence of 3 int
        Overlap (z, y, x) in voxels between neighbouring tiles.
    batch_size : int
        Tiles per forward pass. Edge tiles of a different size run in their own batch.
    device : str or torch.device
        Where the model runs.
    progress : bool
        Show a tqdm bar over tiles.
    tile_mode : {'auto', 'fixed'}
        'auto' (default): ``tile_shape`` is a voxel budget; a volume within it is one
        tile, a larger one gets the fewest equal tiles within it
        (:func:`choose_tile_shape`), never cutting an axis that fits in ``tile_shape``.
        'fixed': tiles of ``tile_shape`` (clipped).
        Both give the same tiles when the volume fits ``tile_shape`` on every axis.
    divisor : sequence of 3 int, optional
        The network's total downsampling factor, to which 'auto' rounds tile sizes
        (default: :func:`network_divisor` of ``model``; callers that wrap the network in
        a function pass it).

    Returns
    -------
    ndarray, shape (out_channels, Z, Y, X), float32
        Blended outputs.
    """
    if volume.ndim != 4:
        raise ShapeError(f"predict_tiled expects a (C, Z, Y, X) volume, got shape {volume.shape}")
    shape = volume.shape[1:]
    if tile_mode not in ("auto", "fixed"):
        raise ValueError(f"tile_mode must be 'auto' or 'fixed', got {tile_mode!r}")
    if divisor is None:  # only 'auto' rounds to it
        divisor = network_divisor(model) if tile_mode == "auto" else (1, 1, 1)
    tile = tile_for(shape, tile_shape, overlap, tile_mode, divisor)
    ov = [min(int(o), max(t - 1, 0)) for o, t in zip(overlap, tile)]
    if list(tile) == list(shape):  # one tile: its weights are all 1, so skip the blending
        with progress_bar(total=1, desc="tiles", disable=not progress, leave=False) as bar:
            x = torch.from_numpy(np.ascontiguousarray(volume[None])).float().to(device)
            pred = model(x)[0].float().cpu().numpy()
            bar.update(1)
        return np.ascontiguousarray(pred, dtype=np.float32)
    out = np.zeros((out_channels, *shape), np.float32)
    norm = np.zeros(shape, np.float32)
    tiles = list(_tiles(shape, tile, ov))
    groups: dict[tuple[int, ...], list] = {}
    for sl, w in tiles:
        groups.setdefault(tuple(s.stop - s.start for s in sl), []).append((sl, w))
    bar = progress_bar(total=len(tiles), desc="tiles", disable=not progress, leave=False)
    for members in groups.values():
        for i in range(0, len(members), batch_size):
            chunk = members[i : i + batch_size]
            batch = np.stack([volume[(slice(None), *sl)] for sl, _ in chunk])
            pred = model(torch.from_numpy(np.ascontiguousarray(batch)).float().to(device))
            pred = pred.float().cpu().numpy()
            for (sl, w), p in zip(chunk, pred):
                out[(slice(None), *sl)] += p * w
                norm[sl] += w
            bar.update(len(chunk))
    bar.close()
    out /= np.maximum(norm, 1e-12)
    return out
