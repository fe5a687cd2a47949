"""Learn the tree ILP's cost weights from annotated lineages (structured SVM).

Every cost of the ILP is linear in the weights of :class:`ILPConfig`
(:data:`~celltrack.solve.ilp.config.WEIGHT_FIELDS`): with Φ the feature matrix of the
model's variables (:func:`~celltrack.solve.ilp.costs.cost_features`), the energy of an
assignment z is ``E_w(z) = wᵀ Φᵀ z``. Given the annotated assignment z* (the ground-truth
forest on the candidate graph), :func:`fit_costs` minimises the structured hinge loss
(the margin-rescaled SVM of Tsochantaridis et al.; the idea behind motile's
``fit_weights`` and Linajea's cost search)::

    J(w) = λ/2 ‖D w‖² + (1/n) max_z [ Δ(z*, z) + E_w(z*) − E_w(z) ]

over the lineage forests z of the candidate graph, with Δ the weighted Hamming loss over
the annotated node, edge and split variables (n of them) and D a fixed diagonal that puts
every feature on a common scale. Because Δ is linear in z, the inner maximum —
*loss-augmented inference* — is the tree ILP itself with the costs ``Φw − ℓ ⊙ (1 − 2z*)``,
solved exactly by the same LP + CP-SAT machinery as linking. The outer problem is solved
by a proximal bundle method: every inference adds the plane ``Δ(ẑ) + wᵀΦᵀ(z* − ẑ)`` to
a cutting-plane model of J; the next w minimises the model plus a proximal term around
the best iterate so far (a small quadratic program, SLSQP), which keeps the weights of the
next inference close to good ones. The loop stops when the model predicts less than
``tolerance`` (relative) further decrease, or after ``max_iterations``.

Sparse annotations (``sparse=True``): only the annotated nodes, their candidate edges and
their splits enter Δ. The rest of z* is not known; it is imputed as the best forest
under the current weights that agrees with the annotations (the ILP with those
variables fixed), and the weights are refitted against the imputed z* until it stops
changing (the concave-convex procedure of latent structured SVMs).

Weights that must keep a sign for the formulation to stay exact
(:data:`~celltrack.solve.ilp.config.NONNEGATIVE_WEIGHTS`) are constrained to ≥ 0.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.solve.ilp.config import NONNEGATIVE_WEIGHTS, WEIGHT_FIELDS, ILPConfig

__all__ = ["FitResult", "fit_costs"]

logger = logging.getLogger(__name__)

#: learned weights below this fraction of the largest (normalised units) are set to 0
SNAP_TO_ZERO = 1e-4
#: the proximal weight halves after a serious step that achieves half of the predicted
#: decrease and doubles after a null step, within proximal_weight / 64 … · 64 (a fixed
#: weight made every step serious but short: 60 iterations did not converge on ASTEC Pm04)
PROX_FACTOR, PROX_RANGE = 2.0, 64.0
#: loss weight per variable block (Hamming loss), defaults
DEFAULT_LOSS = {"node": 1.0, "edge": 1.0, "split": 0.0, "pair": 1.0}


@dataclass
class FitResult:
    """Outcome of :func:`fit_costs`.

    Attributes
    ----------
    config : ILPConfig
        ``base`` with the learned weights and ``learn=False`` (use it to link; save it
        with :func:`celltrack.config.save_config`).
    weights : dict of str to float
        The learned weights (cost units per feature unit, as in :class:`ILPConfig`).
    loss_history : list of float
        Per iteration: the structured hinge loss (1/n)·max_z[Δ + E(z*) − E(z)] at the
        iterate (loss units per annotated variable).
    objective_history, bound_history : list of float
        Per iteration: J at the iterate, and the cutting-plane model's value at the next
        iterate.
    hamming_history : list of float
        Per iteration: Δ(z*, ẑ)/n of the loss-augmented solution ẑ.
    training_error : float
        Δ(z*, z)/n of plain inference (no loss augmentation) with the learned weights.
    iterations : int
        Loss-augmented inferences run.
    converged : bool
        Whether the predicted decrease fell below ``tolerance``.
    seconds : float
        Wall-clock time of the fit (s).
    stats : dict
        Sizes: variables, annotated variables, matched nodes and edges, candidate pairs.
    """

    config: ILPConfig
    weights: dict[str, float]
    loss_history: list[float] = field(default_factory=list)
    objective_history: list[float] = field(default_factory=list)
    bound_history: list[float] = field(default_factory=list)
    hamming_history: list[float] = field(default_factory=list)
    training_error: float = float("nan")
    iterations: int = 0
    converged: bool = False
    seconds: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- ground truth
def _match(
    candidates: TrackGraph, gt: TrackGraph, match_distance_um: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(gt row → candidate row or −1, candidate row → gt row or −1)."""
    gt_to_cand = np.full(gt.num_nodes, -1, np.int64)
    if match_distance_um is None:
        rows = {int(i): r for r, i in enumerate(candidates.ids.tolist())}
        for g, i in enumerate(gt.ids.tolist()):
            r = rows.get(int(i), -1)
            if r >= 0 and candidates.t[r] == gt.t[g]:
                gt_to_cand[g] = r
    else:
        from celltrack.eval.matching import match_nodes

        m = match_nodes(gt, candidates, float(match_distance_um))
        gt_to_cand[m.gt_rows] = m.pred_rows
    cand_to_gt = np.full(candidates.num_nodes, -1, np.int64)
    ok = gt_to_cand >= 0
    cand_to_gt[gt_to_cand[ok]] = np.flatnonzero(ok)
    return gt_to_cand, cand_to_gt


