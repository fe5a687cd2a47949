"""Linkers (temporary module by the linkers engineer; the lead owns and will replace it).

Importing this package registers the built-in linkers with :func:`make_linker`.
"""

import importlib.util

from celltrack.solve.base import Linker, LinkResult, SolveStatus, linker_kinds, make_linker
from celltrack.solve.flow_nn import FlowNNConfig, FlowNNLinker
from celltrack.solve.greedy import GreedyConfig, GreedyLinker

if importlib.util.find_spec("celltrack.solve.ilp") is not None:  # written in parallel
    from celltrack.solve.ilp import ILPConfig, ILPLinker  # noqa: F401

__all__ = [
    "FlowNNConfig",
    "FlowNNLinker",
    "GreedyConfig",
    "GreedyLinker",
    "LinkResult",
    "Linker",
    "SolveStatus",
    "linker_kinds",
    "make_linker",
]
