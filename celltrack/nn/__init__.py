"""Machinery shared by detection and flow: U-Net, tiling, normalisation, augmentation,
crops, learning-rate schedule, training loop, history and checkpoints.

Importing this package imports torch; nothing outside ``detect``, ``flow`` and ``nn``
does. Their configs (:class:`~celltrack.config.nn.AugmentConfig`,
:class:`~celltrack.config.nn.TilingConfig`) live in :mod:`celltrack.config.nn`.
"""

from celltrack.config.nn import AugmentConfig, TilingConfig
from celltrack.nn.augment import Transform, apply, random_transform
from celltrack.nn.checkpoint import load_checkpoint, load_state, save_checkpoint
from celltrack.nn.crops import Crop, crop_origin, sample_crop, sample_labelled_crop
from celltrack.nn.history import TrainingHistory, TrainRecord
from celltrack.nn.normalize import median_correct, normalize_frame
from celltrack.nn.schedule import cosine_lr, set_lr
from celltrack.nn.seeding import as_generator, seeded_build, torch_generator
from celltrack.nn.tiling import evaluating, predict_tiled, tile_starts
from celltrack.nn.training import (
    TrainingState,
    TrainResult,
    check_same_run,
    fit_crop_epochs,
    fit_epochs,
    optimisation_step,
    restore_training_state,
    save_training_checkpoint,
)
from celltrack.nn.unet import ConvBlock, FastConv3d, ResidualBlock, UNet, pool_factors_for

__all__ = [
    "AugmentConfig",
    "ConvBlock",
    "Crop",
    "FastConv3d",
    "ResidualBlock",
    "TilingConfig",
    "TrainRecord",
    "TrainResult",
    "TrainingHistory",
    "TrainingState",
    "Transform",
    "UNet",
    "apply",
    "as_generator",
    "check_same_run",
    "cosine_lr",
    "crop_origin",
    "evaluating",
    "fit_crop_epochs",
    "fit_epochs",
    "load_checkpoint",
    "load_state",
    "median_correct",
    "normalize_frame",
    "optimisation_step",
    "pool_factors_for",
    "predict_tiled",
    "random_transform",
    "restore_training_state",
    "sample_crop",
    "sample_labelled_crop",
    "save_checkpoint",
    "save_training_checkpoint",
    "seeded_build",
    "set_lr",
    "tile_starts",
    "torch_generator",
]
