"""Linkers (temporary module by the linkers engineer; the lead owns and will replace it).

Importing this package registers the built-in linkers with :func:`make_linker`.
"""

import logging

from celltrack.solve.base import Linker, LinkResult, SolveStatus, linker_kinds, make_linker
from celltrack.solve.flow_nn import FlowNNConfig, FlowNNLinker
from celltrack.solve.greedy import GreedyConfig, GreedyLinker

try:  # written in parallel; registers kind "ilp" once it exists
    from celltrack.solve.ilp import ILPConfig, ILPLinker  # noqa: F401
except ImportError as exc:  # pragma: no cover
    logging.getLogger(__name__).debug("ILP linker not available: %s", exc)

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
