"""FlowUNet: two consecutive frames in, the normalised backward flow out.

Input ``(B, 2, Z, Y, X)`` = frames (t−1, t), each min–max normalised. Output
``(B, 3, Z, Y, X)`` (``(B, 2, ...)`` = (y, x) for 2D+t models) through tanh: the
backward displacement ``parent − child`` at every voxel of frame t divided by the
model's ``max_displacement_um`` (z, y, x). The scale is part of the model (saved in
its checkpoint), so predictions never use a different normalisation than training.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from celltrack.config.flow import FlowConfig
from celltrack.errors import CheckpointError
from celltrack.geometry import check_voxel_size
from celltrack.nn import UNet, load_checkpoint, load_state, pool_factors_for, save_checkpoint
from celltrack.nn.seeding import seeded_build

__all__ = ["ARCH_NAME", "FlowUNet", "build_flow_model", "load_flow_model", "save_flow_model"]

ARCH_NAME = "FlowUNet"


class FlowUNet(nn.Module):
    """Residual-encoder U-Net with a tanh head predicting the normalised backward flow.

    Parameters
    ----------
    widths : sequence of int
        Channels per level (ELEPHANT: 16, 32, 64, 128, 256).
    pool_factors : sequence of (int, int, int)
        Pooling per level (see :func:`celltrack.nn.pool_factors_for`).
    max_displacement_um : sequence of 3 float
        Output scale (z, y, x) in µm: flow_µm = output × max_displacement_um.
    two_d : bool
        2D+t model (Z = 1): 2 output channels (y, x) and (1, 3, 3) kernels.
    generator : torch.Generator, optional
        Source of the initial weights (default: torch's global generator).

    Notes
    -----
    The 1×1 output head is zero-initialised, so an untrained model predicts no motion
    (flow 0) and training starts from the nearest-neighbour assumption.
    """

    def __init__(
        self,
        widths: Sequence[int],
        pool_factors: Sequence[Sequence[int]],
        max_displacement_um: Sequence[float],
        *,
        two_d: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.two_d = bool(two_d)
        self.widths = [int(w) for w in widths]
        self.pool_factors = [[int(v) for v in f] for f in pool_factors]
        self.max_displacement_um = tuple(float(v) for v in max_displacement_um)
        self.unet = UNet(
            2,
            self.out_channels,
            self.widths,
            self.pool_factors,
            two_d=self.two_d,
            encoder_block="residual",
            decoder_block="plain",
            generator=generator,
        )
        # start from "no motion": the head outputs exactly 0 until training moves it
        nn.init.zeros_(self.unet.head.weight)
        nn.init.zeros_(self.unet.head.bias)

    @property
    def out_channels(self) -> int:
        """2 for 2D+t models (y, x), else 3 (z, y, x)."""
        return 2 if self.two_d else 3

    @property
    def axes(self) -> list[int]:
        """Indices (into z, y, x) of the predicted components."""
        return [1, 2] if self.two_d else [0, 1, 2]

    def arch(self) -> dict[str, Any]:
        """Constructor arguments as plain values (stored in checkpoints)."""
        return {
            "name": ARCH_NAME,
            "widths": list(self.widths),
            "pool_factors": [list(f) for f in self.pool_factors],
            "max_displacement_um": list(self.max_displacement_um),
            "two_d": self.two_d,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, 2, Z, Y, X)`` frames to ``(B, C, Z, Y, X)`` flow in [−1, 1]."""
        return torch.tanh(self.unet(x))


def build_flow_model(
    cfg: FlowConfig,
    voxel_size: Sequence[float],
    *,
    two_d: bool = False,
    seed: int | None = None,
) -> FlowUNet:
    """Build an untrained FlowUNet for data of this voxel size.

    Parameters
    ----------
    cfg : FlowConfig
        ``cfg.model.widths`` and ``cfg.label.max_displacement_um`` are used.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm; sets the anisotropy-aware pooling.
    two_d : bool
        Build a 2D+t (Z = 1) model.
    seed : int or None
        Seed of the weight initialisation, drawn from its own generator (torch's global
        random state is left as it was); None draws from the global generator.
    """
    vs = check_voxel_size(voxel_size)
    widths = cfg.model.widths
    factors = pool_factors_for(vs, len(widths) - 1, two_d=two_d)
    max_um = cfg.label.max_displacement_um
    return seeded_build(
        seed, lambda g: FlowUNet(widths, factors, max_um, two_d=two_d, generator=g)
    )


def save_flow_model(
    path: str | Path, model: FlowUNet, meta: dict[str, Any] | None = None
) -> Path:
    """Save a FlowUNet atomically (weights + architecture + ``meta``)."""
    if not isinstance(model, FlowUNet):
        raise CheckpointError(f"save_flow_model expects a FlowUNet, got {type(model).__name__}")
    return save_checkpoint(path, model, model.arch(), meta)


def model_from_payload(payload: dict[str, Any], source: str = "checkpoint") -> FlowUNet:
    """Rebuild a FlowUNet from a loaded checkpoint dict and load its weights."""
    arch = dict(payload["arch"])
    try:
        model = FlowUNet(
            arch["widths"],
            arch["pool_factors"],
            arch["max_displacement_um"],
            two_d=arch["two_d"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source} has an invalid FlowUNet architecture: {exc}") from None
    load_state(model, payload, source)
    return model


def load_flow_model(path: str | Path) -> FlowUNet:
    """Load a FlowUNet saved by :func:`save_flow_model` (never executes code).

    Raises
    ------
    CheckpointError
        If the file is missing, unsafe, or holds another architecture.
    """
    payload = load_checkpoint(path, expected_name=ARCH_NAME)
    model = model_from_payload(payload, f"checkpoint '{path}'")
    model.eval()
    return model
