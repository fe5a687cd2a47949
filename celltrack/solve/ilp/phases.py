"""The phases of :meth:`ILPLinker._link <celltrack.solve.ilp.ILPLinker>`, one function each.

A run threads one :class:`Search` (the model, the current variable bounds, the best start
solution and the proven bounds) through:

1. :func:`build` — candidate graph → :class:`LinkingProblem` → integer :class:`StandardModel`;
2. :func:`presolve` — pins that contradict a constraint row (raises :class:`Infeasible`),
   exact dominance that drops edges which can never pay off;
3. :func:`relax` — the LP relaxation (HiGHS): a certified lower bound and multipliers;
4. :func:`warm_start` — start solutions (the caller's hint, the integral LP optimum, greedy
   completions); :func:`local_search` improves them and the bound around the LP's
   fractional values;
5. :func:`fix_variables` — exact reduced-cost fixing, the model on what stays free;
6. :func:`solve` — CP-SAT on the free variables (or nothing to do when they are all
   fixed), statuses and the proof of optimality;
7. :func:`extract` — the selected forest as a :class:`LinkResult`.

This module imports the solvers (scipy.optimize, OR-Tools); the linker imports it only
when it runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from celltrack.graph import TrackGraph
from celltrack.solve.base import Infeasible, LinkResult, SolveStatus
from celltrack.solve.ilp.config import ILPConfig
from celltrack.solve.ilp.cpsat import solve_cpsat
from celltrack.solve.ilp.hint import assignment_from_edges, greedy_assignment
from celltrack.solve.ilp.linker import build_model
from celltrack.solve.ilp.local import (
    fractional_neighbourhood,
    local_lagrangian_bound,
    local_repair,
)
from celltrack.solve.ilp.lp import LPResult, reduced_cost_fixing, solve_lp
from celltrack.solve.ilp.model import StandardModel
from celltrack.solve.ilp.presolve import (
    Restricted,
    dominated_edges,
    dominated_lone_edges,
    dominated_pairs,
    restrict,
)
from celltrack.solve.ilp.problem import LinkingProblem
from celltrack.solve.ilp.short_daughter_cut import fix_with_pairs
from celltrack.solve.validate import bool_mask

__all__ = [
    "Outcome",
    "Search",
    "build",
    "extract",
    "fix_variables",
    "local_search",
    "presolve",
    "relax",
    "run",
    "solve",
    "warm_start",
]

logger = logging.getLogger(__name__)

#: :func:`local_search` doubles its neighbourhood only while it grows by at most this
#: factor or stays below ``LOCAL_SMALL`` variables
LOCAL_GROWTH, LOCAL_SMALL = 4, 20000


@dataclass
class Search:
    """State of one ILP run, shared by the phases.

    Attributes
    ----------
    cfg : ILPConfig
    problem : LinkingProblem
    model : StandardModel
        The full integer model (costs scaled by ``cfg.cost_scale``).
    start : float
        ``time.perf_counter()`` at the start of the run (s).
    lb, ub : ndarray of int64, shape (V,)
        Current variable bounds (tightened by presolve and fixing).
    lp : LPResult or None
        The LP relaxation, when solved.
    lp_rest : Restricted or None
        The model the LP was solved on.
    fixing : LPResult or None
        The relaxation whose reduced costs drive the fixing (the LP, or the stronger
        local Lagrangian bound).
    incumbent : ndarray of int64, shape (V,), or None
        Best feasible assignment found so far; ``upper`` its objective (integer units).
    lower : int or None
        Best proven lower bound (integer units).
    stats, timings : dict
        What the result reports (timings in s).
    """

    cfg: ILPConfig
    problem: LinkingProblem
    model: StandardModel
    start: float
    lb: np.ndarray
    ub: np.ndarray
    stats: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    lp: LPResult | None = None
    lp_rest: Restricted | None = None
    fixing: LPResult | None = None
    incumbent: np.ndarray | None = None
    upper: int | None = None
    lower: int | None = None

    def offer(self, candidate: np.ndarray) -> None:
        """Keep ``candidate`` if it is feasible within the bounds and beats the incumbent."""
        model = self.model
        if not model.is_feasible(candidate):
            return
        if np.any(candidate < self.lb) or np.any(candidate > self.ub):
            return
        value = model.objective(candidate)
        if self.upper is None or value < self.upper:
            self.incumbent, self.upper = candidate, value

    @property
    def gap_closed(self) -> bool:
        """Whether the start solution is proven optimal by the lower bound."""
        return self.upper is not None and self.lower is not None and self.upper <= self.lower

    def infeasible(self, rows: np.ndarray) -> Infeasible:
        """The :class:`Infeasible` signal for constraint rows the pins violate."""
        self.stats["proof"] = None
        reason = f"pins contradict {self.model.row_name(int(rows[0]))}"
        return Infeasible(reason, self.stats, self.timings)


@dataclass
class Outcome:
    """What :func:`solve` found (objective and bound in integer units)."""

    status: SolveStatus
    z: np.ndarray | None
    objective: int | None
    bound: int | None
    proof: str | None


def _add_time(search: Search, phase: str, t0: float) -> None:
    """Add the time since ``t0`` to ``search.timings[phase]`` (a phase may run twice)."""
    search.timings[phase] = search.timings.get(phase, 0.0) + time.perf_counter() - t0


def build(candidates: TrackGraph, cfg: ILPConfig, terms: list) -> Search:
    """Phase 1: the linking problem and its integer model (timing ``build``)."""
    start = time.perf_counter()
    problem = LinkingProblem.from_graph(candidates)
    stats: dict[str, Any] = {}
    if problem.num_edges == 0:
        logger.warning(
            "the candidate graph has no edges: every selected node is a one-frame track; "
            "check build_candidates' max_distance_um"
        )
        stats["warning"] = "no candidate edges"
    model = build_model(problem, cfg, terms)
    stats.update(
        nodes=problem.num_nodes,
        edges=problem.num_edges,
        variables=model.num_vars,
        rows=int(model.A.shape[0]),
        cost_scale=cfg.cost_scale,
    )
    search = Search(
        cfg, problem, model, start, model.lb.copy(), model.ub.copy(), stats=stats
    )
    search.timings["build"] = time.perf_counter() - start
    return search


def presolve(search: Search, dominance: bool, pairs: bool = False) -> None:
    """Phase 2: pin contradictions (raise :class:`Infeasible`), dominated edges and
    divisions (timing ``presolve``).

    Parameters
    ----------
    search : Search
    dominance : bool
        Drop dominated edges (:func:`.presolve.dominated_edges`; valid for the built-in
        terms only).
    pairs : bool
        Drop dominated candidate divisions (:func:`.presolve.dominated_pairs`), then the
        edges in no candidate division left that can never pay off as a lone child
        (:func:`.presolve.dominated_lone_edges`); valid for the config's own terms, both
        check the blocks themselves.
    """
    model = search.model
    pinned = restrict(model, search.lb, search.ub)
    if pinned.infeasible_rows.size:
        raise search.infeasible(pinned.infeasible_rows)
    t0 = time.perf_counter()
    if dominance:
        drop = dominated_edges(model, search.problem)
        search.ub[np.flatnonzero(drop) + model.blocks["edge"].start] = 0
        search.stats["presolve_dropped_edges"] = int(drop.sum())
    if pairs and "pair" in model.blocks:
        drop = dominated_pairs(model, search.problem)
        search.ub[np.flatnonzero(drop) + model.blocks["pair"].start] = 0
        search.stats["presolve_dropped_pairs"] = int(drop.sum())
        drop = dominated_lone_edges(model, search.problem, search.ub)
        search.ub[np.flatnonzero(drop) + model.blocks["edge"].start] = 0
        search.stats["presolve_dropped_edges"] = int(drop.sum())
    fix_with_pairs(model, search.ub)
    search.timings["presolve"] = time.perf_counter() - t0


def relax(search: Search, *, windows: bool = True) -> None:
    """Phase 3: the LP relaxation, a certified lower bound (timing ``lp``).

    Per connected component (``cfg.lp_components``), on time windows for long movies
    (``cfg.lp_window_frames`` unless ``windows`` is False; stats ``lp_windows``,
    ``lp_window_time``, ``lp_seam_time``); the bound is certified in exact integer
    arithmetic (:func:`.lp.exact_dual`).
    """
    t0 = time.perf_counter()
    search.lp_rest = restrict(search.model, search.lb, search.ub)
    cfg = search.cfg
    frames = None
    if windows and cfg.lp_window_frames > 0:
        from celltrack.solve.ilp.windows import variable_frames

        all_frames = variable_frames(search.model, search.problem)
        frames = None if all_frames is None else all_frames[search.lp_rest.free]
    lp = solve_lp(
        search.lp_rest,
        search.model.num_vars,
        cfg.time_limit_s,
        split=cfg.lp_components,
        frames=frames,
        window=cfg.lp_window_frames,
        overlap=cfg.lp_window_overlap,
        seam=cfg.lp_seam_frames,
        workers=cfg.num_workers,
        presolve=cfg.lp_presolve,
    )
    search.stats.update(lp.info)
    search.lp = search.fixing = lp
    _add_time(search, "lp", t0)
    search.stats["lp_integral"] = lp.integral if lp.ok else None
    if lp.ok:
        search.lower = lp.bound if search.lower is None else max(search.lower, lp.bound)
        search.stats["lp_bound"] = lp.bound / search.cfg.cost_scale


def _start_solutions(search: Search, hint_edges: np.ndarray | None) -> Iterator[np.ndarray]:
    model, problem, lp = search.model, search.problem, search.lp
    if hint_edges is not None:
        yield assignment_from_edges(model, problem, hint_edges)
    if lp is not None and lp.ok:
        if lp.integral:
            yield np.rint(lp.values).astype(np.int64)
        ys, xs = model.blocks["edge"], model.blocks["node"]
        # the LP's nodes and edges rounded, the other blocks derived from them (often
        # optimal when only derived indicators such as splits are fractional)
        yield assignment_from_edges(model, problem, lp.values[ys] > 0.5, lp.values[xs] > 0.5)
        yield greedy_assignment(model, problem, priority=lp.values[ys] - 1e-9 * model.c[ys])
    else:
        bounded = replace(model, lb=search.lb, ub=search.ub)
        yield greedy_assignment(bounded, problem)


def check_hint(problem: LinkingProblem, hint_edges: Any | None) -> np.ndarray | None:
    """The caller's ``hint_edges`` as a bool mask of shape (E,), validated (or None)."""
    if hint_edges is None:
        return None
    mask = np.asarray(hint_edges)
    if mask.dtype != bool and mask.size == problem.num_edges:
        mask = mask.astype(bool)
    return bool_mask(mask, problem.num_edges, "hint_edges")


