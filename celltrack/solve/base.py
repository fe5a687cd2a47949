"""The :class:`Linker` base class every linking algorithm derives from, and the registry.

A linker takes a candidate :class:`~celltrack.graph.TrackGraph` (nodes = detections,
edges = possible parent → child links with feature columns) and returns a
:class:`LinkResult` whose ``graph`` is the selected lineage forest.

:meth:`Linker.link` is a template method: it validates the candidates and their pins
(:mod:`celltrack.solve.validate`), checks the options, times the run, calls the
subclass's :meth:`Linker._link`, turns a raised :class:`Infeasible` into an INFEASIBLE
result, and stamps ``parameters`` (config dump + celltrack version) and
``timings["total"]``. A new linker only writes ``_link``::

    class MyConfig(Config):
        kind: Literal["mine"] = Field("mine", description="linker kind")

    class MyLinker(Linker):
        config_class = MyConfig

        def _link(self, candidates):
            ...
            return LinkResult(forest, SolveStatus.HEURISTIC)

    register_linker("mine", MyConfig, MyLinker)
    make_linker("mine").link(candidates)
"""

from __future__ import annotations

import abc
import difflib
import enum
import inspect
import logging
import time
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from celltrack._version import __version__
from celltrack.config import Config
from celltrack.errors import ConfigError, InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.solve.validate import check_candidates

__all__ = [
    "Infeasible",
    "LinkResult",
    "Linker",
    "SolveStatus",
    "linker_config",
    "linker_kinds",
    "make_linker",
    "provenance",
    "register_linker",
]

