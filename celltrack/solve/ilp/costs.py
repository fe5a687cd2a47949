"""Cost terms of the tree ILP (minimised, in cost units; see :mod:`.config`).

Each term adds one array of coefficients to a :class:`ModelArrays`; terms compose freely.
Notation as in :mod:`.constraints`; a_v = x_v − Σ_{in(v)} y_e is the appear expression.

Every cost is linear in its weights: a term's ``features(model)`` returns, per config
weight it prices, the variables and the value each contributes per unit of weight, and
``apply`` adds ``Σ weight · value``. :func:`cost_features` stacks the features of all terms
into the matrix that :func:`celltrack.solve.fit_costs` learns the weights on. The division
and persistence terms live in their own modules (:mod:`.pair_cost`, :mod:`.short_track`,
:mod:`.short_daughter`, with the pair variables of :mod:`.pair_definition`).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from celltrack.solve.ilp.config import PAIR_WEIGHTS, WEIGHT_FIELDS, ILPConfig
from celltrack.solve.ilp.model import ModelArrays

__all__ = [
    "AppearCost",
    "DisappearCost",
    "EdgeCost",
    "NodeCost",
    "SplitCost",
    "cost_features",
    "default_costs",
    "free_appear_mask",
    "free_disappear_mask",
]

Features = dict[str, tuple[np.ndarray, np.ndarray]]


class NodeCost:
    """Node selection: ``Σ_v (τ_V + w_V · score_v) · x_v``."""

    name = "node"

    def __init__(self, offset: float, score_weight: float) -> None:
        self.offset, self.score_weight = float(offset), float(score_weight)

    def features(self, model: ModelArrays) -> Features:
        """``node_offset``: 1 per node; ``node_score_weight``: the node's score."""
        x = model.var("node")
        return {"node_offset": (x, np.ones(x.size)), "node_score_weight": (x, model.problem.score)}

    def apply(self, model: ModelArrays) -> None:
        """Add one cost per node variable."""
        p = model.problem
        model.add_costs(self.name, model.var("node"), self.offset + self.score_weight * p.score)


class EdgeCost:
    """Edge selection: ``Σ_e (w_E · f_e + g · (frame_gap_e − 1)) · y_e``, f = an edge column."""

    name = "edge"

    def __init__(self, feature: str, weight: float, gap_cost: float = 0.0) -> None:
        self.feature, self.weight, self.gap_cost = feature, float(weight), float(gap_cost)

    def features(self, model: ModelArrays) -> Features:
        """``edge_weight``: the edge feature (µm); ``frame_gap_cost``: frame_gap − 1."""
        p, y = model.problem, model.var("edge")
        f = p.edge_feature(self.feature) if p.num_edges else np.zeros(0)
        gap = (
            p.edge_feature("frame_gap") - 1.0
            if "frame_gap" in p.edge_columns and p.num_edges
            else np.zeros(y.size)
        )
        return {"edge_weight": (y, f), "frame_gap_cost": (y, gap)}

    def apply(self, model: ModelArrays) -> None:
        """Add one cost per edge variable."""
        p = model.problem
        if p.num_edges == 0:
            return
        cost = self.weight * p.edge_feature(self.feature)
        if self.gap_cost != 0.0:
            cost = cost + self.gap_cost * (p.edge_feature("frame_gap") - 1.0)
        model.add_costs(self.name, model.var("edge"), cost)


def free_appear_mask(model: ModelArrays, cfg: ILPConfig) -> np.ndarray:
    """Nodes whose track start is free: first roi frame, near the border, ``appear_free``."""
    p = model.problem
    free = p.appear_free | p.near_border(cfg.border_distance_um)
    if cfg.free_first_frame:
        free |= p.t <= p.t_range[0]
    return free


def free_disappear_mask(model: ModelArrays, cfg: ILPConfig) -> np.ndarray:
    """Nodes whose track end is free: last roi frame, near the border, ``disappear_free``."""
    p = model.problem
    return p.disappear_free | (p.t >= p.t_range[1]) | p.near_border(cfg.border_distance_um)


class AppearCost:
    """Track start: ``Σ_v c_T,v · a_v = Σ_v c_T,v · x_v − Σ_{e=(u→w)} c_T,w · y_e``.

    ``c_T,v`` is ``cost`` except where ``free`` is True (then 0). The appear indicator is
    substituted by its definition, so no variable is created.
    """

    name = "appear"

    def __init__(self, cost: float, free: np.ndarray) -> None:
        self.cost, self.free = float(cost), np.asarray(free, bool)

    def features(self, model: ModelArrays) -> Features:
        """``appear_cost``: +1 on x_v, −1 on the edges into v (where the start is priced)."""
        p = model.problem
        unit = np.where(self.free, 0.0, 1.0)
        index = np.concatenate([model.var("node"), model.var("edge")])
        return {"appear_cost": (index, np.concatenate([unit, -unit[p.tgt]]))}

    def apply(self, model: ModelArrays) -> None:
        """Add costs to node and edge variables."""
        p = model.problem
        per_node = np.where(self.free, 0.0, self.cost)
        model.add_costs(self.name, model.var("node"), per_node)
        if p.num_edges:
            model.add_costs(self.name, model.var("edge"), -per_node[p.tgt])


