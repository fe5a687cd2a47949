"""The linker interface shared by every linking algorithm, and the linker registry.

A linker takes a candidate :class:`~celltrack.graph.TrackGraph` (nodes = detections,
edges = possible parent → child links with feature columns) and returns a
:class:`LinkResult` whose ``graph`` is the selected lineage forest.
"""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from celltrack._version import __version__
from celltrack.config import Config
from celltrack.errors import ConfigError
from celltrack.graph import TrackGraph

__all__ = [
    "LinkResult",
    "Linker",
    "SolveStatus",
    "linker_kinds",
    "make_linker",
    "register_linker",
]


class SolveStatus(str, enum.Enum):
    """Outcome of a linking run (never an exception)."""

    OPTIMAL = "optimal"  #: proven optimal (exact solvers)
    FEASIBLE = "feasible"  #: a solution, optimality not proven (e.g. time limit reached)
    HEURISTIC = "heuristic"  #: a solution from a heuristic that makes no optimality claim
    INFEASIBLE = "infeasible"  #: the constraints (e.g. pins) admit no solution
    NO_SOLUTION = "no_solution"  #: time limit reached before any solution was found


@dataclass
class LinkResult:
    """What every linker returns.

    Attributes
    ----------
    graph : TrackGraph
        The selected forest (≤ 1 parent, ≤ 2 children); empty if no solution.
    status : SolveStatus
        Optimal / feasible / heuristic / infeasible / no solution.
    objective : float or None
        Objective value of ``graph`` in the linker's cost units (None for heuristics
        without an objective).
    bound : float or None
        Best proven lower bound (exact solvers), else None.
    timings : dict of str to float
        Wall-clock seconds per phase (e.g. ``build``, ``solve``, ``total``).
    parameters : dict
        The linker's configuration (``model_dump``) and the celltrack version.
    stats : dict
        Counts and solver diagnostics (variables, constraints, branches, ...).
    """

    graph: TrackGraph
    status: SolveStatus
    objective: float | None = None
    bound: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when a solution is available (optimal, feasible or heuristic)."""
        return self.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE, SolveStatus.HEURISTIC)


def provenance(config: Config) -> dict[str, Any]:
    """Parameters record of a result: the config dump plus the celltrack version."""
    return {"config": config.model_dump(mode="json"), "celltrack_version": __version__}


def infeasible_result(
    config: Config, reason: str, stats: dict[str, Any], total_seconds: float
) -> LinkResult:
    """An empty INFEASIBLE result whose ``stats["infeasible_reason"]`` says why.

    Parameters
    ----------
    config : Config
        The linker's configuration (recorded as provenance).
    reason : str
        Human-readable cause (e.g. conflicting pinned edges).
    stats : dict
        Statistics gathered so far; ``infeasible_reason`` is added.
    total_seconds : float
        Wall-clock time spent (s), reported as ``timings["total"]``.
    """
    stats["infeasible_reason"] = reason
    return LinkResult(
        TrackGraph.empty(),
        SolveStatus.INFEASIBLE,
        timings={"total": total_seconds},
        parameters=provenance(config),
        stats=stats,
    )


@runtime_checkable
class Linker(Protocol):
    """Anything with a ``config`` and ``link(candidates) -> LinkResult``."""

    config: Config

    def link(self, candidates: TrackGraph) -> LinkResult:  # pragma: no cover - protocol
        ...


_REGISTRY: dict[str, tuple[type[Config], type]] = {}


def register_linker(kind: str, config_cls: type[Config], linker_cls: type) -> None:
    """Register a linker so :func:`make_linker` can build it from its ``kind``."""
    _REGISTRY[kind] = (config_cls, linker_cls)


def linker_kinds() -> list[str]:
    """Names of all registered linkers."""
    import celltrack.solve  # noqa: F401  (registers the built-in linkers)

    return sorted(_REGISTRY)


def make_linker(config: Config | str | dict[str, Any], **overrides: Any) -> Linker:
    """Build a linker from its config, its ``kind`` name, or a dict with a ``kind`` key.

    Parameters
    ----------
    config : Config, str or dict
        A linker config instance, a registered kind (``"greedy"``, ``"flow_nn"``,
        ``"ilp"``) or a mapping with ``kind`` and config fields.
    **overrides
        Config fields to set when ``config`` is a name or a dict.

    Raises
    ------
    ConfigError
        For an unknown kind (the message lists the known ones and the closest match).
    """
    kinds = linker_kinds()
    if isinstance(config, Config):
        kind = getattr(config, "kind", None)
        if kind not in _REGISTRY:
            raise ConfigError(f"{type(config).__name__} is not a registered linker config")
        return _REGISTRY[kind][1](config)
    data = {"kind": config} if isinstance(config, str) else dict(config)
    data.update(overrides)
    kind = data.get("kind")
    if kind not in _REGISTRY:
        close = difflib.get_close_matches(str(kind), kinds, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown linker kind '{kind}'; known kinds: {', '.join(kinds)}.{hint}")
    from celltrack.config import config_from_dict

    config_cls, linker_cls = _REGISTRY[kind]
    return linker_cls(config_from_dict(data, config_cls))