logger = logging.getLogger(__name__)


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
        The selected forest (≤ 1 parent, ≤ 2 children); no nodes if no solution.
    status : SolveStatus
        Optimal / feasible / heuristic / infeasible / no solution.
    objective : float or None
        Objective value of ``graph`` in the linker's cost units (None for heuristics
        without an objective).
    bound : float or None
        Best proven lower bound (exact solvers), else None.
    timings : dict of str to float
        Wall-clock seconds per phase (e.g. ``build``, ``solve``) and ``total``.
    parameters : dict
        ``config`` (the linker's ``model_dump``) and ``celltrack_version``.
    stats : dict
        Counts and solver diagnostics (variables, constraints, branches, ...); an
        INFEASIBLE result says why in ``stats["infeasible_reason"]``.
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


class Infeasible(Exception):  # a control-flow signal: it never leaves link()
    """Raised inside :meth:`Linker._link` when the constraints (pins) admit no solution.

    :meth:`Linker.link` catches it and returns the one INFEASIBLE result: a graph with no
    nodes (candidate columns kept), ``stats`` extended by ``infeasible_reason``.

    Parameters
    ----------
    reason : str
        Human-readable cause (e.g. "pinned edges give 1 node(s) > 1 parent").
    stats : dict, optional
        Statistics gathered so far.
    timings : dict, optional
        Phase timings gathered so far (s).
    """

    def __init__(
        self,
        reason: str,
        stats: dict[str, Any] | None = None,
        timings: dict[str, float] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stats = dict(stats or {})
        self.timings = dict(timings or {})


class Linker(abc.ABC):
    """Base class of every linker: validation, timing and provenance once.

    Subclasses set :attr:`config_class` and implement :meth:`_link`; those with a cost
    function also override :meth:`objective_of`.

    Parameters
    ----------
    config : Config, optional
        An instance of :attr:`config_class` (its defaults if omitted).

    Raises
    ------
    InvalidInputError
        If ``config`` is not an instance of :attr:`config_class`.
    """

    #: the config model of this linker (a :class:`~celltrack.config.Config` with ``kind``).
    config_class: ClassVar[type[Config]]
    #: True for a linker that searches parents itself and takes the spots (their only
    #: edges the approved links), not a candidate graph; the link stage asks this.
    links_spots: ClassVar[bool] = False

    def __init__(self, config: Config | None = None) -> None:
        config_class = getattr(type(self), "config_class", None)
        if config_class is None:
            raise ConfigError(
                f"{self.name} has no config_class; set `config_class = <its Config subclass>` "
                "in the class body"
            )
        if config is None:
            config = config_class()
        if not isinstance(config, config_class):
            article = "an" if config_class.__name__[:1] in "AEIOU" else "a"
            raise InvalidInputError(
                f"{self.name} needs {article} {config_class.__name__}, got "
                f"{type(config).__name__}; "
                f"use make_linker(...) or {self.name}({config_class.__name__}(...))"
            )
        self.config = config

    @property
    def name(self) -> str:
        """The linker's class name (used in messages)."""
        return type(self).__name__

    # ------------------------------------------------------------------ template
    def link(self, candidates: TrackGraph, **options: Any) -> LinkResult:
        """Select a lineage forest from ``candidates``.

        Parameters
        ----------
        candidates : TrackGraph
            Candidate graph (positions µm, edges parent → child with feature columns,
            optional node/edge ``pin`` columns: 1 select, 0 exclude, -1 free).
        **options
            Per-run options of the linker (e.g. ``hint_edges`` for the ILP).

        Returns
        -------
        LinkResult
            With ``timings["total"]`` (s) and ``parameters`` (config + version) stamped.

        Raises
        ------
        InvalidInputError, GraphError
            If ``candidates`` is not a non-empty TrackGraph, a ``pin`` column holds other
            values than -1/0/1, or an option is unknown; the linker's own input errors.
        """
        start = time.perf_counter()
        check_candidates(candidates, self.name)
        self._check_options(options)
        try:
            result = self._link(candidates, **options)
        except Infeasible as exc:
            result = self._infeasible_result(candidates, exc)
        if not isinstance(result, LinkResult):
            raise TypeError(
                f"{self.name}._link must return a LinkResult, got {type(result).__name__}"
            )
        result.timings["total"] = time.perf_counter() - start
        result.parameters = {**result.parameters, **provenance(self.config)}
        return result

    @abc.abstractmethod
    def _link(self, candidates: TrackGraph, **options: Any) -> LinkResult:
        """The algorithm: ``candidates`` are validated; raise :class:`Infeasible` when the
        pins admit no solution. Timings of own phases go into ``timings``; ``total`` and
        ``parameters`` are stamped by :meth:`link`."""

    def _check_options(self, options: dict[str, Any]) -> None:
        params = inspect.signature(self._link).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return
        accepted = list(params)[1:]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            known = ", ".join(accepted) if accepted else "none"
            raise InvalidInputError(
                f"{self.name}.link() got unknown option(s) {unknown}; options it accepts: {known}"
            )

    def _infeasible_result(self, candidates: TrackGraph, exc: Infeasible) -> LinkResult:
        logger.warning("%s: infeasible: %s", self.name, exc.reason)
        nothing = candidates.subgraph(
            nodes=np.zeros(candidates.num_nodes, bool), edges=np.zeros(candidates.num_edges, bool)
        )
        return LinkResult(
            nothing,
            SolveStatus.INFEASIBLE,
            timings=exc.timings,
            stats={**exc.stats, "infeasible_reason": exc.reason},
        )

    # ------------------------------------------------------------------ objective
    @property
    def has_objective(self) -> bool:
        """Whether this linker implements :meth:`objective_of`."""
        return type(self).objective_of is not Linker.objective_of

    def objective_of(
        self,
        candidates: TrackGraph,
        selected_edge_mask: Any,
        selected_node_mask: Any | None = None,
    ) -> float:
        """Objective (cost units) of a given selection under this linker's costs.

        Linkers with a cost function override this; the base raises.

        Parameters
        ----------
        candidates : TrackGraph
            The candidate graph the selection refers to.
        selected_edge_mask : array_like of bool, shape (E,)
        selected_node_mask : array_like of bool, shape (N,), optional
            Selected nodes; default: the endpoints of the selected edges.

        Raises
        ------
        InvalidInputError
            Here always (check :attr:`has_objective`); in linkers with costs, when a mask
            has the wrong shape or the selection breaks the linker's forest rules.
        """
        raise InvalidInputError(
            f"{self.name} has no objective function, so it cannot score a selection; use a "
            "linker with costs (GreedyLinker, ILPLinker) or check `linker.has_objective` first"
        )


# ---------------------------------------------------------------------- registry
_REGISTRY: dict[str, tuple[type[Config], type[Linker]]] = {}


def register_linker(kind: str, config_cls: type[Config], linker_cls: type[Linker]) -> None:
    """Register a linker so :func:`make_linker` and :func:`linker_config` know its ``kind``.

    Parameters
    ----------
    kind : str
        The name (e.g. ``"ilp"``); ``config_cls`` must have ``kind: Literal[kind]``.
    config_cls : type of Config
        The linker's config model.
    linker_cls : type of Linker
        A concrete :class:`Linker` subclass whose ``config_class`` is ``config_cls``.

    Raises
    ------
    ConfigError
        If an argument breaks one of these rules (the message says how to fix it).
    """
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"a linker kind must be a non-empty string, got {kind!r}")
    if not (isinstance(config_cls, type) and issubclass(config_cls, Config)):
        raise ConfigError(
            f"the config class of linker '{kind}' must subclass celltrack.config.Config, got "
            f"{config_cls!r}"
        )
    kind_field = config_cls.model_fields.get("kind")
    annotation = None if kind_field is None else kind_field.annotation
    if typing.get_origin(annotation) is not typing.Literal or typing.get_args(annotation) != (
        kind,
    ):
        raise ConfigError(
            f"{config_cls.__name__} must have the field `kind: Literal[{kind!r}] = "
            f"Field({kind!r}, ...)` to be registered as linker '{kind}'; got "
            f"{'no kind field' if kind_field is None else f'kind: {annotation}'}"
        )
    if not (isinstance(linker_cls, type) and issubclass(linker_cls, Linker)):
        raise ConfigError(
            f"the linker class of '{kind}' must subclass celltrack.solve.Linker (and implement "
            f"_link), got {linker_cls!r}"
        )
    if inspect.isabstract(linker_cls):
        raise ConfigError(f"{linker_cls.__name__} is abstract: implement _link(candidates)")
    own = getattr(linker_cls, "config_class", None)
    if own is None or not issubclass(config_cls, own):
        raise ConfigError(
            f"{linker_cls.__name__}.config_class is {getattr(own, '__name__', own)}, but it is "
            f"registered with {config_cls.__name__}: set `config_class = {config_cls.__name__}`"
        )
    _REGISTRY[kind] = (config_cls, linker_cls)


def linker_kinds() -> list[str]:
    """Names of all registered linkers."""
    import celltrack.solve  # noqa: F401  (registers the built-in linkers)

    return sorted(_REGISTRY)


def _unknown_kind(kind: Any) -> ConfigError:
    kinds = linker_kinds()
    close = difflib.get_close_matches(str(kind), kinds, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(
        f"unknown linker kind {kind!r}; known kinds: {', '.join(kinds)}.{hint} A linker of your "
        "own must be registered with celltrack.solve.register_linker first"
    )


def linker_config(value: Config | str | dict[str, Any], **overrides: Any) -> Config:
    """The validated config of a registered linker kind.

    Parameters
    ----------
    value : Config, str or dict
        A registered linker config instance, a kind name (its defaults) or a mapping with
        ``kind`` and config fields.
    **overrides
        Config fields to set on top.

    Returns
    -------
    Config
        An instance of the registered config class of that kind.

    Raises
    ------
    ConfigError
        For an unknown kind (the message lists the known ones and the closest match), a
        config instance of an unregistered class, or invalid fields.

    Examples
    --------
    >>> linker_config({"kind": "greedy", "max_cost": 8.0}).max_cost
    8.0
    """
    linker_kinds()  # registers the built-ins
    if isinstance(value, Config):
        kind = getattr(value, "kind", None)
        entry = _REGISTRY.get(kind) if isinstance(kind, str) else None
        if entry is None or not isinstance(value, entry[0]):
            raise ConfigError(
                f"{type(value).__name__} is not a registered linker config (kind {kind!r}); "
                f"known kinds: {', '.join(sorted(_REGISTRY))}"
            )
        if not overrides:
            return value
        data = {**value.model_dump(), **overrides}
    elif isinstance(value, str):
        data = {"kind": value, **overrides}
    elif isinstance(value, dict):
        data = {**value, **overrides}
    else:
        raise ConfigError(
            "a linker config must be a linker Config, a kind name or a dict with 'kind', got "
            f"{type(value).__name__}"
        )
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _REGISTRY:
        raise _unknown_kind(kind)
    from celltrack.config import config_from_dict

    return config_from_dict(data, _REGISTRY[kind][0])


def make_linker(config: Config | str | dict[str, Any], **overrides: Any) -> Linker:
    """Build a linker from its config, its ``kind`` name, or a dict with a ``kind`` key.

    Parameters
    ----------
    config : Config, str or dict
        A linker config instance, a registered kind (``"greedy"``, ``"flow_nn"``,
        ``"ilp"`` or one registered with :func:`register_linker`) or a mapping with
        ``kind`` and config fields.
    **overrides
        Config fields to set on top.

    Raises
    ------
    ConfigError
        For an unknown kind (the message lists the known ones and the closest match).
    """
    cfg = linker_config(config, **overrides)
    return _REGISTRY[cfg.kind][1](cfg)  # type: ignore[attr-defined]
