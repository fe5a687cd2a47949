"""Linkers: greedy nearest neighbour, ELEPHANT's flow-corrected NN, and the CP-SAT tree ILP.

Every linker implements :class:`Linker` (``link(candidates) -> LinkResult``) and is chosen
by its config's ``kind``; :data:`LinkerConfig` is the discriminated union used in nested
configs, and :func:`make_linker` builds a linker from a config, a kind name or a dict.
Importing this package registers the built-in linkers.
"""

from typing import Annotated, Union

from pydantic import Field

from celltrack.solve.base import (
    Linker,
    LinkResult,
    SolveStatus,
    linker_kinds,
    make_linker,
    register_linker,
)
from celltrack.solve.blockwise import BlockwiseConfig, solve_blockwise
from celltrack.solve.flow_nn import FlowNNConfig, FlowNNLinker
from celltrack.solve.greedy import GreedyConfig, GreedyLinker
from celltrack.solve.ilp import ILPConfig, ILPLinker

#: Any built-in linker config, selected by its ``kind`` field.
LinkerConfig = Annotated[Union[GreedyConfig, FlowNNConfig, ILPConfig], Field(discriminator="kind")]  # noqa: UP007


__all__ = [
    "BlockwiseConfig",
    "FlowNNConfig",
    "FlowNNLinker",
    "GreedyConfig",
    "GreedyLinker",
    "ILPConfig",
    "ILPLinker",
    "LinkResult",
    "Linker",
    "LinkerConfig",
    "SolveStatus",
    "linker_kinds",
    "make_linker",
    "register_linker",
    "solve_blockwise",
]
