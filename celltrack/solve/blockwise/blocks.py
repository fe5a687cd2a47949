"""Tiling of a candidate graph's region of interest into blocks, and conflict colouring.

The region of interest (ROI) spans ``(t, z, y, x)``: frames (inclusive integer range) and
µm. It is cut into a regular grid of *write ROIs* of ``block_size``; each block's *read
ROI* is its write ROI grown by ``context`` on both sides. Blocks at the grid's outer faces
extend their write ROI to infinity on that side, so every node (even one outside the
nominal ROI) belongs to exactly one block.

Two blocks *conflict* when the read ROI of one overlaps the write ROI of the other; they
must never be solved at the same time. Blocks are coloured so that blocks of one colour
never conflict (daisy-style level stride: along an axis with block size ``s`` and context
``c``, blocks whose index differs by ``k = 1 + ceil(c / s)`` or more cannot conflict), so
all blocks of one colour can be solved in parallel. With ``c <= s`` on every axis, 2⁴ = 16
colours suffice.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from celltrack.errors import ConfigError, InvalidInputError, ShapeError

__all__ = ["BlockGrid", "roi_of"]

AXES = ("t", "z", "y", "x")


def roi_of(t: np.ndarray, positions: np.ndarray, roi_um: object | None = None) -> np.ndarray:
    """The ROI ``[[t_min, t_max], [z_lo, z_hi], [y_lo, y_hi], [x_lo, x_hi]]`` as (4, 2) floats.

    Parameters
    ----------
    t : ndarray, shape (N,)
        Node frames.
    positions : ndarray, shape (N, 3)
        Node positions (z, y, x) in µm.
    roi_um : array_like, shape (4, 2), optional
        An explicit ROI (e.g. ``graph.attrs["roi_um"]``); it is widened to contain every
        node. Without it the bounding box of the nodes is used.
    """
    roi = np.zeros((4, 2), np.float64)
    if t.size:
        roi[0] = (t.min(), t.max())
        roi[1:, 0] = positions.min(axis=0)
        roi[1:, 1] = positions.max(axis=0)
    if roi_um is not None:
        given = np.asarray(roi_um, dtype=np.float64)
        if given.shape != (4, 2):
            raise ShapeError(
                "graph attrs['roi_um'] must be [[t_min, t_max], [z_lo, z_hi], [y_lo, y_hi], "
                f"[x_lo, x_hi]] (shape (4, 2)), got shape {given.shape}"
            )
        if t.size:
            roi[:, 0] = np.minimum(roi[:, 0], given[:, 0])
            roi[:, 1] = np.maximum(roi[:, 1], given[:, 1])
        else:
            roi = given.copy()
    return roi


@dataclass(frozen=True)
class BlockGrid:
    """A regular grid of blocks over a (t, z, y, x) ROI.

    Parameters
    ----------
    roi : ndarray, shape (4, 2)
        ``[[t_min, t_max], [z_lo, z_hi], [y_lo, y_hi], [x_lo, x_hi]]``; frames inclusive,
        µm otherwise.
    block_size : ndarray, shape (4,)
        Write-ROI size per axis (frames, µm, µm, µm); ``inf`` means one block along the axis.
    context : ndarray, shape (4,)
        Read-ROI growth on each side (frames, µm, µm, µm), >= 0.

    Attributes
    ----------
    shape : tuple of int
        Number of blocks per axis.
    stride : tuple of int
        Colouring stride per axis (in blocks); colours = product of the strides.
    """

    roi: np.ndarray
    block_size: np.ndarray
    context: np.ndarray

    def __post_init__(self) -> None:
        roi = np.asarray(self.roi, np.float64)
        size = np.asarray(self.block_size, np.float64)
        ctx = np.asarray(self.context, np.float64)
        if roi.shape != (4, 2) or size.shape != (4,) or ctx.shape != (4,):
            raise ShapeError(
                f"BlockGrid needs roi (4, 2), block_size (4,), context (4,); got "
                f"{roi.shape}, {size.shape}, {ctx.shape}"
            )
        if np.any(~(size > 0)):
            raise ConfigError(
                f"block_size must be > 0 on every axis (t, z, y, x), got {size.tolist()}"
            )
        if np.any(~np.isfinite(ctx)) or np.any(ctx < 0):
            raise ConfigError(f"context must be finite and >= 0 on every axis, got {ctx.tolist()}")
        object.__setattr__(self, "roi", roi)
        object.__setattr__(self, "block_size", size)
        object.__setattr__(self, "context", ctx)

    # ------------------------------------------------------------------ geometry
    @property
    def origin(self) -> np.ndarray:
        """Lower corner of the grid, shape (4,)."""
        return self.roi[:, 0]

    @property
    def extent(self) -> np.ndarray:
        """ROI size per axis (frames counted inclusively), shape (4,)."""
        ext = self.roi[:, 1] - self.roi[:, 0]
        ext[0] += 1.0
        return ext

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of blocks per axis (t, z, y, x)."""
        n = []
        for ext, size in zip(self.extent, self.block_size):
            n.append(1 if not np.isfinite(size) else max(1, math.ceil(ext / size - 1e-9)))
        return tuple(n)

    @property
    def num_blocks(self) -> int:
        """Total number of blocks."""
        return int(np.prod(self.shape))

    @property
    def stride(self) -> tuple[int, ...]:
        """Colouring stride per axis: blocks ``k`` apart along an axis never conflict."""
        out = []
        for n, size, ctx in zip(self.shape, self.block_size, self.context):
            k = 1
            if np.isfinite(size) and ctx > 0:
                k = 1 + math.ceil(ctx / size)
                while (k - 1) * size < ctx:  # guard against rounding in ctx / size
                    k += 1
            out.append(max(1, min(k, n)))
        return tuple(out)

    @property
    def num_colours(self) -> int:
        """Number of colours (levels) of the schedule."""
        return int(np.prod(self.stride))

    def block_index(self, linear: int | np.ndarray) -> np.ndarray:
        """Grid index (i_t, i_z, i_y, i_x) of linear block id(s); shape (..., 4)."""
        return np.stack(np.unravel_index(np.asarray(linear), self.shape), axis=-1)

    def linear_id(self, index: np.ndarray) -> np.ndarray:
        """Linear block id of grid indices ``index`` (..., 4)."""
        index = np.asarray(index)
        return np.ravel_multi_index(tuple(index[..., d] for d in range(4)), self.shape)

    def write_roi(self, block: int) -> np.ndarray:
        """Write ROI of a block as (4, 2) half-open intervals ``[lo, hi)``.

        Faces on the grid's outside are infinite, so nodes beyond the ROI still belong to
        a block.
        """
        idx = self.block_index(block)
        out = np.empty((4, 2))
        for d in range(4):
            n = self.shape[d]
            size = self.block_size[d]
            lo = self.origin[d] + idx[d] * size if np.isfinite(size) else -np.inf
            hi = self.origin[d] + (idx[d] + 1) * size if np.isfinite(size) else np.inf
            out[d] = (-np.inf if idx[d] == 0 else lo, np.inf if idx[d] == n - 1 else hi)
        return out

    def read_roi(self, block: int) -> np.ndarray:
        """Read ROI (write ROI grown by the context), shape (4, 2), half-open."""
        roi = self.write_roi(block)
        roi[:, 0] -= self.context
        roi[:, 1] += self.context
        return roi

    def inner_borders(self, block: int) -> np.ndarray:
        """Read-ROI faces that cut through data, shape (4, 2); ``±inf`` where none.

        A face is a *block border* when data exist beyond it, i.e. it lies strictly
        inside the global ROI. Faces at or beyond the global ROI are the data's own
        borders (first frame, field of view) and are reported as ``-inf`` / ``+inf``.
        """
        read = self.read_roi(block)
        lo = np.where(read[:, 0] > self.roi[:, 0], read[:, 0], -np.inf)
        # the t axis is inclusive: the last frame is roi[0, 1], so data lie beyond a
        # face hi only if hi <= t_max
        top = self.roi[:, 1].copy()
        top[0] += 1.0
        hi = np.where(read[:, 1] < top, read[:, 1], np.inf)
        return np.stack([lo, hi], axis=1)

    # ------------------------------------------------------------------ membership
    def block_of(self, coords: np.ndarray) -> np.ndarray:
        """Grid index of the block owning each point, shape (N, 4).

        Parameters
        ----------
        coords : ndarray, shape (N, 4)
            ``(t, z, y, x)`` per point (frames, µm).
        """
        coords = np.asarray(coords, np.float64)
        if coords.ndim != 2 or coords.shape[1] != 4:
            raise ShapeError(f"coords must be (N, 4) as (t, z, y, x), got {coords.shape}")
        out = np.zeros(coords.shape, np.int64)
        for d in range(4):
            if np.isfinite(self.block_size[d]):
                rel = np.floor((coords[:, d] - self.origin[d]) / self.block_size[d])
                out[:, d] = np.clip(rel, 0, self.shape[d] - 1).astype(np.int64)
        return out

    def in_roi(self, coords: np.ndarray, roi: np.ndarray) -> np.ndarray:
        """Boolean mask of points ``coords`` (N, 4) inside the half-open box ``roi`` (4, 2)."""
        return np.all((coords >= roi[:, 0]) & (coords < roi[:, 1]), axis=1)

    # ------------------------------------------------------------------ colouring
    def colour_of(self, index: np.ndarray) -> np.ndarray:
        """Colour of grid indices ``index`` (..., 4): blocks of one colour never conflict."""
        index = np.asarray(index)
        stride = self.stride
        colour = np.zeros(index.shape[:-1], np.int64)
        for d in range(4):
            colour = colour * stride[d] + index[..., d] % stride[d]
        return colour

    def colours(self) -> np.ndarray:
        """Colour of every block (linear order), shape (num_blocks,)."""
        return self.colour_of(self.block_index(np.arange(self.num_blocks)))

    def neighbours(self, block: int) -> np.ndarray:
        """Linear ids of the blocks that conflict with ``block`` (excluding itself)."""
        idx = self.block_index(block)
        reach = []
        for d in range(4):
            size = self.block_size[d]
            r = math.ceil(self.context[d] / size) + 1 if np.isfinite(size) else 0
            reach.append(range(max(0, idx[d] - r), min(self.shape[d], idx[d] + r + 1)))
        out = []
        for other in itertools.product(*reach):
            j = int(self.linear_id(np.asarray(other)))
            if j != block and self.conflict(block, j):
                out.append(j)
        return np.asarray(out, np.int64)

    def conflict(self, a: int, b: int) -> bool:
        """True if block ``a``'s read ROI overlaps ``b``'s write ROI or vice versa."""
        if a == b:
            return True

        def overlaps(read: np.ndarray, write: np.ndarray) -> bool:
            return bool(np.all((read[:, 0] < write[:, 1]) & (write[:, 0] < read[:, 1])))

        return overlaps(self.read_roi(a), self.write_roi(b)) or overlaps(
            self.read_roi(b), self.write_roi(a)
        )

    def describe(self) -> dict:
        """JSON-friendly description (ROI, sizes, grid shape, colours)."""

        def clean(values: np.ndarray) -> list:
            return [None if not np.isfinite(v) else float(v) for v in np.ravel(values)]

        return {
            "roi": self.roi.tolist(),
            "block_size": clean(self.block_size),
            "context": clean(self.context),
            "shape": list(self.shape),
            "num_colours": self.num_colours,
        }


def check_sizes(block_size: object, context: object) -> tuple[np.ndarray, np.ndarray]:
    """Validate block size / context (4 values each) into arrays.

    None in ``block_size`` means one block along the axis (``inf``); None in ``context``
    means no context (0).
    """
    out = []
    for name, values, none in (("block_size", block_size, np.inf), ("context", context, 0.0)):
        try:
            items = list(values)  # type: ignore[arg-type]
        except TypeError:
            raise InvalidInputError(
                f"{name} must be 4 values (frames, µm z, µm y, µm x), got {values!r}"
            ) from None
        if len(items) != 4:
            raise InvalidInputError(
                f"{name} must be 4 values (frames, µm z, µm y, µm x), got {len(items)}: {items}"
            )
        arr = np.array([none if v is None else float(v) for v in items], np.float64)
        out.append(arr)
    return out[0], out[1]
