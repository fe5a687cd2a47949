"""Constraint terms of the tree ILP; each adds whole arrays of rows to a :class:`ModelArrays`.

Notation: x_v node selected, y_e edge selected (e = u → w, u the parent), s_v split,
d_v disappear, in(v) / out(v) the candidate edges into / out of v.
"""

from __future__ import annotations

import numpy as np

from celltrack.solve.ilp.model import ModelArrays

__all__ = [
    "DisappearDefinition",
    "EdgeEndpoints",
    "MaxChildren",
    "OneParentOrAppear",
    "Pins",
    "SplitDefinition",
    "default_constraints",
]


class EdgeEndpoints:
    """A selected edge selects its parent: ``y_e − x_u ≤ 0`` for every e = (u → w).

    Together with :class:`OneParentOrAppear` (``Σ_{in(w)} y ≤ x_w``) this gives
    "edge ⇒ both ends": ``2 y_e ≤ x_u + x_w``.
    """

    name = "edge_endpoints"

    def apply(self, model: ModelArrays) -> None:
        """Add one row per edge."""
        p = model.problem
        e = np.arange(p.num_edges)
        y, x = model.var("edge"), model.var("node")
        model.add_rows(
            self.name,
            np.concatenate([e, e]),
            np.concatenate([y, x[p.src]]),
            np.concatenate([np.ones(e.size), -np.ones(e.size)]),
            np.zeros(e.size),
        )


class OneParentOrAppear:
    """A selected node has exactly one parent edge or appears: ``Σ_{e∈in(v)} y_e ≤ x_v``.

    The appear indicator is the expression ``a_v = x_v − Σ_{in(v)} y_e``; this row keeps it
    ≥ 0 and, with x_v ≤ 1, in {0, 1}, so ``Σ_{in(v)} y_e + a_v = x_v`` holds exactly: an
    unselected node has neither a parent edge nor an appearance.
    """

    name = "one_parent_or_appear"

    def apply(self, model: ModelArrays) -> None:
        """Add one row per node."""
        p = model.problem
        v = np.arange(p.num_nodes)
        y, x = model.var("edge"), model.var("node")
        model.add_rows(
            self.name,
            np.concatenate([p.tgt, v]),
            np.concatenate([y, x]),
            np.concatenate([np.ones(p.num_edges), -np.ones(p.num_nodes)]),
            np.zeros(p.num_nodes),
        )


class MaxChildren:
    """At most two children, the second one only with a split:
    ``Σ_{e∈out(v)} y_e − x_v − s_v ≤ 0``.

    With ``s_v ≤ x_v`` (:class:`SplitDefinition`) this is ``Σ_{out(v)} y_e ≤ 2 x_v`` and forces
    ``s_v = 1`` whenever v has two selected children.
    """

    name = "max_children"

    def apply(self, model: ModelArrays) -> None:
        """Add one row per node with at least one candidate child."""
        p = model.problem
        outdeg = p.out_degree()
        has = np.flatnonzero(outdeg > 0)
        local = np.full(p.num_nodes, -1, np.int64)
        local[has] = np.arange(has.size)
        y, x, s = model.var("edge"), model.var("node"), model.var("split")
        model.add_rows(
            self.name,
            np.concatenate([local[p.src], local[has], local[has]]),
            np.concatenate([y, x[has], s[has]]),
            np.concatenate([np.ones(p.num_edges), -np.ones(2 * has.size)]),
            np.zeros(has.size),
        )


class SplitDefinition:
    """Defines the split indicator: ``s_v − x_v ≤ 0`` and ``2 s_v − Σ_{e∈out(v)} y_e ≤ 0``.

    With :class:`MaxChildren`, ``s_v = 1 ⇔ v has exactly two selected children``. Nodes with
    fewer than two candidate children get ``s_v = 0`` as a bound instead of rows.
    """

    name = "split_definition"

    def apply(self, model: ModelArrays) -> None:
        """Add two rows per node with two or more candidate children."""
        p = model.problem
        outdeg = p.out_degree()
        two = np.flatnonzero(outdeg >= 2)
        s, x, y = model.var("split"), model.var("node"), model.var("edge")
        model.restrict(s[outdeg < 2], 0)
        k = two.size
        local = np.full(p.num_nodes, -1, np.int64)
        local[two] = np.arange(k)
        keep = local[p.src] >= 0
        model.add_rows(
            self.name,
            np.concatenate([np.arange(k), np.arange(k), k + np.arange(k), k + local[p.src[keep]]]),
            np.concatenate([s[two], x[two], s[two], y[keep]]),
            np.concatenate([np.ones(k), -np.ones(k), 2 * np.ones(k), -np.ones(int(keep.sum()))]),
            np.zeros(2 * k),
        )


class DisappearDefinition:
    """Defines the disappear indicator d_v = x_v ∧ (no selected child), exactly:
    ``x_v − Σ_{e∈out(v)} y_e − d_v ≤ 0``, ``d_v − x_v ≤ 0`` and ``d_v + y_e ≤ 1`` for e ∈ out(v).
    """

    name = "disappear_definition"

    def apply(self, model: ModelArrays) -> None:
        """Add 2 rows per node and one per edge."""
        p = model.problem
        n, m = p.num_nodes, p.num_edges
        v, e = np.arange(n), np.arange(m)
        d, x, y = model.var("disappear"), model.var("node"), model.var("edge")
        rows = np.concatenate([v, p.src, v, n + v, n + v, 2 * n + e, 2 * n + e])
        cols = np.concatenate([x, y, d, d, x, d[p.src], y])
        coefs = np.concatenate(
            [np.ones(n), -np.ones(m), -np.ones(n), np.ones(n), -np.ones(n), np.ones(m), np.ones(m)]
        )
        rhs = np.concatenate([np.zeros(2 * n), np.ones(m)])
        model.add_rows(self.name, rows, cols, coefs, rhs)


class Pins:
    """Annotation pins as fixed bounds: ``x_v = pin_v`` / ``y_e = pin_e`` where pin ≠ −1.

    A node pinned to 0 also fixes its incident edges to 0 (implied by the other rows, but
    stating it shrinks the model). Conflicting pins are left to the solver, which then
    reports INFEASIBLE.
    """

    name = "pins"

    def apply(self, model: ModelArrays) -> None:
        """Set variable bounds."""
        p = model.problem
        x, y = model.var("node"), model.var("edge")
        for idx, pin in ((x, p.node_pin), (y, p.edge_pin)):
            sel = pin >= 0
            if np.any(sel):
                model.fix(idx[sel], pin[sel].astype(np.int64))
        off = p.node_pin == 0
        dead = off[p.src] | off[p.tgt]
        dead &= p.edge_pin != 1  # keep the contradiction visible to the solver
        if np.any(dead):
            model.fix(y[dead], 0)


ModelArrays.definitions["split"] = lambda model: SplitDefinition().apply(model)
ModelArrays.definitions["disappear"] = lambda model: DisappearDefinition().apply(model)


def default_constraints() -> list:
    """Linajea's tree constraints: edge ends, one parent or appear, ≤ 2 children, pins."""
    return [EdgeEndpoints(), OneParentOrAppear(), MaxChildren(), Pins()]
