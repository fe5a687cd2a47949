"""ILPLinker: Linajea's tree ILP, solved exactly with OR-Tools CP-SAT.

Pipeline of :meth:`ILPLinker.link`:

1. read the candidate graph into arrays (:class:`LinkingProblem`), add the cost and
   constraint terms (:mod:`.costs`, :mod:`.constraints`), scale costs to integers
   (:mod:`.scaling`);
2. exact presolve: drop edges that can never pay off (:func:`.presolve.dominated_edges`);
3. LP relaxation with HiGHS (``use_lp``): a certified lower bound, a start solution (the LP
   optimum when integral, else a greedy completion ordered by LP values) and exact
   reduced-cost fixing, which removes most variables;
4. CP-SAT on the remaining free variables, hinted with the start solution; it proves the
   optimum of the remainder, which (by the fixing argument) is the global optimum.

When the LP optimum is fractional, a neighbourhood of its fractional values is solved
exactly (:mod:`.local`): for a start solution, and inside a Lagrangian bound that keeps
those rows integral — usually enough to close the gap without any search.

Status is OPTIMAL only when proven: by CP-SAT on the remainder, or by a certified bound
equal to the objective (LP or local Lagrangian bound, recomputed in our own code from the
LP multipliers, with a float safety margin, rounded up because costs are integers).
Objective and bound are in cost units.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np

from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.solve.base import LinkResult, SolveStatus, provenance
from celltrack.solve.ilp.config import ILPConfig
from celltrack.solve.ilp.constraints import Pins, default_constraints
from celltrack.solve.ilp.costs import default_costs
from celltrack.solve.ilp.cpsat import solve_cpsat
from celltrack.solve.ilp.hint import assignment_from_edges, greedy_assignment
from celltrack.solve.ilp.local import (
    fractional_neighbourhood,
    local_lagrangian_bound,
    local_repair,
)
from celltrack.solve.ilp.lp import reduced_cost_fixing, solve_lp
from celltrack.solve.ilp.model import ModelArrays, StandardModel
from celltrack.solve.ilp.presolve import dominated_edges, restrict
from celltrack.solve.ilp.problem import LinkingProblem
from celltrack.solve.ilp.scaling import scale_costs

__all__ = ["ILPLinker", "build_model"]

logger = logging.getLogger(__name__)


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
    arrays = ModelArrays(problem)
    constraints = [c for c in default_constraints() if pins or not isinstance(c, Pins)]
    for term in [*default_costs(arrays, cfg), *constraints, *(terms or [])]:
        term.apply(arrays)
    c_int = scale_costs(arrays.costs, arrays.num_vars, cfg.cost_scale)
    return arrays.finish(c_int, cfg.cost_scale)


class ILPLinker:
    """Exact tree-ILP linker (Linajea's formulation) on CP-SAT.

    Parameters
    ----------
    config : ILPConfig, optional
        Costs and solver settings (defaults: :class:`ILPConfig`).
    terms : list, optional
        Extra cost/constraint terms (objects with ``name`` and ``apply(model)``, see
        :mod:`.costs` / :mod:`.constraints`) added after the config's. With extra terms the
        dominated-edge presolve is skipped (its proof assumes the built-in terms only).

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

    def __init__(self, config: ILPConfig | None = None, *, terms: list | None = None) -> None:
        if config is None:
            config = ILPConfig()
        if not isinstance(config, ILPConfig):
            raise InvalidInputError(
                f"ILPLinker needs an ILPConfig, got {type(config).__name__}"
            )
        self.config = config
        self.terms = list(terms or [])

    # ------------------------------------------------------------------ public
    def link(self, candidates: TrackGraph, *, hint_edges: Any | None = None) -> LinkResult:
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
            "lagrangian_certificate", "presolve", or None when not proven optimal).

        Raises
        ------
        GraphError, InvalidInputError
            Empty graph, missing edge feature, NaN costs, costs overflowing the scaling.
        """
        cfg = self.config
        timings: dict[str, float] = {}
        stats: dict[str, Any] = {}
        t_start = time.perf_counter()
        problem = LinkingProblem.from_graph(candidates)
        if problem.num_edges == 0:
            logger.warning(
                "the candidate graph has no edges: every selected node is a one-frame track; "
                "check build_candidates' max_distance_um"
            )
            stats["warning"] = "no candidate edges"
        model = build_model(problem, cfg, self.terms)
        timings["build"] = time.perf_counter() - t_start
        stats.update(
            nodes=problem.num_nodes,
            edges=problem.num_edges,
            variables=model.num_vars,
            rows=int(model.A.shape[0]),
            cost_scale=cfg.cost_scale,
        )
        lb, ub = model.lb.copy(), model.ub.copy()

        pre = restrict(model, lb, ub)
        if pre.infeasible_rows.size:
            rows = pre.infeasible_rows
            return self._infeasible(candidates, model, rows, timings, stats, t_start)

        t0 = time.perf_counter()
        if cfg.presolve_edges and not self.terms:
            drop = dominated_edges(model, problem)
            ub[np.flatnonzero(drop) + model.blocks["edge"].start] = 0
            stats["presolve_dropped_edges"] = int(drop.sum())
        timings["presolve"] = time.perf_counter() - t0

        incumbent: np.ndarray | None = None
        upper: int | None = None
        lower: int | None = None
        lp = lp_rest = None
        if cfg.use_lp:
            t0 = time.perf_counter()
            lp_rest = restrict(model, lb, ub)
            lp = solve_lp(lp_rest, model.num_vars, cfg.time_limit_s)
            timings["lp"] = time.perf_counter() - t0
            stats["lp_integral"] = lp.integral if lp.ok else None
            if lp.ok:
                lower = lp.bound
                stats["lp_bound"] = lp.bound / cfg.cost_scale
        t0 = time.perf_counter()

        def offer(candidate: np.ndarray) -> None:
            nonlocal incumbent, upper
            if model.is_feasible(candidate) and np.all(candidate >= lb) and np.all(candidate <= ub):
                value = model.objective(candidate)
                if upper is None or value < upper:
                    incumbent, upper = candidate, value

        for candidate in self._start_solutions(model, problem, lp, lb, ub, hint_edges):
            offer(candidate)
        timings["hint"] = time.perf_counter() - t0

        fixing = lp
        if lp is not None and lp.ok and not lp.integral and cfg.local_hops > 0:
            t0 = time.perf_counter()
            values = lp.values[lp_rest.free]
            hops = cfg.local_hops
            budget = min(10.0, 0.2 * cfg.time_limit_s)
            for _ in range(3):
                if upper is not None and lower is not None and upper <= lower:
                    break
                rows, variables = fractional_neighbourhood(lp_rest, values, hops)
                stats["local_hops"], stats["local_variables"] = hops, int(variables.size)
                local_kw = dict(
                    time_limit_s=budget, num_workers=cfg.num_workers, random_seed=cfg.random_seed
                )
                z = local_repair(lp_rest, values, variables, **local_kw)
                if z is not None:
                    offer(lp_rest.expand(z))
                local = local_lagrangian_bound(lp_rest, lp.mu, rows, variables, **local_kw)
                if local is not None and lower is not None and local.bound > lower:
                    lower = local.bound
                    stats["local_bound"] = local.bound / cfg.cost_scale
                    reduced = np.zeros(model.num_vars)
                    reduced[lp_rest.free] = local.reduced
                    fixing = replace(
                        lp, bound=local.bound, bound_float=local.bound_float, reduced=reduced
                    )
                hops *= 2
            timings["local"] = time.perf_counter() - t0

        if fixing is not None and fixing.ok and incumbent is not None and upper is not None:
            lb, ub, nfix = reduced_cost_fixing(fixing, incumbent, upper, lb, ub)
            stats["reduced_cost_fixed"] = nfix
        rest = restrict(model, lb, ub)
        if (
            not cfg.prove_with_cpsat
            and incumbent is not None
            and lower is not None
            and upper is not None
            and upper <= lower
        ):  # the LP certificate closes the gap: the incumbent is optimal
            rest = restrict(model, incumbent, incumbent)
        stats["free_variables"] = int(rest.free.size)
        stats["free_rows"] = int(rest.A.shape[0])
        if rest.infeasible_rows.size:
            rows = rest.infeasible_rows
            return self._infeasible(candidates, model, rows, timings, stats, t_start)

        status, z, proof = SolveStatus.NO_SOLUTION, None, None
        objective, bound = None, lower
        if rest.free.size == 0:
            # every variable is fixed by exact arguments (pins, dominance, reduced costs):
            # the remaining assignment is optimal
            z = rest.fixed_values
            objective = model.objective(z)
            status, bound = SolveStatus.OPTIMAL, objective
            proof = "presolve"
            if lp is not None and lp.ok:
                proof = "lagrangian_certificate" if "local_bound" in stats else "lp_certificate"
        else:
            hint = None if incumbent is None or not cfg.hint else incumbent[rest.free]
            remaining = max(1.0, cfg.time_limit_s - (time.perf_counter() - t_start))
            out = solve_cpsat(
                rest.c,
                rest.A,
                rest.b,
                hint=hint,
                time_limit_s=remaining,
                num_workers=cfg.num_workers,
                random_seed=cfg.random_seed,
                linearization_level=cfg.linearization_level,
                extra=cfg.cpsat_parameters,
                log=cfg.log_search,
            )
            timings["cpsat_build"] = out.build_time_s
            timings["cpsat_solve"] = out.wall_time_s
            stats.update(out.stats)
            stats["cpsat_status"] = out.status
            if out.status in ("OPTIMAL", "FEASIBLE") and out.values is not None:
                z = rest.expand(out.values)
                objective = model.objective(z)
                cp_bound = rest.constant + int(out.bound)
                if out.status == "OPTIMAL":
                    status, proof, bound = SolveStatus.OPTIMAL, "cpsat", objective
                else:
                    status = SolveStatus.FEASIBLE
                    gate = cp_bound if upper is None else min(cp_bound, upper)
                    bound = gate if lower is None else max(lower, gate)
                if incumbent is not None and upper is not None and upper < objective:
                    z, objective = incumbent, upper  # never worse than the start solution
            elif out.status == "INFEASIBLE":
                status = SolveStatus.INFEASIBLE
                bound = None
            elif incumbent is not None:
                z, objective, status = incumbent, upper, SolveStatus.FEASIBLE
        if z is not None and bound is not None and objective is not None and bound >= objective:
            status, bound = SolveStatus.OPTIMAL, objective
            proof = proof or "lp_certificate"
        stats["proof"] = proof if status == SolveStatus.OPTIMAL else None
        timings["total"] = time.perf_counter() - t_start
        graph = self._graph(candidates, model, z)
        scale = cfg.cost_scale
        return LinkResult(
            graph=graph,
            status=status,
            objective=None if objective is None else objective / scale,
            bound=None if bound is None else bound / scale,
            timings=timings,
            parameters=provenance(cfg),
            stats=stats,
        )

    def objective_of(
        self,
        candidates: TrackGraph,
        selected_edge_mask: Any,
        selected_node_mask: Any | None = None,
    ) -> float:
        """Objective (cost units) of a given selection under this linker's costs.

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
            If a mask has the wrong shape or the selection breaks the tree rules (edge
            without its nodes, > 1 parent, > 2 children). Pins are not checked.
        """
        problem = LinkingProblem.from_graph(candidates)
        edges = np.asarray(selected_edge_mask)
        if edges.dtype != bool or edges.shape != (problem.num_edges,):
            raise InvalidInputError(
                f"selected_edge_mask must be a bool array of shape ({problem.num_edges},), "
                f"got {edges.dtype} {edges.shape}"
            )
        if selected_node_mask is None:
            nodes = np.zeros(problem.num_nodes, bool)
            nodes[problem.src[edges]] = True
            nodes[problem.tgt[edges]] = True
        else:
            nodes = np.asarray(selected_node_mask)
            if nodes.dtype != bool or nodes.shape != (problem.num_nodes,):
                raise InvalidInputError(
                    f"selected_node_mask must be a bool array of shape ({problem.num_nodes},), "
                    f"got {nodes.dtype} {nodes.shape}"
                )
        model = build_model(problem, self.config, self.terms, pins=False)
        z = np.zeros(model.num_vars, np.int64)
        z[model.blocks["node"]] = nodes
        z[model.blocks["edge"]] = edges
        children = np.bincount(problem.src[edges], minlength=problem.num_nodes)
        z[model.blocks["split"]] = children == 2
        if "disappear" in model.blocks:
            z[model.blocks["disappear"]] = nodes & (children == 0)
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
                f"{_row_name(model, int(bad[0]))} ({bad.size} violated rows). Every selected "
                "edge needs both nodes selected, ≤ 1 parent and ≤ 2 children per node."
            )
        return model.objective(z) / self.config.cost_scale

    # ------------------------------------------------------------------ helpers
    def _start_solutions(self, model, problem, lp, lb, ub, hint_edges):
        if hint_edges is not None:
            mask = np.asarray(hint_edges, bool)
            if mask.shape != (problem.num_edges,):
                raise InvalidInputError(
                    f"hint_edges must be a bool mask of shape ({problem.num_edges},), "
                    f"got {mask.shape}"
                )
            yield assignment_from_edges(model, problem, mask)
        if lp is not None and lp.ok:
            if lp.integral:
                yield np.rint(lp.values).astype(np.int64)
            ys = model.blocks["edge"]
            yield greedy_assignment(model, problem, priority=lp.values[ys] - 1e-9 * model.c[ys])
        else:
            bounded = StandardModel(model.c, model.A, model.b, lb, ub, model.blocks, model.scale)
            yield greedy_assignment(bounded, problem)

    def _graph(
        self, candidates: TrackGraph, model: StandardModel, z: np.ndarray | None
    ) -> TrackGraph:
        if z is None:
            none_n = np.zeros(candidates.num_nodes, bool)
            return candidates.subgraph(nodes=none_n, edges=np.zeros(candidates.num_edges, bool))
        nodes = z[model.blocks["node"]].astype(bool)
        edges = z[model.blocks["edge"]].astype(bool)
        return candidates.subgraph(nodes=nodes, edges=edges).validate(forest=True)

    def _infeasible(self, candidates, model, rows, timings, stats, t_start) -> LinkResult:
        reason = f"pins contradict {_row_name(model, int(rows[0]))}"
        logger.warning("ILP infeasible: %s", reason)
        stats["infeasible_reason"] = reason
        stats["proof"] = None
        timings["total"] = time.perf_counter() - t_start
        return LinkResult(
            graph=self._graph(candidates, model, None),
            status=SolveStatus.INFEASIBLE,
            objective=None,
            bound=None,
            timings=timings,
            parameters=provenance(self.config),
            stats=stats,
        )


def _row_name(model: StandardModel, row: int) -> str:
    start = 0
    for name, count in model.row_names:
        if row < start + count:
            return f"constraint '{name}' (row {row - start})"
        start += count
    return f"row {row}"  # pragma: no cover