def warm_start(search: Search, hint_edges: np.ndarray | None) -> None:
    """Phase 4: offer every start solution, keep the best feasible one (timing ``hint``)."""
    t0 = time.perf_counter()
    for candidate in _start_solutions(search, hint_edges):
        search.offer(candidate)
    _add_time(search, "hint", t0)


def local_search(search: Search) -> None:
    """Phase 4b: around a fractional LP optimum, exact local repair and a stronger bound.

    Solves the neighbourhood of the fractional values exactly (a start solution) and
    inside a Lagrangian bound that keeps those rows integral. The neighbourhood starts at
    one hop and doubles up to ``cfg.local_hops`` while the gap stays open and the
    neighbourhood stays local (it grows by at most ``LOCAL_GROWTH`` or stays under
    ``LOCAL_SMALL`` variables; stat ``local_stopped`` when it did not) (timing ``local``).
    Starting small matters: the fractional structures of division-aware costs are a few
    variables each, and one wide neighbourhood merges them into components too large to
    solve within the budget. After a windowed LP the
    variables of the seam rows that the rounded values break are repaired too (stat
    ``seam_broken_rows``). Neighbourhoods are solved one connected component at a time.
    Does nothing unless the LP values are fractional or broken at a seam and
    ``cfg.local_hops > 0``.
    """
    cfg, lp, rest = search.cfg, search.lp, search.lp_rest
    seeds = None if lp is None else lp.uncertain
    if seeds is not None and seeds.size == 0:
        seeds = None
    if lp is None or rest is None or not lp.ok or cfg.local_hops <= 0:
        return
    if lp.integral and seeds is None:
        return
    t0 = time.perf_counter()
    values = lp.values[rest.free]
    if seeds is not None:
        # of the seams, only the rows that the rounded values break need repair
        broken = np.flatnonzero(rest.A @ np.rint(values).astype(np.int64) > rest.b)
        seeds = np.intersect1d(seeds, rest.A[broken].indices) if broken.size else None
        search.stats["seam_broken_rows"] = int(broken.size)
        if lp.integral and seeds is None:
            _add_time(search, "local", t0)
            return
    hops = 1
    budget = min(10.0, 0.2 * cfg.time_limit_s)
    options = dict(num_workers=cfg.num_workers, random_seed=cfg.random_seed)
    previous = 0
    while hops <= cfg.local_hops:
        if search.gap_closed:
            break
        # each step gets its share of the budget, never more than what is left of it
        left = cfg.time_limit_s - (time.perf_counter() - search.start)
        if left <= 0:
            search.stats["local_out_of_time"] = True
            break
        options["time_limit_s"] = min(budget, left)
        rows, variables = fractional_neighbourhood(rest, values, hops, seeds)
        if previous and variables.size > max(LOCAL_GROWTH * previous, LOCAL_SMALL):
            # the doubled neighbourhood is no longer local: CP-SAT on what the fixing
            # leaves free is cheaper than two time-limited solves of it
            search.stats["local_stopped"] = int(variables.size)
            break
        previous = int(variables.size)
        search.stats["local_hops"], search.stats["local_variables"] = hops, int(variables.size)
        z = local_repair(rest, values, variables, **options)
        if z is not None:
            search.offer(rest.expand(z))
        local = local_lagrangian_bound(rest, lp.mu, rows, variables, **options)
        if local is not None and search.lower is not None and local.bound > search.lower:
            search.lower = local.bound
            search.stats["local_bound"] = local.bound / cfg.cost_scale
            reduced = np.zeros(search.model.num_vars)
            reduced[rest.free] = local.reduced
            reduced_scaled = np.zeros(search.model.num_vars, np.int64)
            reduced_scaled[rest.free] = local.reduced_scaled
            search.fixing = replace(
                lp,
                bound=local.bound,
                bound_float=local.bound_float,
                reduced=reduced,
                denominator=local.denominator,
                reduced_scaled=reduced_scaled,
                bound_scaled=local.bound_scaled,
            )
        hops *= 2
    _add_time(search, "local", t0)


