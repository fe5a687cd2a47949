"""LinajeaUNet: a window of frames in, a cell indicator and/or movement vectors out.

Linajea (Malin-Mayor et al., 2022) regresses two maps from a short window of frames
around t: the **cell indicator** (a Gaussian blob per nucleus centre, in [0, 1]) and the
**movement vectors** (at each voxel near a nucleus of frame t, the offset to its parent's
centre in frame t−1). The paper trains one U-Net per map; its public code also trains
one U-Net with both heads. Here the frames of the window are the input channels of one
U-Net (Linajea's 4D valid convolutions over time become the first layer's channels),
and the heads are output channels:

- ``indicator``: 1 channel through a sigmoid, starting at :data:`INITIAL_INDICATOR`;
- ``movement``: 3 channels (z, y, x; 2 = (y, x) for 2D+t) through tanh, times the
  model's ``max_displacement_um``, i.e. µm. Its head starts at zero ("no motion").

The output is ``(B, C, Z, Y, X)`` with the indicator first (when present);
:meth:`LinajeaUNet.channels` names the slice of each head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from celltrack.errors import CheckpointError, InvalidInputError
from celltrack.nn.checkpoint import load_checkpoint, load_state, save_checkpoint
from celltrack.nn.unet import UNet
from celltrack.nn.windows import check_window

__all__ = [
    "ARCH_NAME",
    "HEADS",
    "INITIAL_INDICATOR",
    "LinajeaUNet",
    "load_linajea_model",
    "save_linajea_model",
]

ARCH_NAME = "LinajeaUNet"

#: The heads a LinajeaUNet can have, in output order.
HEADS = ("indicator", "movement")

#: Indicator value a new model predicts before training (its head's bias is the logit of
#: it). Starting at 0.5 spends the first steps pushing the whole volume down, and a sigmoid
#: pushed too fast saturates at 0, where the MSE gradient vanishes for good.
INITIAL_INDICATOR = 0.1


class LinajeaUNet(nn.Module):
    """U-Net over a frame window with an indicator head, a movement head, or both.

    Parameters
    ----------
    window : (int, int)
        Frames before and after t in the input (channels = before + 1 + after).
    heads : sequence of {'indicator', 'movement'}
        The maps predicted (joint model: both).
    widths : sequence of int
        Channels per level (encoder top → bottleneck).
    pool_factors : sequence of (int, int, int)
        Pooling per level (see :func:`celltrack.nn.pool_factors_for`).
    max_displacement_um : sequence of 3 float
        Scale (z, y, x) of the movement head (µm); ignored without it.
    two_d : bool
        2D+t model (Z = 1): (1, 3, 3) kernels, movement (y, x).
    generator : torch.Generator, optional
        Source of the initial weights.
    """

    def __init__(
        self,
        window: Sequence[int],
        heads: Sequence[str],
        widths: Sequence[int],
        pool_factors: Sequence[Sequence[int]],
        max_displacement_um: Sequence[float] = (10.0, 10.0, 10.0),
        *,
        two_d: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.window = check_window(window)
        unknown = [h for h in heads if h not in HEADS]
        if unknown or not heads:
            raise InvalidInputError(
                f"heads must be a non-empty subset of {HEADS}; got {list(heads)}"
            )
        self.heads = tuple(h for h in HEADS if h in heads)
        self.widths = [int(w) for w in widths]
        self.pool_factors = [[int(v) for v in f] for f in pool_factors]
        self.max_displacement_um = tuple(float(v) for v in max_displacement_um)
        if len(self.max_displacement_um) != 3 or min(self.max_displacement_um) <= 0:
            raise InvalidInputError(
                f"max_displacement_um must be 3 positive µm values (z, y, x); got "
                f"{max_displacement_um}"
            )
        self.two_d = bool(two_d)
        self.unet = UNet(
            self.in_channels,
            self.out_channels,
            self.widths,
            self.pool_factors,
            two_d=self.two_d,
            encoder_block="residual",
            decoder_block="plain",
            generator=generator,
        )
        with torch.no_grad():
            if "movement" in self.heads:  # "no motion" until training moves it
                move = self.channels("movement")
                self.unet.head.weight[move] = 0.0
                self.unet.head.bias[move] = 0.0
            if "indicator" in self.heads:  # "no nucleus anywhere" (see INITIAL_INDICATOR)
                logit = math.log(INITIAL_INDICATOR / (1.0 - INITIAL_INDICATOR))
                self.unet.head.bias[self.channels("indicator")] = logit
        scale = [self.max_displacement_um[a] for a in self.movement_axes]
        scale_t = torch.tensor(scale, dtype=torch.float32).view(1, -1, 1, 1, 1)
        self.register_buffer("_scale", scale_t, persistent=False)

    @property
    def in_channels(self) -> int:
        """Frames of the window."""
        return self.window[0] + 1 + self.window[1]

    @property
    def movement_axes(self) -> list[int]:
        """Indices (into z, y, x) of the movement components: (y, x) for 2D+t."""
        return [1, 2] if self.two_d else [0, 1, 2]

    @property
    def out_channels(self) -> int:
        """1 per indicator head plus 2 or 3 movement components."""
        return ("indicator" in self.heads) + ("movement" in self.heads) * len(self.movement_axes)

    def channels(self, head: str) -> slice:
        """The output channels of ``head``.

        Raises
        ------
        InvalidInputError
            If the model has no such head.
        """
        if head not in self.heads:
            raise InvalidInputError(
                f"this LinajeaUNet has the heads {list(self.heads)}, not '{head}'"
            )
        start = 1 if head == "movement" and "indicator" in self.heads else 0
        size = 1 if head == "indicator" else len(self.movement_axes)
        return slice(start, start + size)

    def arch(self) -> dict[str, Any]:
        """Constructor arguments as plain values (stored in checkpoints)."""
        return {
            "name": ARCH_NAME,
            "window": list(self.window),
            "heads": list(self.heads),
            "widths": list(self.widths),
            "pool_factors": [list(f) for f in self.pool_factors],
            "max_displacement_um": list(self.max_displacement_um),
            "two_d": self.two_d,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, window frames, Z, Y, X)`` to ``(B, C, Z, Y, X)`` (indicator, µm)."""
        raw = self.unet(x)
        parts = []
        if "indicator" in self.heads:
            parts.append(torch.sigmoid(raw[:, self.channels("indicator")]))
        if "movement" in self.heads:
            parts.append(torch.tanh(raw[:, self.channels("movement")]) * self._scale)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


