"""One anisotropy-aware U-Net for 3D (and 2D+t, Z = 1) volumes, shared by detection and flow.

Tensors are ``(B, C, Z, Y, X)``. Each level pools by ``(1, 2, 2)`` while the volume is
still strongly anisotropic (z spacing ≥ ~1.4× xy spacing) and by ``(2, 2, 2)`` once it
is near isotropic, as ELEPHANT's ``keep_axials`` does; for Z = 1 data z is never pooled
and the kernels are ``(1, 3, 3)``. Upsampling is nearest-neighbour followed by skip
concatenation. Inputs of any size are padded (replicate) to a multiple of the total
pooling factor and the output is cropped back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from celltrack.errors import ShapeError

__all__ = ["ConvBlock", "FastConv3d", "ResidualBlock", "UNet", "pool_factors_for"]

Factor = tuple[int, int, int]


def pool_factors_for(
    voxel_size: Sequence[float], n_levels: int, *, two_d: bool = False
) -> list[Factor]:
    """Per-level pooling factors that keep z until the volume is near isotropic.

    Parameters
    ----------
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    n_levels : int
        Number of pooling steps (U-Net depth − 1).
    two_d : bool
        Data with Z = 1: never pool z.

    Returns
    -------
    list of (int, int, int)
        ``(pz, py, px)`` per level, e.g. ``[(1, 2, 2), (2, 2, 2), ...]``.

    Examples
    --------
    >>> pool_factors_for((2.0, 0.5, 0.5), 3)
    [(1, 2, 2), (1, 2, 2), (2, 2, 2)]
    """
    vz, vy, vx = (float(v) for v in voxel_size)
    xy = math.sqrt(vy * vx)
    factors: list[Factor] = []
    for _ in range(n_levels):
        if two_d or vz / xy >= math.sqrt(2.0):
            factors.append((1, 2, 2))
            xy *= 2
        else:
            factors.append((2, 2, 2))
            xy *= 2
            vz *= 2
    return factors


class FastConv3d(nn.Conv3d):
    """Conv3d that always takes oneDNN (mkldnn) on CPU float32.

    PyTorch picks its slow im2col kernel for batch-1 inputs whose ``N·C·Z·Y`` is small
    (few channels, thin z): 5-6x slower for the 8-channel levels of the CPU presets. The
    result is identical (same weights, same state_dict keys).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.padding_mode == "zeros"
            and isinstance(self.padding, tuple)
            and torch.backends.mkldnn.is_available()
        ):
            return torch.mkldnn_convolution(
                x.contiguous(),
                self.weight,
                self.bias,
                self.padding,
                self.stride,
                self.dilation,
                self.groups,
            )
        return super().forward(x)