def bound_and_start(search: Search, hint_edges: np.ndarray | None) -> None:
    """Phases 3–4b: the LP bound (if ``cfg.use_lp``), start solutions and local search.

    When a windowed LP leaves the gap open, the whole model's LP is solved once more and
    phases 4–4b rerun on it (stat ``lp_windows_fallback``): the windows' stitched bound
    is weaker than the LP's, and a weak bound leaves CP-SAT a large, hard model (in one
    cost fit: 63k free variables and 118 s instead of 40k and 2.5 s).
    """
    if search.cfg.use_lp:
        relax(search)
    warm_start(search, hint_edges)
    local_search(search)
    if "lp_windows" in search.stats and not search.gap_closed:
        search.stats["lp_windows_fallback"] = True
        relax(search, windows=False)
        warm_start(search, hint_edges)
        local_search(search)


def fix_variables(search: Search) -> Restricted:
    """Phase 5: reduced-cost fixing; the model on its free variables.

    When the certified bound already equals the start solution's objective (and
    ``cfg.prove_with_cpsat`` is off) every variable is fixed to the start solution.

    Raises
    ------
    Infeasible
        If the fixed variables violate a row (pins contradicting the constraints).
    """
    fixing, stats = search.fixing, search.stats
    if fixing is not None and fixing.ok and search.incumbent is not None:
        search.lb, search.ub, nfix = reduced_cost_fixing(
            fixing, search.incumbent, search.upper, search.lb, search.ub
        )
        stats["reduced_cost_fixed"] = nfix
    rest = restrict(search.model, search.lb, search.ub)
    if not search.cfg.prove_with_cpsat and search.incumbent is not None and search.gap_closed:
        rest = restrict(search.model, search.incumbent, search.incumbent)
    stats["free_variables"] = int(rest.free.size)
    stats["free_rows"] = int(rest.A.shape[0])
    if rest.infeasible_rows.size:
        raise search.infeasible(rest.infeasible_rows)
    return rest