def save_linajea_model(
    path: str | Path, model: LinajeaUNet, meta: dict[str, Any] | None = None
) -> Path:
    """Save a LinajeaUNet atomically (weights + architecture + ``meta``)."""
    if not isinstance(model, LinajeaUNet):
        raise CheckpointError(
            f"save_linajea_model expects a LinajeaUNet, got {type(model).__name__}"
        )
    return save_checkpoint(path, model, model.arch(), meta)


def load_linajea_model(path: str | Path, heads: Sequence[str] = ()) -> LinajeaUNet:
    """Load a LinajeaUNet saved by :func:`save_linajea_model` (never executes code).

    Parameters
    ----------
    path : str or Path
        The checkpoint.
    heads : sequence of str
        Heads the caller needs; a model without one of them is refused.

    Raises
    ------
    CheckpointError
        If the file is missing, unsafe, holds another architecture or lacks a head.
    """
    payload = load_checkpoint(path, expected_name=ARCH_NAME)
    arch = dict(payload["arch"])
    try:
        model = LinajeaUNet(
            arch["window"],
            arch["heads"],
            arch["widths"],
            arch["pool_factors"],
            arch["max_displacement_um"],
            two_d=arch["two_d"],
        )
    except (KeyError, TypeError, ValueError, InvalidInputError) as exc:
        raise CheckpointError(f"checkpoint '{path}' has an invalid LinajeaUNet: {exc}") from None
    missing = [h for h in heads if h not in model.heads]
    if missing:
        raise CheckpointError(
            f"checkpoint '{path}' is a LinajeaUNet with heads {list(model.heads)}; this stage "
            f"needs {missing}: train a model with them"
        )
    load_state(model, payload, f"checkpoint '{path}'")
    model.eval()
    return model