class ConvBlock(nn.Module):
    """Two × (conv → ReLU → GroupNorm), ELEPHANT's detection block (ReLU before the norm)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: Factor) -> None:
        super().__init__()
        pad = tuple(k // 2 for k in kernel)
        layers: list[nn.Module] = []
        for i in range(2):
            layers += [
                nn.Conv3d(in_ch if i == 0 else out_ch, out_ch, kernel, padding=pad),
                nn.ReLU(inplace=True),
                nn.GroupNorm(min(32, out_ch), out_ch),
            ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResidualBlock(nn.Module):
    """ELEPHANT's flow block: ``LeakyReLU((proj(x) + conv(LeakyReLU(conv(x)))) / 2)``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: Factor) -> None:
        super().__init__()
        pad = tuple(k // 2 for k in kernel)
        self.proj = nn.Conv3d(in_ch, out_ch, 1, bias=False)
        self.conv1 = nn.Conv3d(in_ch, out_ch, kernel, padding=pad)
        self.conv2 = nn.Conv3d(out_ch, out_ch, kernel, padding=pad)
        self.act = nn.LeakyReLU(0.1, inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act((self.proj(x) + self.conv2(self.act(self.conv1(x)))) / 2)


class _PlainBlock(nn.Module):
    """Two × (conv → LeakyReLU), the flow decoder block (no normalisation)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: Factor) -> None:
        super().__init__()
        pad = tuple(k // 2 for k in kernel)
        self.body = nn.Sequential(
            nn.Conv3d(in_ch, out_ch, kernel, padding=pad),
            nn.LeakyReLU(0.1),
            nn.Conv3d(out_ch, out_ch, kernel, padding=pad),
            nn.LeakyReLU(0.1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


_BLOCKS = {"conv": ConvBlock, "residual": ResidualBlock, "plain": _PlainBlock}


class UNet(nn.Module):
    """Configurable U-Net returning raw (pre-activation) outputs.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output channels.
    widths : sequence of int
        Channels per level, encoder top → bottleneck (ELEPHANT: 16, 32, 64, 128, 256).
    pool_factors : sequence of (int, int, int)
        One pooling factor per downsampling step; ``len(widths) - 1`` entries (see
        :func:`pool_factors_for`).
    two_d : bool
        Use ``(1, 3, 3)`` kernels for Z = 1 data.
    encoder_block, decoder_block : {'conv', 'residual', 'plain'}
        Block types (detection: conv/conv; flow: residual/plain).
    generator : torch.Generator, optional
        Source of the initial weights (default: torch's global generator). Build inside
        :func:`celltrack.nn.seeding.seeded_build` to leave the global state untouched.

    Notes
    -----
    Weights are Kaiming-normal (fan-in) initialised with zero biases.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        widths: Sequence[int] = (16, 32, 64, 128, 256),
        pool_factors: Sequence[Sequence[int]] | None = None,
        *,
        two_d: bool = False,
        encoder_block: Literal["conv", "residual", "plain"] = "conv",
        decoder_block: Literal["conv", "residual", "plain"] = "conv",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if pool_factors is None:
            pool_factors = [(1, 2, 2) if two_d else (2, 2, 2)] * (len(widths) - 1)
        self.pool_factors: list[Factor] = [tuple(int(v) for v in f) for f in pool_factors]  # type: ignore[misc]
        if len(self.pool_factors) != len(widths) - 1:
            raise ShapeError(
                f"need {len(widths) - 1} pooling factors for {len(widths)} levels, "
                f"got {len(self.pool_factors)}"
            )
        kernel: Factor = (1, 3, 3) if two_d else (3, 3, 3)
        enc, dec = _BLOCKS[encoder_block], _BLOCKS[decoder_block]
        self.encoders = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.encoders.append(enc(prev, w, kernel))
            prev = w
        self.decoders = nn.ModuleList(
            dec(widths[i] + widths[i + 1], widths[i], kernel)
            for i in reversed(range(len(widths) - 1))
        )
        self.head = nn.Conv3d(widths[0], out_channels, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
                module.__class__ = FastConv3d  # same parameters, faster CPU kernel

    @property
    def divisor(self) -> Factor:
        """Total pooling factor per axis: input sizes are padded to multiples of it."""
        z = y = x = 1
        for fz, fy, fx in self.pool_factors:
            z, y, x = z * fz, y * fy, x * fx
        return z, y, x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C_in, Z, Y, X)`` to ``(B, C_out, Z, Y, X)`` (any spatial size)."""
        if x.ndim != 5:
            raise ShapeError(f"UNet expects a (B, C, Z, Y, X) tensor, got shape {tuple(x.shape)}")
        size = x.shape[2:]
        pads = [(-s) % d for s, d in zip(size, self.divisor)]
        if any(pads):
            # F.pad takes (x_lo, x_hi, y_lo, y_hi, z_lo, z_hi); replicate needs size > 0
            x = F.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]), mode="replicate")
        skips = []
        for level, block in enumerate(self.encoders):
            x = block(x)
            if level < len(self.pool_factors):
                skips.append(x)
                x = F.max_pool3d(x, self.pool_factors[level])
        for block, factor, skip in zip(self.decoders, reversed(self.pool_factors), reversed(skips)):
            x = F.interpolate(x, scale_factor=factor, mode="nearest")
            x = block(torch.cat([skip, x], dim=1))
        out = self.head(x)
        return out[:, :, : size[0], : size[1], : size[2]]