def _proof_without_search(search: Search) -> str:
    if search.lp is not None and search.lp.ok:
        return "lagrangian_certificate" if "local_bound" in search.stats else "lp_certificate"
    return "presolve"


def solve(search: Search, rest: Restricted) -> Outcome:
    """Phase 6: CP-SAT on the free variables; status, objective, bound and proof.

    Raises
    ------
    Infeasible
        If CP-SAT proves the remaining problem infeasible.
    """
    cfg, model, stats = search.cfg, search.model, search.stats
    if rest.free.size == 0:
        # every variable is fixed by exact arguments (pins, dominance, reduced costs):
        # the remaining assignment is optimal
        z = rest.fixed_values
        value = model.objective(z)
        return Outcome(SolveStatus.OPTIMAL, z, value, value, _proof_without_search(search))
    hint = None if search.incumbent is None or not cfg.hint else search.incumbent[rest.free]
    remaining = max(1.0, cfg.time_limit_s - (time.perf_counter() - search.start))
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
    search.timings["cpsat_build"] = out.build_time_s
    search.timings["cpsat_solve"] = out.wall_time_s
    stats.update(out.stats)
    stats["cpsat_status"] = out.status
    upper, lower = search.upper, search.lower
    if out.status in ("OPTIMAL", "FEASIBLE") and out.values is not None:
        z = rest.expand(out.values)
        value = model.objective(z)
        if out.status == "OPTIMAL":
            outcome = Outcome(SolveStatus.OPTIMAL, z, value, value, "cpsat")
        else:
            cp_bound = rest.constant + int(out.bound)
            gate = cp_bound if upper is None else min(cp_bound, upper)
            bound = gate if lower is None else max(lower, gate)
            outcome = Outcome(SolveStatus.FEASIBLE, z, value, bound, None)
        if search.incumbent is not None and upper is not None and upper < value:
            outcome.z, outcome.objective = search.incumbent, upper  # never worse than the start
        return outcome
    if out.status == "INFEASIBLE":
        stats["proof"] = None
        raise Infeasible(
            "CP-SAT proved that no lineage forest satisfies the pins and constraints",
            stats,
            search.timings,
        )
    if search.incumbent is not None:
        return Outcome(SolveStatus.FEASIBLE, search.incumbent, upper, lower, None)
    return Outcome(SolveStatus.NO_SOLUTION, None, None, lower, None)


