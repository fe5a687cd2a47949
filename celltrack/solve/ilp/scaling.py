"""Float → integer cost scaling for CP-SAT (whose objective coefficients are integers).

Rule: every cost (in cost units) is multiplied by ``scale`` (``ILPConfig.cost_scale``,
default 10^6) and rounded to the nearest integer *per term and variable*; the costs of
the terms on one variable are then summed as integers. Objectives are reported as the
integer objective divided by ``scale``, so a reported objective is exact for the rounded
costs and within ``0.5 · (number of cost terms) · (number of selected variables) / scale``
of the float objective. Choose a larger scale for finer costs.

Limits: all scaled costs must be finite and ``Σ_j |c_j| ≤ 2^53`` (so every objective and
bound is an exact float64 and far below CP-SAT's int64 overflow checks). Otherwise
:class:`~celltrack.errors.InvalidInputError` names the term that breaks the limit.
"""

from __future__ import annotations

import numpy as np

from celltrack.errors import InvalidInputError
from celltrack.solve.ilp.model import CostEntry

__all__ = ["MAX_TOTAL", "scale_costs"]

#: Largest allowed Σ|scaled cost| (2^53: exact in float64, safe for CP-SAT's int64).
MAX_TOTAL = 2**53


def scale_costs(entries: list[CostEntry], num_vars: int, scale: float) -> np.ndarray:
    """Scale and round every term's costs and sum them per variable.

    Parameters
    ----------
    entries : list of CostEntry
        Costs (cost units) added by the cost terms.
    num_vars : int
        Number of model variables V.
    scale : float
        Integer units per cost unit (> 0).

    Returns
    -------
    ndarray of int64, shape (V,)
        Integer costs.

    Raises
    ------
    InvalidInputError
        If a cost is NaN/infinite or the scaled magnitudes exceed :data:`MAX_TOTAL`.
    """
    if not (np.isfinite(scale) and scale > 0):
        raise InvalidInputError(f"cost_scale must be a finite number > 0, got {scale}")
    total = np.zeros(num_vars, np.int64)
    magnitude = 0.0
    for entry in entries:
        costs = entry.costs
        if not np.all(np.isfinite(costs)):
            raise InvalidInputError(
                f"cost term '{entry.name}' has NaN or infinite costs; check the node/edge "
                "columns it reads and the config weights"
            )
        scaled = np.rint(costs * scale)
        term_mag = float(np.sum(np.abs(scaled))) if scaled.size else 0.0
        peak = float(np.max(np.abs(costs))) if costs.size else 0.0
        if term_mag > MAX_TOTAL:
            raise InvalidInputError(
                f"cost term '{entry.name}' overflows the integer scaling: its scaled costs sum "
                f"to {term_mag:.3g} in absolute value (largest cost {peak:.3g} × cost_scale "
                f"{scale:g}), the limit is 2^53 ≈ {MAX_TOTAL:.3g}. Lower cost_scale or the "
                "weights of this term."
            )
        magnitude += term_mag
        if magnitude > MAX_TOTAL:
            raise InvalidInputError(
                f"the scaled costs sum to more than 2^53 ≈ {MAX_TOTAL:.3g} in absolute value "
                f"once term '{entry.name}' (largest cost {peak:.3g}) is added; lower "
                f"cost_scale ({scale:g}) or the cost weights"
            )
        np.add.at(total, entry.index, scaled.astype(np.int64))
    if np.sum(np.abs(total).astype(np.float64)) > MAX_TOTAL:  # pragma: no cover - bounded above
        raise InvalidInputError("scaled costs exceed 2^53 in total; lower cost_scale")
    return total