class SplitCost:
    """Division: ``Σ_v c_D · s_v``."""

    name = "split"

    def __init__(self, cost: float) -> None:
        self.cost = float(cost)

    def features(self, model: ModelArrays) -> Features:
        """``split_cost``: 1 per split variable."""
        s = model.var("split")
        return {"split_cost": (s, np.ones(s.size))}

    def apply(self, model: ModelArrays) -> None:
        """Add one cost per split variable."""
        model.add_costs(self.name, model.var("split"), self.cost)


class DisappearCost:
    """Track end: ``Σ_v c_X,v · d_v`` (``c_X,v`` = 0 where ``free``)."""

    name = "disappear"

    def __init__(self, cost: float, free: np.ndarray) -> None:
        self.cost, self.free = float(cost), np.asarray(free, bool)

    def features(self, model: ModelArrays) -> Features:
        """``disappear_cost``: 1 per priced disappear variable (creates the block)."""
        return {"disappear_cost": (model.var("disappear"), np.where(self.free, 0.0, 1.0))}

    def apply(self, model: ModelArrays) -> None:
        """Add one cost per disappear variable (creates the block)."""
        model.add_costs(self.name, model.var("disappear"), np.where(self.free, 0.0, self.cost))


def default_costs(model: ModelArrays, cfg: ILPConfig, *, every: bool = False) -> list:
    """The cost terms an :class:`ILPConfig` asks for.

    Parameters
    ----------
    model : ModelArrays
    cfg : ILPConfig
    every : bool
        Include every term, also those whose weights are 0 (for learning: the model then
        has every feature, whatever the weights).
    """
    from celltrack.solve.ilp.pair_cost import DivisionPairCost
    from celltrack.solve.ilp.pair_definition import DivisionPairs
    from celltrack.solve.ilp.short_daughter import ShortDaughterCost
    from celltrack.solve.ilp.short_track import ShortTrackCost

    terms: list = [
        NodeCost(cfg.node_offset, cfg.node_score_weight),
        EdgeCost(cfg.edge_feature, cfg.edge_weight, cfg.frame_gap_cost),
        AppearCost(cfg.appear_cost, free_appear_mask(model, cfg)),
        SplitCost(cfg.split_cost),
    ]
    end_free = free_disappear_mask(model, cfg)
    if every or cfg.disappear_cost != 0.0:
        terms.append(DisappearCost(cfg.disappear_cost, end_free))
    pairs = DivisionPairs(cfg.division_max_children, cfg.division_max_cos, cfg.edge_feature)
    if every or cfg.uses_pairs:
        terms.append(DivisionPairCost({k: getattr(cfg, k) for k in PAIR_WEIGHTS}, pairs))
    if every or cfg.short_track_cost != 0.0:
        terms.append(
            ShortTrackCost(
                cfg.short_track_cost,
                cfg.persistence_frames,
                free_appear_mask(model, cfg),
                end_free,
            )
        )
    if every or cfg.short_daughter_cost != 0.0:
        terms.append(
            ShortDaughterCost(
                cfg.short_daughter_cost, cfg.persistence_frames, end_free, pairs,
                cuts=cfg.shared_child_cuts,
            )
        )
    return terms


def cost_features(model: ModelArrays, terms: list) -> sparse.csc_matrix:
    """Feature matrix Φ (V × W) of the cost terms: costs = Φ · weights.

    Columns follow :data:`~celltrack.solve.ilp.config.WEIGHT_FIELDS`; weights no term
    prices get an empty column. Call after every term has been applied (so that all
    blocks exist).

    Returns
    -------
    scipy.sparse.csc_matrix, shape (V, W)
    """
    col = {name: i for i, name in enumerate(WEIGHT_FIELDS)}
    rows, cols, vals = [], [], []
    for term in terms:
        for name, (index, values) in term.features(model).items():
            values = np.broadcast_to(np.asarray(values, np.float64), np.shape(index))
            rows.append(np.asarray(index, np.int64))
            cols.append(np.full(np.size(index), col[name], np.int64))
            vals.append(values)
    cat = (lambda xs: np.concatenate(xs)) if rows else (lambda xs: np.zeros(0))
    return sparse.coo_matrix(
        (cat(vals), (cat(rows).astype(np.int64), cat(cols).astype(np.int64))),
        shape=(model.num_vars, len(WEIGHT_FIELDS)),
    ).tocsc()