def extract(search: Search, candidates: TrackGraph, outcome: Outcome) -> LinkResult:
    """Phase 7: the selected forest; OPTIMAL when the bound meets the objective."""
    status, bound, proof = outcome.status, outcome.bound, outcome.proof
    z, objective = outcome.z, outcome.objective
    if z is not None and bound is not None and objective is not None and bound >= objective:
        status, bound = SolveStatus.OPTIMAL, objective
        proof = proof or "lp_certificate"
    search.stats["proof"] = proof if status == SolveStatus.OPTIMAL else None
    model = search.model
    if z is None:
        graph = candidates.subgraph(
            nodes=np.zeros(candidates.num_nodes, bool), edges=np.zeros(candidates.num_edges, bool)
        )
    else:
        nodes = z[model.blocks["node"]].astype(bool)
        edges = z[model.blocks["edge"]].astype(bool)
        graph = candidates.subgraph(nodes=nodes, edges=edges).validate(forest=True)
    scale = search.cfg.cost_scale
    return LinkResult(
        graph=graph,
        status=status,
        objective=None if objective is None else objective / scale,
        bound=None if bound is None else bound / scale,
        timings=search.timings,
        stats=search.stats,
    )


def run(
    search: Search, hint_edges: np.ndarray | None = None, *, dominance: bool = False
) -> Outcome:
    """Phases 2–6 on a prepared :class:`Search` (e.g. a model with changed costs).

    Parameters
    ----------
    search : Search
        Its ``model`` may be any :class:`StandardModel` of the tree ILP.
    hint_edges : ndarray of bool, shape (E,), optional
        A start solution.
    dominance : bool
        Apply the dominated-edge presolve (only valid for the built-in terms).

    Returns
    -------
    Outcome
        Raises :class:`Infeasible` as the phases do.
    """
    presolve(search, dominance=dominance)
    bound_and_start(search, hint_edges)
    rest = fix_variables(search)
    return solve(search, rest)
