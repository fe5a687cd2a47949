"""Tree-ILP linker on OR-Tools CP-SAT (Linajea's formulation, exact and fast).

Terms, one per module with its math: node/edge/appear/split/disappear costs
(:mod:`.costs`), the tree constraints (:mod:`.constraints`), division pairs
(:mod:`.pair_definition`, priced by :mod:`.pair_cost`), track and daughter persistence
(:mod:`.short_track`, :mod:`.short_daughter`), and the rows that keep the LP tight when
divisions are priced: child counts (:mod:`.child_count`) and shared-child cuts
(:mod:`.short_daughter_cut`). :func:`.fit.fit_costs` learns all
cost weights from annotated lineages (structured SVM on the exact ILP).

Importing this package registers the linker kind ``"ilp"``. It loads neither OR-Tools nor
the scipy solvers: those are imported when a linker runs (:mod:`.phases`) and when the
model classes are first used (``ModelArrays``, ``StandardModel`` load lazily).
"""

from typing import Any

from celltrack.solve.base import register_linker
from celltrack.solve.ilp.config import ILPConfig
from celltrack.solve.ilp.linker import ILPLinker, build_model
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

_LAZY = {"ModelArrays", "StandardModel"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from celltrack.solve.ilp import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
