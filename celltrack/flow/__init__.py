"""Backward flow: every spot gets a predicted parent position in the previous frame.

Pipeline: annotated links → :func:`render_flow_labels` → :func:`train_flow` (a
:class:`FlowUNet` on frame pairs (t−1, t)) → :func:`predict_flow` (tiled, µm) →
:func:`displace` (node columns ``parent_z, parent_y, parent_x`` in µm), or
:func:`predict_parents` for a whole movie. Importing this package imports torch. Movies
go through :func:`celltrack.io.as_movie`; the configs live in :mod:`celltrack.config.flow`
(importable without torch) and are re-exported here. Nothing here imports
:mod:`celltrack.detect`: the shared parts are :mod:`celltrack.nn`'s.
"""

from celltrack.config.flow import (
    FlowConfig,
    FlowLabelConfig,
    FlowLossConfig,
    FlowModelConfig,
    FlowPredictConfig,
    FlowTrainConfig,
)
from celltrack.flow.displace import PARENT_COLUMNS, displace, predict_parents
from celltrack.flow.evaluate import ParentErrors, parent_errors
from celltrack.flow.labels import FlowLinks, flow_links, render_flow_labels
from celltrack.flow.losses import FlowLoss, masked_l1, smoothness, ssim3d, warp
from celltrack.flow.model import FlowUNet, build_flow_model, load_flow_model, save_flow_model
from celltrack.flow.predict import predict_flow
from celltrack.flow.training import FlowTrainResult, train_flow

__all__ = [
    "PARENT_COLUMNS",
    "FlowConfig",
    "FlowLabelConfig",
    "FlowLinks",
    "FlowLoss",
    "FlowLossConfig",
    "FlowModelConfig",
    "FlowPredictConfig",
    "FlowTrainConfig",
    "FlowTrainResult",
    "FlowUNet",
    "ParentErrors",
    "build_flow_model",
    "displace",
    "flow_links",
    "load_flow_model",
    "masked_l1",
    "parent_errors",
    "predict_flow",
    "predict_parents",
    "render_flow_labels",
    "save_flow_model",
    "smoothness",
    "ssim3d",
    "train_flow",
    "warp",
]
