"""The detection U-Net: 3-class (background, periphery, centre) log-probabilities.

A thin wrapper around :class:`celltrack.nn.UNet` (conv → ReLU → GroupNorm blocks,
nearest upsampling) whose pooling keeps z until the volume is near isotropic. The
wrapper remembers its architecture (``arch``), including the voxel size it was built
for, so checkpoints rebuild exactly the same network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from celltrack.config.detection import ModelConfig
from celltrack.detect.detector import N_CLASSES
from celltrack.errors import CheckpointError, ShapeError
from celltrack.geometry import check_voxel_size
from celltrack.nn import UNet, load_checkpoint, load_state, pool_factors_for, save_checkpoint
from celltrack.nn.seeding import seeded_build

__all__ = [
    "ARCH_NAME",
    "DetectionUNet",
    "build_model",
    "load_model",
    "model_from_payload",
    "save_model",
]

ARCH_NAME = "DetectionUNet"


class DetectionUNet(nn.Module):
    """U-Net mapping a normalised ``(B, 1, Z, Y, X)`` volume to ``(B, 3, Z, Y, X)`` log-probs.

    Parameters
    ----------
    widths : sequence of int
        Channels per level (encoder top → bottleneck).
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm the model is built for; sets the pooling factors.
    two_d : bool
        Model for Z = 1 (2D+t) data: ``(1, 3, 3)`` kernels, z never pooled.
    in_channels : int
        Input channels (1 for a single fluorescence channel).
    generator : torch.Generator, optional
        Source of the initial weights (default: torch's global generator).

    Attributes
    ----------
    arch : dict
        Plain constructor arguments plus ``name``; stored in checkpoints.
    """

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64, 128, 256),
        voxel_size: Sequence[float] = (1.0, 1.0, 1.0),
        *,
        two_d: bool = False,
        in_channels: int = 1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise ShapeError(f"widths needs ≥ 2 positive entries, got {widths}")
        vs = check_voxel_size(voxel_size)
        self.arch: dict[str, Any] = {
            "name": ARCH_NAME,
            "widths": widths,
            "voxel_size": [float(v) for v in vs],
            "two_d": bool(two_d),
            "in_channels": int(in_channels),
        }
        factors = pool_factors_for(vs, len(widths) - 1, two_d=two_d)
        self.unet = UNet(
            in_channels, N_CLASSES, widths, factors, two_d=two_d, generator=generator
        )

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Voxel size (z, y, x) in µm the model was built for."""
        return tuple(self.arch["voxel_size"])  # type: ignore[return-value]

    @property
    def two_d(self) -> bool:
        """True for a model of Z = 1 data."""
        return bool(self.arch["two_d"])

    def check_input(self, shape: Sequence[int]) -> None:
        """Raise :class:`ShapeError` if a ``(B, C, Z, Y, X)`` input cannot be taken."""
        shape = tuple(int(s) for s in shape)
        if len(shape) != 5 or min(shape) < 1:
            raise ShapeError(
                f"the detection model takes (B, C, Z, Y, X) tensors with sizes ≥ 1, got {shape}"
            )
        if shape[1] != self.arch["in_channels"]:
            raise ShapeError(
                f"the model expects {self.arch['in_channels']} input channel(s), got {shape[1]}"
            )
        if shape[2] > 1 and self.two_d:
            raise ShapeError(
                f"a 2D model (two_d=True) got Z = {shape[2]} slices; build a 3D model for 3D "
                "data or predict slice by slice"
            )
        if shape[2] == 1 and not self.two_d and self.unet.divisor[0] > 1:
            raise ShapeError(
                "a 3D model that pools z got Z = 1 (2D+t) data; build the model with "
                "two_d=True for 2D data"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(B, 3, Z, Y, X)`` over (background, periphery, centre)."""
        self.check_input(x.shape)
        return F.log_softmax(self.unet(x), dim=1)


def build_model(
    cfg: ModelConfig | None = None,
    voxel_size: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    two_d: bool = False,
    seed: int | None = 0,
) -> DetectionUNet:
    """Build a freshly initialised detection U-Net.

    Parameters
    ----------
    cfg : ModelConfig, optional
        Preset or explicit widths (default: ELEPHANT's 16-32-64-128-256).
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm of the data.
    two_d : bool
        Build for Z = 1 (2D+t) data.
    seed : int or None
        Seed of the weight initialisation, drawn from its own generator (torch's global
        random state is left as it was); None draws from the global generator.
    """
    cfg = cfg or ModelConfig()
    widths = cfg.resolved_widths()
    return seeded_build(
        seed, lambda g: DetectionUNet(widths, voxel_size, two_d=two_d, generator=g)
    )


def save_model(
    path: str | Path, model: DetectionUNet, meta: dict[str, Any] | None = None
) -> Path:
    """Save a detection model atomically (architecture, weights, ``meta``)."""
    if not isinstance(model, DetectionUNet):
        raise CheckpointError(f"save_model expects a DetectionUNet, got {type(model).__name__}")
    return save_checkpoint(path, model, model.arch, meta)


def load_model(path: str | Path) -> tuple[DetectionUNet, dict[str, Any]]:
    """Load a detection model saved by :func:`save_model` (``weights_only=True``).

    Returns
    -------
    model : DetectionUNet
        In eval mode, on CPU.
    meta : dict
        The metadata stored with it.

    Raises
    ------
    CheckpointError
        If the file is missing, unsafe or corrupt, or holds another architecture.
    """
    payload = load_checkpoint(path, expected_name=ARCH_NAME)
    model = model_from_payload(payload, f"checkpoint '{path}'")
    model.eval()
    return model, dict(payload.get("meta", {}))


def model_from_payload(payload: dict[str, Any], source: str = "checkpoint") -> DetectionUNet:
    """Rebuild a DetectionUNet from a loaded checkpoint dict and load its weights.

    Raises
    ------
    CheckpointError
        If the architecture description is invalid or the weights do not fit it.
    """
    arch = dict(payload["arch"])
    arch.pop("name", None)
    try:
        model = DetectionUNet(
            arch.pop("widths"),
            arch.pop("voxel_size"),
            two_d=arch.pop("two_d"),
            in_channels=arch.pop("in_channels"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source} has an invalid DetectionUNet arch: {exc}") from None
    if arch:
        raise CheckpointError(f"{source} has unknown arch keys {sorted(arch)}")
    load_state(model, payload, source=source)
    return model
