"""Block grids over a frame's (Z, Y, X) and the halo a network needs to predict a block exactly.

A :class:`BlockGrid` cuts a frame into *cores* (the regions each block writes) of
``block_shape`` voxels and gives each block a *read* region: its core grown by ``halo``
voxels per side and clipped to the frame. Core and read starts are multiples of the
network's total downsampling factor (:func:`celltrack.nn.tiling.network_divisor`), so
max-pooling windows in a block line up with those of the whole frame, and a halo of at
least the network's receptive radius (:func:`receptive_halo`) makes every core voxel see
exactly what it sees in a whole-frame pass. Reads clipped at the frame border see the same
zero padding as the whole frame, and a read that ends at the frame's last voxel is padded
by the U-Net exactly as the whole frame is (replicate padding to a multiple of the
divisor). """

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from celltrack.errors import InvalidInputError, ShapeError

__all__ = ["Block", "BlockGrid", "receptive_halo"]

Triple = tuple[int, int, int]


def _ceil_to(value: int, multiple: int) -> int:
    return -(-int(value) // int(multiple)) * int(multiple)


def _triple(value: Sequence[int] | int, name: str, *, minimum: int) -> Triple:
    if isinstance(value, (int, np.integer)):
        value = (int(value),) * 3
    values = tuple(int(v) for v in value)
    if len(values) != 3 or any(v < minimum for v in values):
        raise InvalidInputError(
            f"{name} must be 3 integers (z, y, x) ≥ {minimum} voxels, got {tuple(value)}"
        )
    return values  # type: ignore[return-value]


@dataclass(frozen=True)
class Block:
    """One block of a :class:`BlockGrid`.

    Attributes
    ----------
    index : int
        Linear block id (C order over the grid).
    grid_index : (int, int, int)
        Position in the grid (z, y, x).
    core : tuple of 3 slice
        Region of the frame (voxels) the block writes; cores tile the frame.
    read : tuple of 3 slice
        Region of the frame (voxels) the block reads: the core plus the halo, clipped.
    frame_shape : (int, int, int)
        Shape (Z, Y, X) of the frame.
    """

    index: int
    grid_index: Triple
    core: tuple[slice, slice, slice]
    read: tuple[slice, slice, slice]
    frame_shape: Triple

    @property
    def core_in_read(self) -> tuple[slice, slice, slice]:
        """The core relative to the read region (to crop a block's output)."""
        return tuple(  # type: ignore[return-value]
            slice(c.start - r.start, c.stop - r.start) for c, r in zip(self.core, self.read)
        )

    @property
    def read_shape(self) -> Triple:
        """Shape (z, y, x) of the read region in voxels."""
        return tuple(s.stop - s.start for s in self.read)  # type: ignore[return-value]

    @property
    def core_shape(self) -> Triple:
        """Shape (z, y, x) of the core in voxels."""
        return tuple(s.stop - s.start for s in self.core)  # type: ignore[return-value]

    def core_in_padded(self, divisor: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """Core bounds in the read region padded (at its end) to a multiple of ``divisor``.

        A core that ends at the frame's last voxel extends to the padded end, since a
        whole-frame pass pads the frame there too. Used to accumulate normalisation-layer
        statistics over exactly the voxels of a whole-frame pass.

        Returns
        -------
        tuple of 3 (int, int)
            ``(lo, hi)`` per axis in voxels of the padded read region.
        """
        out = []
        for c, r, full, d in zip(self.core, self.read, self.frame_shape, divisor):
            lo = c.start - r.start
            hi = c.stop - r.start
            if c.stop == full:
                hi = _ceil_to(r.stop - r.start, d)
            out.append((lo, hi))
        return tuple(out)


class BlockGrid:
    """A grid of blocks over a frame of shape (Z, Y, X), aligned to a network's divisor.

    Parameters
    ----------
    frame_shape : sequence of 3 int
        Frame shape (Z, Y, X) in voxels.
    block_shape : sequence of 3 int
        Core shape (z, y, x) in voxels; rounded up to a multiple of ``divisor`` and
        clipped to the frame (rounded up to the divisor).
    halo : sequence of 3 int
        Context (z, y, x) in voxels read on each side of a core; rounded up to a multiple
        of ``divisor``.
    divisor : sequence of 3 int
        The network's total downsampling factor (:func:`celltrack.nn.tiling.network_divisor`).

    Examples
    --------
    >>> grid = BlockGrid((1, 100, 70), (1, 32, 32), (0, 8, 8), (1, 4, 4))
    >>> grid.shape, len(grid)
    ((1, 4, 3), 12)
    >>> [(s.start, s.stop) for s in grid[1].core]
    [(0, 1), (0, 32), (32, 64)]
    >>> [(s.start, s.stop) for s in grid[1].read]
    [(0, 1), (0, 40), (24, 70)]
    """

    def __init__(
        self,
        frame_shape: Sequence[int],
        block_shape: Sequence[int],
        halo: Sequence[int] | int = 0,
        divisor: Sequence[int] | int = 1,
    ) -> None:
        self.frame_shape = _triple(frame_shape, "frame_shape", minimum=1)
        self.divisor = _triple(divisor, "divisor", minimum=1)
        block = _triple(block_shape, "block_shape", minimum=1)
        halo = _triple(halo, "halo", minimum=0)
        self.block_shape: Triple = tuple(  # type: ignore[assignment]
            min(_ceil_to(b, d), _ceil_to(f, d))
            for b, d, f in zip(block, self.divisor, self.frame_shape)
        )
        self.halo: Triple = tuple(_ceil_to(h, d) for h, d in zip(halo, self.divisor))  # type: ignore[assignment]
        self.shape: Triple = tuple(  # type: ignore[assignment]
            -(-f // b) for f, b in zip(self.frame_shape, self.block_shape)
        )

    def __len__(self) -> int:
        return int(np.prod(self.shape))

    def __repr__(self) -> str:
        return (
            f"BlockGrid(frame_shape={self.frame_shape}, block_shape={self.block_shape}, "
            f"halo={self.halo}, divisor={self.divisor}, blocks={self.shape})"
        )

    def __getitem__(self, index: int) -> Block:
        n = len(self)
        if not -n <= int(index) < n:
            raise IndexError(f"block {index} is out of range for a grid of {n} blocks")
        gi = tuple(int(v) for v in np.unravel_index(int(index) % n, self.shape))
        core, read = [], []
        for i, b, h, f in zip(gi, self.block_shape, self.halo, self.frame_shape):
            lo, hi = i * b, min((i + 1) * b, f)
            core.append(slice(lo, hi))
            read.append(slice(max(lo - h, 0), min(hi + h, f)))
        return Block(int(index) % n, gi, tuple(core), tuple(read), self.frame_shape)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Block]:
        for i in range(len(self)):
            yield self[i]

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description (used in store fingerprints)."""
        return {
            "frame_shape": list(self.frame_shape),
            "block_shape": list(self.block_shape),
            "halo": list(self.halo),
            "divisor": list(self.divisor),
        }


# ---------------------------------------------------------------------------- networks
def _analytic_halo(unet: Any) -> Triple:
    """Receptive radius of a :class:`celltrack.nn.UNet` from its layers (an upper bound)."""
    from torch import nn

    def radius(block: Any) -> np.ndarray:
        # convolutions inside a block run in sequence (a 1x1 projection adds nothing)
        r = np.zeros(3, np.int64)
        for m in block.modules():
            if isinstance(m, nn.Conv3d):
                k = np.asarray(m.kernel_size, np.int64)
                d = np.asarray(m.dilation, np.int64)
                r += (k // 2) * d
        return r

    factors = [np.asarray(f, np.int64) for f in unet.pool_factors]
    scale = np.ones(3, np.int64)
    r = np.zeros(3, np.int64)
    scales = []
    for level, block in enumerate(unet.encoders):
        r += radius(block) * scale
        scales.append(scale.copy())
        if level < len(factors):
            r += (factors[level] - 1) * scale  # pooling window
            scale = scale * factors[level]
    for block, level in zip(unet.decoders, reversed(range(len(factors)))):
        fine = scales[level]
        r += (factors[level] - 1) * fine  # nearest upsampling: a coarse voxel spans p fine ones
        r += radius(block) * fine
    r += radius(unet.head)
    return tuple(int(v) for v in r)  # type: ignore[return-value]


def _probe_halo(model: Any, shape: Sequence[int], in_channels: int, seeds: int = 2) -> Triple:
    """Receptive radius measured by back-propagating from the centre voxel of the output."""
    import torch

    from celltrack.scale.norms import NormStats

    shape = _triple(shape, "probe_shape", minimum=1)
    centre = [s // 2 for s in shape]
    support = np.zeros(shape, bool)
    was_training = model.training
    model.eval()
    stats = NormStats(model)
    try:
        stats.freeze_identity()  # normalisation layers become local (fixed statistics)
        for seed in range(seeds):
            g = torch.Generator().manual_seed(seed)
            x = torch.randn((1, in_channels, *shape), generator=g, requires_grad=True)
            out = model(x)[(0, slice(None), *centre)]
            # random channel weights: a plain sum of log-softmax outputs can have no gradient
            weights = torch.randn(out.shape, generator=g, dtype=out.dtype)
            (out * weights).sum().backward()
            assert x.grad is not None
            support |= (x.grad[0].abs().sum(0) > 0).numpy()
    finally:
        stats.restore()
        model.train(was_training)
    idx = np.argwhere(support)
    if len(idx) == 0:
        return (0, 0, 0)
    reach = np.maximum(np.asarray(centre) - idx.min(0), idx.max(0) - np.asarray(centre))
    for axis, s in enumerate(shape):
        if s > 1 and (idx[:, axis].min() == 0 or idx[:, axis].max() == s - 1):
            raise ShapeError(
                f"the receptive field reaches the probe's border on axis {'zyx'[axis]} "
                f"(probe shape {shape}); pass a larger probe_shape"
            )
    return tuple(int(v) for v in reach)  # type: ignore[return-value]


def receptive_halo(
    model: Any,
    *,
    method: Literal["auto", "analytic", "probe"] = "auto",
    probe_shape: Sequence[int] | None = None,
    align: bool = True,
) -> Triple:
    """Halo (z, y, x) in voxels a network needs so block-wise output equals whole-frame output.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`~celltrack.detect.model.DetectionUNet`,
        :class:`~celltrack.flow.model.FlowUNet`,
        :class:`~celltrack.nn.linajea_unet.LinajeaUNet` (anything holding a
        :class:`celltrack.nn.UNet`), or any fully convolutional 3D network (probe only).
    method : {'auto', 'analytic', 'probe'}
        'analytic' sums the reach of every convolution, pooling and upsampling step of
        the U-Net (an upper bound); 'probe' back-propagates from the centre voxel of the
        output of a random input (with normalisation layers frozen, so the network is
        local) and measures how far the gradient reaches; 'auto' is 'analytic' when the
        model holds a U-Net, else 'probe'.
    probe_shape : sequence of 3 int, optional
        Input (z, y, x) of the probe (default: twice the analytic radius plus two
        divisors per axis where known, else (1, 129, 129) for 2D and (65, 129, 129) for
        3D networks).
    align : bool
        Round the halo up to a multiple of the network's divisor.

    Returns
    -------
    (int, int, int)
        Halo per side (z, y, x) in voxels.

    Raises
    ------
    InvalidInputError
        If the method is unknown or 'analytic' is asked of a network without a U-Net.
    ShapeError
        If the probe is too small for the receptive field.

    Examples
    --------
    >>> from celltrack.config.detection import DetectionConfig
    >>> from celltrack.detect.model import build_model
    >>> receptive_halo(build_model(DetectionConfig.cpu().model, two_d=True, seed=0),
    ...                align=False)
    (0, 58, 58)
    """
    if method not in ("auto", "analytic", "probe"):
        raise InvalidInputError(f"method must be 'auto', 'analytic' or 'probe', got {method!r}")
    from celltrack.nn.tiling import find_unet, network_divisor

    unet = find_unet(model)
    if method == "analytic" and unet is None:
        raise InvalidInputError(
            f"{type(model).__name__} holds no celltrack UNet: use method='probe' (and give "
            "probe_shape)"
        )
    if method == "auto":
        method = "analytic" if unet is not None else "probe"
    if method == "analytic":
        halo = _analytic_halo(unet)
    else:
        from torch import nn

        convs = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
        if not convs:
            raise InvalidInputError(f"{type(model).__name__} has no Conv3d layer to probe")
        in_channels = int(convs[0].in_channels)
        two_d = all(m.kernel_size[0] == 1 for m in convs)
        if probe_shape is None:
            if unet is not None:
                a = _analytic_halo(unet)
                div = network_divisor(model)
                probe_shape = tuple(
                    1 if (two_d and i == 0) else _ceil_to(2 * r + 2 * d, 2 * d) + 1
                    for i, (r, d) in enumerate(zip(a, div))
                )
            else:
                probe_shape = (1, 129, 129) if two_d else (65, 129, 129)
        halo = _probe_halo(model, probe_shape, in_channels)
    if align:
        div = network_divisor(model)
        halo = tuple(_ceil_to(h, d) for h, d in zip(halo, div))  # type: ignore[assignment]
    return halo
