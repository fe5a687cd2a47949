"""Tree-ILP linker on OR-Tools CP-SAT (Linajea's formulation, exact and fast).

Importing this package registers the linker kind ``"ilp"``.
"""

from celltrack.solve.base import register_linker
from celltrack.solve.ilp.config import ILPConfig
from celltrack.solve.ilp.linker import ILPLinker, build_model
from celltrack.solve.ilp.model import ModelArrays, StandardModel
from celltrack.solve.ilp.problem import LinkingProblem

register_linker("ilp", ILPConfig, ILPLinker)

__all__ = [
    "ILPConfig",
    "ILPLinker",
    "LinkingProblem",
    "ModelArrays",
    "StandardModel",
    "build_model",
]
