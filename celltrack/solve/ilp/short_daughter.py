"""Division persistence: a daughter whose track ends within k frames of the division pays.

Same segments as :mod:`.short_track`, started by a division instead of a track start: for
every candidate path π = (v₀, e₁, …, e_j), j < k, whose end v_j may not end a track for
free, a variable q_π ≥ 0 with cost c_SD ≥ 0 and the row::

    q_π ≥ δ_{v₀} + Σ_{i=1..j} y_{e_i} − j
          − Σ_{i=1..j} Σ_{e∈out(v_{i−1}), e≠e_i} y_e − Σ_{e∈out(v_j)} y_e

where δ_w = Σ_{k : w ∈ k} p_k is the exact daughter expression of the division pairs
(:mod:`.pair_definition`). The right side is 1 exactly when v₀ is a daughter and its
segment ends at v_j without dividing; otherwise it is ≤ 0. So each division pays c_SD per
daughter that disappears within k frames (a detector's double hit next to a nucleus: the
false daughter usually ends at once). Negative c_SD is refused. The one-node rows are
strengthened by the shared-child cuts of :mod:`.short_daughter_cut`, without which the LP
lets two daughters continue into one child.
"""

from __future__ import annotations

import numpy as np

from celltrack.solve.ilp.model import ModelArrays
from celltrack.solve.ilp.pair_definition import DivisionPairs, PairSet
from celltrack.solve.ilp.short_daughter_cut import add_shared_child_cuts
from celltrack.solve.ilp.short_track import candidate_paths, derive_paths, incident, path_rows

__all__ = ["ShortDaughterCost"]


class ShortDaughterCost:
    """Cost ``c_SD`` per daughter segment of at most ``frames`` nodes.

    Parameters
    ----------
    cost : float
        c_SD ≥ 0 (cost units per short daughter).
    frames : int
        k ≥ 1.
    end_free : ndarray of bool, shape (N,)
        Nodes whose track end is free (segments ending there are not priced).
    pairs : DivisionPairs
        Creates the ``pair`` block when needed.
    cuts : bool
        Add the shared-child cuts (:mod:`.short_daughter_cut`).
    """

    name = "short_daughter"

    def __init__(
        self,
        cost: float,
        frames: int,
        end_free: np.ndarray,
        pairs: DivisionPairs,
        cuts: bool = True,
    ) -> None:
        if cost < 0:
            raise ValueError(f"short_daughter_cost must be ≥ 0, got {cost}")
        self.cost, self.frames = float(cost), int(frames)
        self.end_free = np.asarray(end_free, bool)
        self.pairs, self.cuts = pairs, bool(cuts)

    def features(self, model: ModelArrays) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"short_daughter_cost": (q indices, ones)}``; creates the block and its rows."""
        if not model.has(self.name):
            self.pairs.apply(model)
            p = model.problem
            pairs: PairSet = model.aux["pair"]
            can = np.zeros(p.num_nodes, bool)
            can[pairs.daughter1] = True
            can[pairs.daughter2] = True
            paths = candidate_paths(p, self.frames, can, ~self.end_free, "daughter")
            model.aux[self.name] = paths
            q = model.var(self.name, size=paths.size)
            rows, cols, coefs = path_rows(model, paths, q)
            # + δ_{v0}: the pairs having v0 as a daughter
            pv = model.var("pair")
            by_daughter = np.concatenate([pairs.daughter1, pairs.daughter2])
            pair_of = np.concatenate([pv, pv])
            order = np.argsort(by_daughter, kind="stable")
            count = np.bincount(by_daughter, minlength=p.num_nodes)
            rep, which = incident(paths.start, by_daughter, order, count)
            model.add_rows(
                self.name,
                np.concatenate([rows, rep]),
                np.concatenate([cols, pair_of[which]]),
                np.concatenate([coefs, np.ones(rep.size)]),
                paths.length,
            )
            if self.cuts:
                add_shared_child_cuts(model, paths, q)
        q = model.var(self.name)
        return {"short_daughter_cost": (q, np.ones(q.size))}

    def apply(self, model: ModelArrays) -> None:
        """Add c_SD to every path variable."""
        (index, values), = self.features(model).values()
        model.add_costs(self.name, index, self.cost * values)


ModelArrays.derivations["short_daughter"] = derive_paths
