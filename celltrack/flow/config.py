"""Re-export of the flow configs, which live in :mod:`celltrack.config.flow`.

Kept so that ``from celltrack.flow.config import FlowConfig`` keeps working; new code
imports from :mod:`celltrack.config.flow` (no torch) or :mod:`celltrack.flow`.
"""

from celltrack.config.flow import (
    FlowConfig,
    FlowLabelConfig,
    FlowLossConfig,
    FlowModelConfig,
    FlowPredictConfig,
    FlowTrainConfig,
)

__all__ = [
    "FlowConfig",
    "FlowLabelConfig",
    "FlowLossConfig",
    "FlowModelConfig",
    "FlowPredictConfig",
    "FlowTrainConfig",
]
