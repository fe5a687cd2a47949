"""celltrack: validated cell lineages from 3D+t fluorescence movies and sparse annotations.

Importing celltrack is cheap: it does not import torch. Deep-learning parts
(:mod:`celltrack.detect`, :mod:`celltrack.flow`) import torch when they are used.
"""

from celltrack import errors
from celltrack._version import __version__
from celltrack.config import Config, load_config, save_config
from celltrack.graph import TrackGraph

__all__ = ["Config", "TrackGraph", "__version__", "errors", "load_config", "save_config"]
