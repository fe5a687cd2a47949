"""Cost terms of the tree ILP (minimised, in cost units; see :mod:`.config`).

Each term adds one array of coefficients to a :class:`ModelArrays`; terms compose freely.
Notation as in :mod:`.constraints`; a_v = x_v − Σ_{in(v)} y_e is the appear expression.
"""

from __future__ import annotations

import numpy as np

from celltrack.solve.ilp.config import ILPConfig
from celltrack.solve.ilp.model import ModelArrays

__all__ = [
    "AppearCost",
    "DisappearCost",
    "EdgeCost",
    "NodeCost",
    "SplitCost",
    "default_costs",
    "free_appear_mask",
    "free_disappear_mask",
]


class NodeCost:
    """Node selection: ``Σ_v (τ_V + w_V · score_v) · x_v``."""

    name = "node"

    def __init__(self, offset: float, score_weight: float) -> None:
        self.offset, self.score_weight = float(offset), float(score_weight)

    def apply(self, model: ModelArrays) -> None:
        """Add one cost per node variable."""
        p = model.problem
        model.add_costs(self.name, model.var("node"), self.offset + self.score_weight * p.score)


class EdgeCost:
    """Edge selection: ``Σ_e (w_E · f_e + g · (frame_gap_e − 1)) · y_e``, f = an edge column."""

    name = "edge"

    def __init__(self, feature: str, weight: float, gap_cost: float = 0.0) -> None:
        self.feature, self.weight, self.gap_cost = feature, float(weight), float(gap_cost)

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

    def apply(self, model: ModelArrays) -> None:
        """Add one cost per split variable."""
        model.add_costs(self.name, model.var("split"), self.cost)


class DisappearCost:
    """Track end: ``Σ_v c_X,v · d_v`` (``c_X,v`` = 0 where ``free``)."""

    name = "disappear"

    def __init__(self, cost: float, free: np.ndarray) -> None:
        self.cost, self.free = float(cost), np.asarray(free, bool)

    def apply(self, model: ModelArrays) -> None:
        """Add one cost per disappear variable (creates the block)."""
        model.add_costs(self.name, model.var("disappear"), np.where(self.free, 0.0, self.cost))


def default_costs(model: ModelArrays, cfg: ILPConfig) -> list:
    """The cost terms an :class:`ILPConfig` asks for."""
    terms: list = [
        NodeCost(cfg.node_offset, cfg.node_score_weight),
        EdgeCost(cfg.edge_feature, cfg.edge_weight, cfg.frame_gap_cost),
        AppearCost(cfg.appear_cost, free_appear_mask(model, cfg)),
        SplitCost(cfg.split_cost),
    ]
    if cfg.disappear_cost != 0.0:
        terms.append(DisappearCost(cfg.disappear_cost, free_disappear_mask(model, cfg)))
    return terms