def _truth(problem, candidates: TrackGraph, gt: TrackGraph, match_distance_um):
    """Annotated nodes and the ground-truth selection on the candidate graph."""
    gt_to_cand, cand_to_gt = _match(candidates, gt, match_distance_um)
    annotated = cand_to_gt >= 0
    if not np.any(annotated):
        raise InvalidInputError(
            "no ground-truth node matches a candidate node: give ground_truth with the "
            "candidates' node ids, or set match_distance_um to match by position"
        )
    gs, gtt = gt.edge_index()
    gt_edges = set(zip(gt_to_cand[gs].tolist(), gt_to_cand[gtt].tolist()))
    src, tgt = problem.src, problem.tgt
    edges = np.fromiter(
        ((a, b) in gt_edges for a, b in zip(src.tolist(), tgt.tolist())), bool, problem.num_edges
    )
    edges &= annotated[src] & annotated[tgt]
    return annotated, edges


def _gt_pairs(problem, edges: np.ndarray) -> np.ndarray:
    """Edge pairs of the ground-truth divisions on the candidate graph, (K, 2)."""
    chosen = np.flatnonzero(edges)
    children = np.bincount(problem.src[chosen], minlength=problem.num_nodes)
    two = chosen[children[problem.src[chosen]] == 2]
    two = two[np.lexsort((two, problem.src[two]))]
    return np.stack([two[0::2], two[1::2]], axis=1) if two.size else np.zeros((0, 2), np.int64)


