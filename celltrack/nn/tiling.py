"""Tiled inference over one volume, blended seamlessly.

Overlapping tiles are weighted by separable linear ramps over the overlap (full weight
at the volume border) and the weighted sum is divided by the summed weights, so the
result is exact wherever tiles overlap, whatever the tiling (ELEPHANT summed without
normalising, which is exact only where the ramps tile perfectly). Model memory is
bounded by ``tile_shape × batch_size``. On 2D+t volumes (Z = 1) a tile configured with
z > 1 becomes the in-plane tile of the same voxel budget
(:func:`celltrack.nn.crops.planar_shape`), e.g. 32 × 128 × 128 → 1 × 720 × 720.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from celltrack.errors import ShapeError
from celltrack.nn.crops import planar_shape
from celltrack.progress import progress_bar

__all__ = ["evaluating", "predict_tiled", "tile_starts"]


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

    Returns
    -------
    ndarray, shape (out_channels, Z, Y, X), float32
        Blended outputs.
    """
    if volume.ndim != 4:
        raise ShapeError(f"predict_tiled expects a (C, Z, Y, X) volume, got shape {volume.shape}")
    shape = volume.shape[1:]
    tile = [min(int(t), s) for t, s in zip(planar_shape(tile_shape, shape), shape)]
    ov = [min(int(o), max(t - 1, 0)) for o, t in zip(overlap, tile)]
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
