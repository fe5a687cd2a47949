"""U-Net building blocks, checkpoints and tiled inference shared by detection and flow.

Importing this package imports torch; nothing outside ``detect``, ``flow`` and ``nn``
does.
"""

from celltrack.nn.checkpoint import load_checkpoint, load_state, save_checkpoint
from celltrack.nn.tiling import evaluating, predict_tiled, tile_starts
from celltrack.nn.unet import ConvBlock, FastConv3d, ResidualBlock, UNet, pool_factors_for

__all__ = [
    "ConvBlock",
    "FastConv3d",
    "ResidualBlock",
    "UNet",
    "evaluating",
    "load_checkpoint",
    "load_state",
    "pool_factors_for",
    "predict_tiled",
    "save_checkpoint",
    "tile_starts",
]
