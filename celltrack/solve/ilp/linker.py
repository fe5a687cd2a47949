"""ILPLinker: Linajea's tree ILP, solved exactly with OR-Tools CP-SAT.

Pipeline of :meth:`ILPLinker.link` (one function per phase in :mod:`.phases`):

1. read the candidate graph into arrays (:class:`LinkingProblem`), add the cost and
   constraint terms (:mod:`.costs`, :mod:`.constraints`; with division or persistence
   weights also :mod:`.pair_definition`, :mod:`.pair_cost`, :mod:`.short_track`,
   :mod:`.short_daughter`, :mod:`.child_count`), scale costs to integers
   (:mod:`.scaling`);
2. exact presolve: drop edges that can never pay off (:func:`.presolve.dominated_edges`);
3. LP relaxation with HiGHS (``use_lp``): a certified lower bound, a start solution (the LP
   optimum when integral, else a greedy completion ordered by LP values) and exact
   reduced-cost fixing, which removes most variables. The LP is solved per connected
   component (``lp_components``) and, on long movies, on overlapping time windows whose
   multipliers are stitched by seam repair (``lp_window_frames``, :mod:`.windows`);
   whatever multipliers result, the bound is recomputed from them over all rows;
4. CP-SAT on the remaining free variables, hinted with the start solution; it proves the
   optimum of the remainder, which (by the fixing argument) is the global optimum.

When the LP optimum is fractional (or the windows' values do not fit together at a seam),
a neighbourhood of those values is solved exactly (:mod:`.local`, one connected component
at a time): for a start solution, and inside a Lagrangian bound that keeps those rows
integral — usually enough to close the gap without any search.

Status is OPTIMAL only when proven: by CP-SAT on the remainder, or by a certified bound
equal to the objective (LP or local Lagrangian bound, recomputed in our own code from the
LP multipliers in exact integer arithmetic — multipliers rounded to multiples of 2^-k, no
float margin — and rounded up because costs are integers). Objective and bound are in
cost units.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.solve.base import Linker, LinkResult
from celltrack.solve.ilp.config import ILPConfig
from celltrack.solve.ilp.problem import LinkingProblem
from celltrack.solve.validate import bool_mask

if TYPE_CHECKING:
    from celltrack.solve.ilp.model import ModelArrays, StandardModel

__all__ = ["ILPLinker", "build_arrays", "build_model"]

logger = logging.getLogger(__name__)


def build_arrays(
    problem: LinkingProblem,
    cfg: ILPConfig,
    terms: list | None = None,
    *,
    pins: bool = True,
    every: bool = False,
) -> tuple[ModelArrays, list]:
    """The model's arrays before integer scaling, and its cost terms.

    Parameters
    ----------
    problem : LinkingProblem
    cfg : ILPConfig
    terms : list, optional
        Further cost/constraint objects with ``name`` and ``apply(model)``.
    pins : bool
        Honour the node/edge ``pin`` columns (default True).
    every : bool
        Create every cost term, also those with weight 0 (see
        :func:`.costs.default_costs`; for learning).
    """
    from celltrack.solve.ilp.constraints import Pins, default_constraints
    from celltrack.solve.ilp.costs import default_costs
    from celltrack.solve.ilp.model import ModelArrays

    arrays = ModelArrays(problem)
    costs = default_costs(arrays, cfg, every=every)
    constraints = [c for c in default_constraints() if pins or not isinstance(c, Pins)]
    if every or cfg.uses_division_terms:
        from celltrack.solve.ilp.child_count import ChildCount

        constraints.append(ChildCount())
    for term in [*costs, *constraints, *(terms or [])]:
        term.apply(arrays)
    return arrays, costs


def build_model(
    problem: LinkingProblem, cfg: ILPConfig, terms: list | None = None, *, pins: bool = True
) -> StandardModel:
    """Apply the config's cost terms, the tree constraints and any extra ``terms``.

    Parameters
    ----------
    problem : LinkingProblem
    cfg : ILPConfig
    terms : list, optional
        Further cost/constraint objects with ``name`` and ``apply(model)``.
    pins : bool
        Honour the node/edge ``pin`` columns (default True).

    Returns
    -------
    StandardModel
        Integer costs (scaled by ``cfg.cost_scale``), rows and pinned bounds.
    """
    from celltrack.solve.ilp.scaling import scale_costs

    arrays, _ = build_arrays(problem, cfg, terms, pins=pins)
    c_int = scale_costs(arrays.costs, arrays.num_vars, cfg.cost_scale)
    return arrays.finish(c_int, cfg.cost_scale)


class ILPLinker(Linker):
    """Exact tree-ILP linker (Linajea's formulation) on CP-SAT.

    Parameters
    ----------
    config : ILPConfig, optional
        Costs and solver settings (defaults: :class:`ILPConfig`).
    terms : list, optional
        Extra cost/constraint terms (objects with ``name`` and ``apply(model)``, see
        :mod:`.costs` / :mod:`.constraints`) added after the config's. With extra terms (or
        an active division or persistence term) the dominated-edge presolve is skipped
        (its proof assumes the node, edge, appear, split and disappear terms only).

    Examples
    --------
    >>> from celltrack.graph import TrackGraph
    >>> g = TrackGraph({"id": [0, 1], "t": [0, 1], "z": [0., 0.], "y": [0., 0.],
    ...                 "x": [0., 1.], "score": [1., 1.]},
    ...                {"source": [0], "target": [1], "pred_distance": [1.0]})
    >>> result = ILPLinker(ILPConfig(border_distance_um=0)).link(g)
    >>> result.status.value, result.graph.num_edges
    ('optimal', 1)
    """

    config_class = ILPConfig
    config: ILPConfig

    def __init__(self, config: ILPConfig | None = None, *, terms: list | None = None) -> None:
        super().__init__(config)
        self.terms = list(terms or [])

    def _link(self, candidates: TrackGraph, *, hint_edges: Any | None = None) -> LinkResult:
        """Select the minimum-cost lineage forest among the candidate edges.

        Parameters
        ----------
        candidates : TrackGraph
            Candidate graph (node ``score``, edge column ``cfg.edge_feature``, optional
            node/edge ``pin`` and node ``appear_free``, attrs ``roi_um``).
        hint_edges : array_like of bool, shape (E,), optional
            A start solution (e.g. from the greedy linker); used instead of the built-in
            hint when feasible.

        Returns
        -------
        LinkResult
            ``graph`` holds the selected nodes and edges with all candidate columns;
            ``objective``/``bound`` in cost units; ``stats`` counts variables, fixings and
            names the proof of optimality (``proof``: "cpsat", "lp_certificate",
            "lagrangian_certificate", "presolve", or None when not proven optimal);
            ``timings``: ``build``, ``presolve``, ``lp``, ``hint``, ``local``,
            ``cpsat_build``, ``cpsat_solve`` (s, those that ran). INFEASIBLE when the pins
            contradict the constraints.

        Raises
        ------
        GraphError, InvalidInputError
            Missing edge feature, NaN costs, costs overflowing the scaling, a
            ``hint_edges`` mask of the wrong shape.
        """
        from celltrack.solve.ilp import phases

        cfg = self.config
        search = phases.build(candidates, cfg, self.terms)
        hint = phases.check_hint(search.problem, hint_edges)
        dominance = cfg.presolve_edges and not self.terms and not cfg.uses_division_terms
        phases.presolve(search, dominance=dominance, pairs=cfg.presolve_edges and not self.terms)
        phases.bound_and_start(search, hint)
        rest = phases.fix_variables(search)
        outcome = phases.solve(search, rest)
        return phases.extract(search, candidates, outcome)

    def objective_of(
        self,
        candidates: TrackGraph,
        selected_edge_mask: Any,
        selected_node_mask: Any | None = None,
    ) -> float:
        """Objective (cost units) of a given selection under the ILP's costs.

        Parameters and errors as :meth:`Linker.objective_of` (tree rules: ≤ 1 parent,
        ≤ 2 children, every selected edge with its nodes); pins are not checked.
        """
        problem = LinkingProblem.from_graph(candidates)
        edges = bool_mask(selected_edge_mask, problem.num_edges, "selected_edge_mask")
        if selected_node_mask is None:
            nodes = np.zeros(problem.num_nodes, bool)
            nodes[problem.src[edges]] = True
            nodes[problem.tgt[edges]] = True
        else:
            nodes = bool_mask(selected_node_mask, problem.num_nodes, "selected_node_mask")
        from celltrack.solve.ilp.model import complete_assignment

        model = build_model(problem, self.config, self.terms, pins=False)
        z = complete_assignment(model, problem, nodes, edges)
        out_of_bounds = np.flatnonzero((z < model.lb) | (z > model.ub))
        if out_of_bounds.size:
            block = next(k for k, b in model.blocks.items() if b.start <= out_of_bounds[0] < b.stop)
            raise InvalidInputError(
                f"the selection breaks a bound of the '{block}' variables set by a constraint "
                f"term (e.g. a forbidden split); {out_of_bounds.size} variables affected"
            )
        bad = model.violated_rows(z)
        if bad.size:
            raise InvalidInputError(
                "the selection is not a lineage forest of selected nodes: it breaks "
                f"{model.row_name(int(bad[0]))} ({bad.size} violated rows). Every selected "
                "edge needs both nodes selected, ≤ 1 parent and ≤ 2 children per node."
            )
        return model.objective(z) / self.config.cost_scale