# ---------------------------------------------------------------------------- the master QP
def _master(
    planes_a: np.ndarray,
    planes_b: np.ndarray,
    lam: float,
    lower: np.ndarray,
    center: np.ndarray,
    prox: float,
    anchor: np.ndarray,
) -> tuple[np.ndarray, float]:
    """Next iterate of the proximal bundle method.

    Minimises the cutting-plane model ``m(w) = λ/2‖w − anchor‖² + max(0, maxᵢ bᵢ + aᵢ·w)``
    plus ``prox/2 ‖w − center‖²`` subject to ``w ≥ lower`` (SLSQP on (w, ξ)); returns the
    minimiser and ``m`` there (a lower model of J, exact on the planes).
    """
    from scipy.optimize import minimize

    k = center.size

    def fun(v):
        d, r = v[:k] - center, v[:k] - anchor
        return 0.5 * lam * float(r @ r) + v[k] + 0.5 * prox * float(d @ d)

    def jac(v):
        g = np.zeros(k + 1)
        g[:k] = lam * (v[:k] - anchor) + prox * (v[:k] - center)
        g[k] = 1.0
        return g

    cons = [
        {
            "type": "ineq",
            "fun": lambda v: v[k] - (planes_b + planes_a @ v[:k]),
            "jac": lambda v: np.hstack([-planes_a, np.ones((planes_a.shape[0], 1))]),
        }
    ]
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower] + [(0.0, None)]
    xi0 = max(0.0, float(np.max(planes_b + planes_a @ center)))
    res = minimize(
        fun,
        np.append(center, xi0),
        jac=jac,
        bounds=bounds,
        constraints=cons,
        method="SLSQP",
        options={"maxiter": 500, "ftol": 1e-12},
    )
    w = np.maximum(res.x[:k], lower)
    r = w - anchor
    value = 0.5 * lam * float(r @ r) + max(0.0, float(np.max(planes_b + planes_a @ w)))
    return w, value


