"""Linkers: greedy nearest neighbour, ELEPHANT's flow-corrected NN, and the CP-SAT tree ILP.

Every linker subclasses :class:`Linker`: its public ``link(candidates, **options) ->
LinkResult`` validates the candidates and pins (:mod:`celltrack.solve.validate`), times the
run and stamps provenance around the subclass's ``_link``. Linkers are chosen by their
config's ``kind``: :func:`make_linker` builds one from a config, a kind name or a dict,
:func:`linker_config` validates such a value into the kind's config (any kind registered
with :func:`register_linker`, the user's own included), and :data:`LinkerConfig` is the
discriminated union of the built-in configs. :func:`solve_blockwise` solves large graphs
block by block with any linker. :func:`fit_costs` learns the ILP's cost weights from
annotated lineages (a structured SVM on the exact ILP).

Importing this package registers the built-in linkers; it loads no solver (OR-Tools,
scipy.optimize) and no KD-tree code until a linker runs.
"""

from typing import Annotated, Union

from pydantic import Field

from celltrack.solve.base import (
    Infeasible,
    Linker,
    LinkResult,
    SolveStatus,
    linker_config,
    linker_kinds,
    make_linker,
    register_linker,
)
from celltrack.solve.blockwise import BlockwiseConfig, solve_blockwise
from celltrack.solve.flow_nn import FlowNNConfig, FlowNNLinker
from celltrack.solve.greedy import GreedyConfig, GreedyLinker
from celltrack.solve.ilp import ILPConfig, ILPLinker
from celltrack.solve.ilp.fit import FitResult, fit_costs

#: Any built-in linker config, selected by its ``kind`` field.
LinkerConfig = Annotated[Union[GreedyConfig, FlowNNConfig, ILPConfig], Field(discriminator="kind")]  # noqa: UP007


__all__ = [
    "BlockwiseConfig",
    "FitResult",
    "FlowNNConfig",
    "FlowNNLinker",
    "GreedyConfig",
    "GreedyLinker",
    "ILPConfig",
    "ILPLinker",
    "Infeasible",
    "LinkResult",
    "Linker",
    "LinkerConfig",
    "SolveStatus",
    "fit_costs",
    "linker_config",
    "linker_kinds",
    "make_linker",
    "register_linker",
    "solve_blockwise",
]
