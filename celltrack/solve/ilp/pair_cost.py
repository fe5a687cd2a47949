"""Division-pair cost: what a division looks like, priced on the pair of daughters.

For every candidate division k = (u; w₁, w₂) (:mod:`.pair_definition`)::

    Σ_k ( w_sep · ‖w₁ − w₂‖ + w_off · ‖u − (w₁ + w₂)/2‖
          + w_ang · (1 + cos θ_k)/2 + w_rat · (1 − min(r₁, r₂)/max(r₁, r₂)) ) · p_k

with θ_k the angle between the daughter displacements w₁ − u, w₂ − u and r_i = ‖w_i − u‖.
Separation and offset are in µm (weights in cost units / µm), angle and ratio features
lie in [0, 1] (weights in cost units). A real division sends the daughters apart in
opposite directions, about equally far, with the mother near their midpoint; a detector's
double hit next to a continuing nucleus gives a short separation, a small angle and a
lopsided ratio. p_k is exact (p_k = 1 ⇔ u divides into w₁ and w₂), so any sign of the
weights keeps the model exact.
"""

from __future__ import annotations

import numpy as np

from celltrack.solve.ilp.model import ModelArrays
from celltrack.solve.ilp.pair_definition import DivisionPairs, PairSet

__all__ = ["PAIR_FEATURES", "DivisionPairCost"]

#: config field → PairSet attribute priced by it
PAIR_FEATURES = {
    "division_separation_weight": "separation",
    "division_offset_weight": "offset",
    "division_angle_weight": "angle",
    "division_ratio_weight": "ratio",
}


class DivisionPairCost:
    """Cost of each candidate division from its geometry (see the module docstring).

    Parameters
    ----------
    weights : dict of str to float
        Keys of :data:`PAIR_FEATURES` (missing keys: 0).
    pairs : DivisionPairs
        Creates the ``pair`` block when it does not exist yet.
    """

    name = "division_pair"

    def __init__(self, weights: dict[str, float], pairs: DivisionPairs) -> None:
        unknown = set(weights) - set(PAIR_FEATURES)
        if unknown:
            raise KeyError(f"unknown pair features {sorted(unknown)}")
        self.weights = {k: float(weights.get(k, 0.0)) for k in PAIR_FEATURES}
        self.pairs = pairs

    def features(self, model: ModelArrays) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per weight: (variable indices, feature values), the cost being Σ weight · value."""
        self.pairs.apply(model)
        pairs: PairSet = model.aux["pair"]
        index = model.var("pair")
        return {k: (index, getattr(pairs, attr)) for k, attr in PAIR_FEATURES.items()}

    def apply(self, model: ModelArrays) -> None:
        """Add one cost per pair variable."""
        feats = self.features(model)
        index = model.var("pair")
        cost = np.zeros(index.size)
        for key, (_, values) in feats.items():
            if self.weights[key] != 0.0:
                cost = cost + self.weights[key] * values
        model.add_costs(self.name, index, cost)