# ---------------------------------------------------------------------------- fitting
def fit_costs(
    candidates: TrackGraph,
    ground_truth: TrackGraph,
    *,
    base: ILPConfig | None = None,
    sparse: bool = False,
    learn: tuple[str, ...] | None = None,
    match_distance_um: float | None = None,
    regularizer_weight: float = 1e-4,
    prior: str = "zero",
    loss_weights: dict[str, float] | None = None,
    max_iterations: int = 40,
    tolerance: float = 0.005,
    latent_rounds: int = 3,
    time_limit_s: float = 120.0,
    proximal_weight: float = 0.05,
) -> FitResult:
    """Learn ILP cost weights from ground-truth lineages on a candidate graph.

    Parameters
    ----------
    candidates : TrackGraph
        The candidate graph the linker will see (from
        :func:`~celltrack.graph.candidates.build_candidates`).
    ground_truth : TrackGraph
        Annotated lineages: every node of it is a cell, every edge a true link. Where a
        node is annotated its parent and children must be too (a lineage fragment ends
        where the annotation ends: with ``sparse``, the candidate edges of an annotated
        node that are not ground-truth edges count as wrong links).
    base : ILPConfig, optional
        Starting weights and the fixed settings (candidate pairs, persistence frames,
        edge feature, solver settings); default :class:`ILPConfig`.
    sparse : bool
        The ground truth covers only some lineages of the candidate graph: only
        annotated nodes and their candidate edges enter the loss (see module docstring).
    learn : tuple of str, optional
        Weights to learn (default: every name in
        :data:`~celltrack.solve.ilp.config.WEIGHT_FIELDS`); the others keep ``base``'s.
    match_distance_um : float, optional
        Match ground-truth nodes to candidates by position within this distance (µm,
        per frame, one-to-one). Default None: by node id (same id and frame).
    regularizer_weight : float
        λ > 0 of the SVM objective (on weights in normalised feature units).
    prior : {"zero", "base"}
        Where the regulariser pulls the weights: towards 0 (``λ/2 ‖D w‖²``, the plain
        SVM) or towards ``base``'s weights (``λ/2 ‖D (w − w_base)‖²``: with few
        annotated divisions a large λ keeps hand-set costs that are known to work and
        moves only the weights the annotations argue for).
    loss_weights : dict, optional
        Hamming loss per annotated ``node``, ``edge``, ``split`` and division ``pair``
        variable (defaults 1, 1, 0, 1: splits are already visible through their edges,
        and a loss on them makes the loss-augmented LP fractional; the ``pair`` loss
        counts every missed and every false division once more, which is what makes the
        fit value divisions: a division is a handful of the tens of thousands of node and
        edge variables: in one trial on held-out ASTEC embryos (``near`` perturbation of
        ``benchmarks/bench_divisions.py``, 100 iterations), pair loss 1 instead of 0 took
        the division F1 from 0.64 / 0.59 to 0.76 / 0.71).
    max_iterations : int
        Most loss-augmented inferences per round (≥ 1).
    tolerance : float
        Stop when (upper − lower bound) ≤ tolerance · upper bound of J (relative, ≥ 0).
    latent_rounds : int
        With ``sparse``: most imputation rounds of the unannotated part.
    time_limit_s : float
        Time limit of each ILP solve (s). A solve stopped by it returns a worse forest, so
        J is underestimated and the fit may stop early: keep it well above the typical
        solve time. On ASTEC Pm04 (2-core machine) most solves take 1–3 s and a few hard
        ones run into the limit with the forest they already hold: 20 s gave the same
        weights as 120 s in 119 s instead of 330 s (``bench_divisions.py`` uses 20 s);
        an earlier solver version with a 10 s limit ended a fit after 8 iterations with
        5× the training error.
    proximal_weight : float
        Weight of the proximal term ``prox/2 ‖w − w_best‖²`` that keeps each new iterate
        near the best one so far (proximal bundle method; normalised feature units, > 0):
        the starting weight, adapted within ÷/× 64 (:data:`PROX_FACTOR`).

    Returns
    -------
    FitResult
        ``config`` holds the learned weights; histories per iteration.

    Raises
    ------
    InvalidInputError
        Unknown weight names, no ground-truth node among the candidates, bad numbers.
    """
    from celltrack.solve.ilp.child_count import ChildCount
    from celltrack.solve.ilp.constraints import default_constraints
    from celltrack.solve.ilp.costs import cost_features, default_costs
    from celltrack.solve.ilp.model import ModelArrays, complete_assignment
    from celltrack.solve.ilp.pair_definition import DivisionPairs
    from celltrack.solve.ilp.problem import LinkingProblem
    from celltrack.solve.ilp.scaling import scale_costs

    start = time.perf_counter()
    cfg = base if base is not None else ILPConfig()
    if not isinstance(cfg, ILPConfig):
        raise InvalidInputError(f"base must be an ILPConfig, got {type(cfg).__name__}")
    names = tuple(WEIGHT_FIELDS if learn is None else learn)
    unknown = [n for n in names if n not in WEIGHT_FIELDS]
    if unknown:
        raise InvalidInputError(
            f"cannot learn {unknown}: learnable weights are {list(WEIGHT_FIELDS)}"
        )
    if not (regularizer_weight > 0 and np.isfinite(regularizer_weight)):
        raise InvalidInputError(f"regularizer_weight must be > 0, got {regularizer_weight}")
    if prior not in ("zero", "base"):
        raise InvalidInputError(f"prior must be 'zero' or 'base', got {prior!r}")
    if max_iterations < 1 or tolerance < 0:
        raise InvalidInputError("max_iterations must be ≥ 1 and tolerance ≥ 0")
    loss = {**DEFAULT_LOSS, **(loss_weights or {})}
    if set(loss) - set(DEFAULT_LOSS):
        raise InvalidInputError(f"loss_weights keys must be in {sorted(DEFAULT_LOSS)}")
    cfg = cfg.model_copy(update={"time_limit_s": float(time_limit_s)})
    # the loss-augmented problems have many tied optima; HiGHS' presolve keeps the LP
    # vertex (and so the tie-breaking) that the learning was tuned with
    solve_cfg = cfg.model_copy(update={"lp_presolve": True})

    # ------------------------------------------------------------------ model and features
    bare = TrackGraph(
        {k: v for k, v in candidates.nodes.items() if k != "pin"},
        {k: v for k, v in candidates.edges.items() if k != "pin"},
        attrs=dict(candidates.attrs),
    )
    problem = LinkingProblem.from_graph(bare)
    annotated, gt_edges = _truth(problem, candidates, ground_truth, match_distance_um)
    arrays = ModelArrays(problem)
    DivisionPairs(
        cfg.division_max_children, cfg.division_max_cos, cfg.edge_feature,
        include=_gt_pairs(problem, gt_edges),
    ).apply(arrays)
    terms = default_costs(arrays, cfg, every=True)
    for term in [*terms, *default_constraints(), ChildCount()]:
        term.apply(arrays)
    model = arrays.finish(np.zeros(arrays.num_vars, np.int64), cfg.cost_scale)
    phi = cost_features(arrays, terms).tocsr()
    col = [WEIGHT_FIELDS.index(n) for n in names]
    fixed = [i for i in range(len(WEIGHT_FIELDS)) if WEIGHT_FIELDS[i] not in names]
    w_base = np.asarray([getattr(cfg, n) for n in WEIGHT_FIELDS], np.float64)
    c_fixed = phi[:, fixed] @ w_base[fixed] if fixed else np.zeros(model.num_vars)
    phi_l = phi[:, col].tocsc()
    scale = np.ones(len(col))
    for j in range(len(col)):
        v = phi_l[:, j].data
        v = v[v != 0]
        if v.size:
            scale[j] = float(np.sqrt(np.mean(v**2)))
    phi_n = (phi_l @ np.diag(1.0 / scale)) if len(col) else phi_l
    phi_n = np.asarray(phi_n)  # dense (V, K): K is small
    lower = np.array([0.0 if n in NONNEGATIVE_WEIGHTS else -np.inf for n in names])

    # ------------------------------------------------------------------ loss mask
    nodes_gt = annotated.copy()
    mask = np.zeros(model.num_vars)
    xs, ys, ss = model.blocks["node"], model.blocks["edge"], model.blocks["split"]
    ps = model.blocks["pair"]
    pairs = model.aux["pair"]
    if sparse:
        mask[xs] = loss["node"] * annotated
        touch = annotated[problem.src] | annotated[problem.tgt]
        mask[ys] = loss["edge"] * touch
        mask[ss] = loss["split"] * annotated
        mask[ps] = loss["pair"] * annotated[pairs.mother]
    else:
        mask[xs] = loss["node"]
        mask[ys] = loss["edge"]
        mask[ss] = loss["split"]
        mask[ps] = loss["pair"]
    n_ann = float(np.count_nonzero(mask))
    z_true = complete_assignment(model, problem, nodes_gt, gt_edges)
    if not sparse and not model.is_feasible(z_true):  # pragma: no cover - defensive
        bad = model.violated_rows(z_true)
        raise InvalidInputError(
            f"the ground truth is not a lineage forest on the candidates: it breaks "
            f"{model.row_name(int(bad[0]))}"
        )
    stats = {
        "variables": model.num_vars,
        "annotated_variables": int(n_ann),
        "matched_nodes": int(annotated.sum()),
        "matched_edges": int(gt_edges.sum()),
        "candidate_pairs": int(model.blocks["pair"].stop - model.blocks["pair"].start),
        "learned": list(names),
    }

    def solve(costs: np.ndarray, lb=None, ub=None) -> np.ndarray:
        from celltrack.solve.ilp import phases

        c_int = scale_costs(
            [_entry(costs)], model.num_vars, cfg.cost_scale
        )
        m = replace(model, c=c_int)
        if lb is not None:
            m = replace(m, lb=lb, ub=ub)
        search = phases.Search(
            solve_cfg, problem, m, time.perf_counter(), m.lb.copy(), m.ub.copy()
        )
        out = phases.run(search)
        if out.z is None:  # pragma: no cover - the empty forest is always feasible
            raise InvalidInputError(f"an ILP solve during fitting failed ({out.status})")
        return out.z

    def _entry(costs):
        from celltrack.solve.ilp.model import CostEntry

        return CostEntry("fit", np.arange(model.num_vars), costs)

    def energy_costs(wn: np.ndarray) -> np.ndarray:
        return c_fixed + phi_n @ wn

    def hamming(z: np.ndarray, zt: np.ndarray) -> float:
        return float(np.dot(mask, np.abs(z - zt)))

    wn = np.asarray([getattr(cfg, n) for n in names], np.float64) * scale
    wn = np.maximum(wn, lower)
    anchor = wn.copy() if prior == "base" else np.zeros_like(wn)
    lam = float(regularizer_weight)
    result = FitResult(config=cfg, weights={}, stats=stats)
    best_w, best_j = wn.copy(), np.inf

    rounds = max(1, latent_rounds) if sparse else 1
    z_prev = None
    for _round in range(rounds):
        if sparse:
            # impute the unannotated part: best forest agreeing with the annotations
            lb, ub = model.lb.copy(), model.ub.copy()
            known = mask > 0
            lb[known] = z_true[known]
            ub[known] = z_true[known]
            z_star = solve(energy_costs(wn), lb, ub)
            if z_prev is not None and np.array_equal(z_star, z_prev):
                break
            best_j = np.inf
        else:
            z_star = z_true
        aug = -mask * (1.0 - 2.0 * z_star)
        phi_star = phi_n.T @ z_star
        planes_a, planes_b = [], []
        center = wn.copy()
        prox, predicted = proximal_weight, np.inf
        for _ in range(max_iterations):
            t_solve = time.perf_counter()
            z_hat = solve(energy_costs(wn) + aug)
            t_solve = time.perf_counter() - t_solve
            result.iterations += 1
            delta = hamming(z_hat, z_star) / n_ann
            a = (phi_star - phi_n.T @ z_hat) / n_ann
            b = delta + float(c_fixed @ (z_star - z_hat)) / n_ann
            hinge = max(0.0, b + float(a @ wn))
            j_val = 0.5 * lam * float((wn - anchor) @ (wn - anchor)) + hinge
            planes_a.append(a)
            planes_b.append(b)
            result.loss_history.append(hinge)
            result.objective_history.append(j_val)
            result.hamming_history.append(delta)
            if j_val < best_j:
                # serious step: the centre moves to the better iterate; when J fell by at
                # least half of what the model predicted, the model is trusted further
                if np.isfinite(best_j) and best_j - j_val >= 0.5 * predicted:
                    prox = max(prox / PROX_FACTOR, proximal_weight / PROX_RANGE)
                best_w, best_j = wn.copy(), j_val
                center = wn.copy()
            else:
                # null step: the plane is kept, the next step is shorter
                prox = min(prox * PROX_FACTOR, proximal_weight * PROX_RANGE)
            wn, model_value = _master(
                np.asarray(planes_a), np.asarray(planes_b), lam, lower, center, prox, anchor
            )
            result.bound_history.append(model_value)
            predicted = best_j - model_value
            logger.info(
                "fit_costs: iteration %d, J %.5f (best %.5f), model %.5f, hinge %.5f, "
                "Δ %.4f, solve %.2f s",
                result.iterations, j_val, best_j, model_value, hinge, delta, t_solve,
            )
            if predicted <= tolerance * max(abs(best_j), 1e-12):
                result.converged = True
                break
        wn = best_w.copy()

    # a weight the fit left at numerical noise (|w| < 1e-4 of the largest, in normalised
    # units) is zero: a term priced at 1e-6 changes no optimum but adds its variables
    best_w = np.where(np.abs(best_w) < SNAP_TO_ZERO * np.max(np.abs(best_w), initial=0.0),
                      0.0, best_w)
    weights = {n: float(v) for n, v in zip(names, best_w / scale)}
    for n in NONNEGATIVE_WEIGHTS:
        if n in weights:
            weights[n] = max(0.0, weights[n])
    learned = ILPConfig(**{**(base or ILPConfig()).model_dump(), **weights, "learn": False})
    z_plain = solve(energy_costs(best_w))
    z_ref = z_star
    result.config = learned
    result.weights = weights
    result.training_error = hamming(z_plain, z_ref) / n_ann
    result.seconds = time.perf_counter() - start
    return result
