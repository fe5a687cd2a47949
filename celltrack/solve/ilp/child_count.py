"""Child count: the number of selected children, stated exactly, to tighten the LP.

For every node v::

    Σ_{e∈out(v)} y_e = x_v − d_v + s_v

(x node, y edges, d disappear, s split; two rows ``≤`` each). For integers it is implied
by the other rows — an unselected node has no child; a selected one has no child
(d = 1, s = 0), one child (d = s = 0) or two (d = 0, s = 1) — so it changes no solution.
For the LP it forbids "half a division": a mother with two half-selected children and
s = 1/2 must now also pay half a track end (d = 1/2), which is what makes the LP
relaxation integral in practice when divisions are rewarded (negative split or
division-pair costs). Added whenever a division or persistence term is active.

With the count stated, two of the three row families of the disappear definition
(:class:`.constraints.DisappearDefinition`) are implied and are dropped: ``x_v − Σ y −
d_v ≤ 0`` reads ``−s_v ≤ 0`` and ``d_v − x_v ≤ 0`` reads ``s_v − Σ y ≤ 0`` (implied by the
split definition ``2 s_v ≤ Σ y``). Its per-edge rows ``d_v + y_e ≤ 1`` stay: they are not
implied in the LP. On the learned model of Pm02 this removes 45k of 688k rows.
"""

from __future__ import annotations

import numpy as np

from celltrack.solve.ilp.constraints import DisappearDefinition
from celltrack.solve.ilp.model import ModelArrays, RowBlock

__all__ = ["ChildCount", "drop_implied_disappear_rows"]


class ChildCount:
    """Rows ``Σ_{out(v)} y − x_v + d_v − s_v ≤ 0`` and ``≥ 0`` for every node."""

    name = "child_count"

    def apply(self, model: ModelArrays) -> None:
        """Add two rows per node (creates the disappear and split blocks if needed)."""
        p = model.problem
        n, m = p.num_nodes, p.num_edges
        v = np.arange(n)
        x, y = model.var("node"), model.var("edge")
        s, d = model.var("split"), model.var("disappear")
        one_e, one_n = np.ones(m), np.ones(n)
        model.add_rows(
            self.name,
            np.concatenate([p.src, v, v, v, n + p.src, n + v, n + v, n + v]),
            np.concatenate([y, x, d, s, y, x, d, s]),
            np.concatenate([one_e, -one_n, one_n, -one_n, -one_e, one_n, -one_n, one_n]),
            np.zeros(2 * n),
        )
        drop_implied_disappear_rows(model)


def drop_implied_disappear_rows(model: ModelArrays) -> None:
    """Keep only the per-edge rows ``d_v + y_e ≤ 1`` of the disappear definition.

    The definition's first 2 N rows (``x − Σ y − d ≤ 0`` and ``d − x ≤ 0``) are implied
    by the child count and the split definition (module docstring).
    """
    n, m = model.problem.num_nodes, model.problem.num_edges
    for i, block in enumerate(model.row_blocks):
        if block.name == DisappearDefinition.name and block.rhs.size == 2 * n + m:
            keep = block.rows >= 2 * n
            model.row_blocks[i] = RowBlock(
                block.name, block.rows[keep] - 2 * n, block.cols[keep], block.coefs[keep],
                block.rhs[2 * n:],
            )
