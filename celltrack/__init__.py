"""celltrack: validated cell lineages from 3D+t fluorescence movies and sparse annotations.

Importing celltrack is cheap: it does not import torch. The deep-learning parts
(:mod:`celltrack.detect`, :mod:`celltrack.flow`) and what uses them (:class:`Pipeline`,
:class:`Project`) load on first use.
"""

from typing import Any

from celltrack import errors
from celltrack._version import __version__
from celltrack.config import Config, load_config, save_config
from celltrack.graph import TrackGraph

_LAZY = {
    "Pipeline": "celltrack.pipeline",
    "PipelineConfig": "celltrack.pipeline",
    "Project": "celltrack.project",
}

__all__ = [
    "Config",
    "Pipeline",
    "PipelineConfig",
    "Project",
    "TrackGraph",
    "__version__",
    "errors",
    "load_config",
    "save_config",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'celltrack' has no attribute '{name}'")
