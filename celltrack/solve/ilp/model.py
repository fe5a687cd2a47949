"""The tree ILP as arrays: binary variables in named blocks, a cost vector, rows ``A z ≤ b``.

Terms (:mod:`~celltrack.solve.ilp.costs`, :mod:`~celltrack.solve.ilp.constraints`) add
their coefficients to a :class:`ModelArrays` as whole arrays; nothing here loops over
nodes. Variable blocks:

- ``node``  x_v (N): node v is selected,
- ``edge``  y_e (E): edge e = (u → w) is selected,
- ``split`` s_v (N): v has exactly two selected children,
- ``disappear`` d_v (N): v is selected and has no selected child (created only when a
  term asks for it),
- ``pair`` p_k (P): candidate division k (a mother and two of its candidate child edges)
  is taken (:mod:`.pair_definition`),
- ``short_track`` / ``short_daughter`` q_k: a short segment along candidate path k
  (:mod:`.short_track`, :mod:`.short_daughter`),
- ``short_daughter_cut`` z (2M): a daughter's edge into a child it shares with its
  sibling, taken while their division is (:mod:`.short_daughter_cut`).

Blocks of their own size (pairs, paths) are created with ``var(name, size=...)``; the data
describing them (which mother and edges a pair joins, which nodes a path visits) goes to
``aux[name]`` and travels to the :class:`StandardModel`, so start solutions and
``objective_of`` can fill every block from a selection of nodes and edges
(:func:`complete_assignment`).

The appear indicator is not a variable: it is the expression a_v = x_v − Σ_{e∈in(v)} y_e,
which the one-parent constraint keeps in {0, 1}. Blocks other than ``node``/``edge`` are
created on first use together with the constraints that define them, so costs compose
without knowing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from celltrack.solve.ilp.problem import LinkingProblem

__all__ = ["CostEntry", "ModelArrays", "RowBlock", "StandardModel", "complete_assignment"]


@dataclass
class RowBlock:
    """Rows ``Σ_j coef · z_j ≤ rhs`` added by one constraint term (COO triplets)."""

    name: str
    rows: np.ndarray  #: local row index of every coefficient
    cols: np.ndarray  #: global variable index of every coefficient
    coefs: np.ndarray  #: integer coefficient
    rhs: np.ndarray  #: right-hand side of each local row


@dataclass
class CostEntry:
    """Costs added by one cost term: ``Σ_j costs_j · z_{index_j}`` (cost units)."""

    name: str
    index: np.ndarray
    costs: np.ndarray


@dataclass
class StandardModel:
    """Finished model: minimise ``c · z`` s.t. ``A z ≤ b``, ``lb ≤ z ≤ ub``, z integer.

    Attributes
    ----------
    c : ndarray of int64, shape (V,)
        Scaled integer costs.
    A : scipy.sparse.csr_matrix of int64, shape (R, V)
    b : ndarray of int64, shape (R,)
    lb, ub : ndarray of int64, shape (V,)
        Variable bounds (0/1; equal where pinned or fixed by presolve).
    blocks : dict of str to slice
        Where each variable block lies in z.
    scale : float
        Integer cost units per cost unit.
    row_names : list of (str, int)
        Constraint term name and number of rows, in row order.
    aux : dict
        Data of the sized blocks (``pair``, ``short_track`` …), see :class:`ModelArrays`.
    """

    c: np.ndarray
    A: sparse.csr_matrix
    b: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    blocks: dict[str, slice]
    scale: float
    row_names: list[tuple[str, int]] = field(default_factory=list)
    aux: dict[str, Any] = field(default_factory=dict)

    @property
    def num_vars(self) -> int:
        """Number of variables V."""
        return int(self.c.size)

    def objective(self, z: np.ndarray) -> int:
        """Integer objective ``c · z`` of an assignment (exact, int64)."""
        return int(np.dot(self.c, np.asarray(z, np.int64)))

    def violated_rows(self, z: np.ndarray) -> np.ndarray:
        """Indices of rows ``A z ≤ b`` that ``z`` breaks."""
        return np.flatnonzero(self.A @ np.asarray(z, np.int64) > self.b)

    def row_name(self, row: int) -> str:
        """Which constraint term a row belongs to, e.g. ``constraint 'one_parent' (row 3)``."""
        start = 0
        for name, count in self.row_names:
            if row < start + count:
                return f"constraint '{name}' (row {row - start})"
            start += count
        return f"row {row}"

    def is_feasible(self, z: np.ndarray) -> bool:
        """True if ``z`` is binary, within bounds and satisfies every row."""
        z = np.asarray(z, np.int64)
        return bool(
            np.all(z >= self.lb) and np.all(z <= self.ub) and self.violated_rows(z).size == 0
        )


class ModelArrays:
    """Accumulates variable blocks, costs, rows and bounds from composable terms.

    Parameters
    ----------
    problem : LinkingProblem
        The candidate graph as arrays.
    """

    #: block name → function(model) that adds the block's defining constraints
    definitions: ClassVar[dict[str, Callable[[ModelArrays], None]]] = {}
    #: block name → function(aux, problem, nodes, edges) giving the block's 0/1 values for
    #: a selection of nodes and edges (see :func:`complete_assignment`)
    derivations: ClassVar[dict[str, Callable[..., np.ndarray]]] = {}

    def __init__(self, problem: LinkingProblem) -> None:
        self.problem = problem
        self._blocks: dict[str, slice] = {}
        self._size = 0
        self.costs: list[CostEntry] = []
        self.row_blocks: list[RowBlock] = []
        self._lb: list[np.ndarray] = []
        self._ub: list[np.ndarray] = []
        self.aux: dict[str, Any] = {}
        self.var("node")
        self.var("edge")

    # -------------------------------------------------------------- variables
    def has(self, name: str) -> bool:
        """Whether variable block ``name`` exists."""
        return name in self._blocks

    def var(self, name: str, size: int | None = None) -> np.ndarray:
        """Global indices of block ``name`` (created, with its definition, on first use).

        ``size`` is the number of variables of a new block (default: E for ``edge``, N
        otherwise); it is ignored once the block exists.
        """
        if name not in self._blocks:
            if size is None:
                size = self.problem.num_edges if name == "edge" else self.problem.num_nodes
            self._blocks[name] = slice(self._size, self._size + size)
            self._size += size
            self._lb.append(np.zeros(size, np.int64))
            self._ub.append(np.ones(size, np.int64))
            definition = self.definitions.get(name)
            if definition is not None:
                definition(self)
        s = self._blocks[name]
        return np.arange(s.start, s.stop, dtype=np.int64)

    @property
    def num_vars(self) -> int:
        """Number of variables created so far."""
        return self._size

    def fix(self, index: np.ndarray, value: np.ndarray | int) -> None:
        """Fix variables (global indices) to 0/1 by setting both bounds."""
        lb, ub = np.concatenate(self._lb), np.concatenate(self._ub)
        lb[index] = value
        ub[index] = value
        self._lb, self._ub = [lb], [ub]

    def restrict(self, index: np.ndarray, upper: int) -> None:
        """Lower the upper bound of variables (e.g. a split needs two candidate children)."""
        ub = np.concatenate(self._ub)
        ub[index] = np.minimum(ub[index], upper)
        self._ub = [ub]

    # -------------------------------------------------------------- terms
    def add_costs(self, name: str, index: np.ndarray, costs: np.ndarray) -> None:
        """Add ``costs`` (cost units) to variables ``index``."""
        index = np.asarray(index, np.int64)
        costs = np.broadcast_to(np.asarray(costs, np.float64), index.shape).copy()
        self.costs.append(CostEntry(name, index, costs))

    def add_rows(
        self,
        name: str,
        rows: np.ndarray,
        cols: np.ndarray,
        coefs: np.ndarray,
        rhs: np.ndarray,
    ) -> None:
        """Add rows ``Σ coef · z_col ≤ rhs`` given as COO triplets with local row ids."""
        rows = np.asarray(rows, np.int64)
        cols = np.asarray(cols, np.int64)
        coefs = np.broadcast_to(np.asarray(coefs, np.int64), rows.shape).copy()
        rhs = np.asarray(rhs, np.int64)
        self.row_blocks.append(RowBlock(name, rows, cols, coefs, rhs))

    # -------------------------------------------------------------- finishing
    def cost_vector(self) -> np.ndarray:
        """Float cost per variable (cost units), summed over all cost terms, shape (V,)."""
        c = np.zeros(self._size)
        for entry in self.costs:
            np.add.at(c, entry.index, entry.costs)
        return c

    def finish(self, c_int: np.ndarray, scale: float) -> StandardModel:
        """Stack the rows into one sparse matrix; ``c_int`` are the scaled costs."""
        rows, cols, coefs, rhs, names = [], [], [], [], []
        offset = 0
        for block in self.row_blocks:
            rows.append(block.rows + offset)
            cols.append(block.cols)
            coefs.append(block.coefs)
            rhs.append(block.rhs)
            names.append((block.name, int(block.rhs.size)))
            offset += block.rhs.size
        cat = (lambda xs: np.concatenate(xs)) if rows else (lambda xs: np.zeros(0, np.int64))
        A = sparse.csr_matrix(
            (cat(coefs), (cat(rows), cat(cols))), shape=(offset, self._size), dtype=np.int64
        )
        A.sum_duplicates()
        return StandardModel(
            c=np.asarray(c_int, np.int64),
            A=A,
            b=cat(rhs).astype(np.int64),
            lb=np.concatenate(self._lb),
            ub=np.concatenate(self._ub),
            blocks=dict(self._blocks),
            scale=scale,
            row_names=names,
            aux=dict(self.aux),
        )


def complete_assignment(
    model: StandardModel, problem: LinkingProblem, nodes: np.ndarray, edges: np.ndarray
) -> np.ndarray:
    """Full 0/1 assignment of every block from selected nodes and edges.

    ``split`` is "two selected children", ``disappear`` "selected without a child"; other
    blocks use their registered derivation (:attr:`ModelArrays.derivations`).

    Parameters
    ----------
    model : StandardModel
    problem : LinkingProblem
    nodes : ndarray of bool, shape (N,)
    edges : ndarray of bool, shape (E,)

    Returns
    -------
    ndarray of int64, shape (V,)
    """
    nodes, edges = np.asarray(nodes, bool), np.asarray(edges, bool)
    z = np.zeros(model.num_vars, np.int64)
    z[model.blocks["node"]] = nodes
    z[model.blocks["edge"]] = edges
    children = np.bincount(problem.src[edges], minlength=problem.num_nodes)
    for name, block in model.blocks.items():
        if name in ("node", "edge"):
            continue
        if name == "split":
            z[block] = children == 2
        elif name == "disappear":
            z[block] = nodes & (children == 0)
        else:
            derive = ModelArrays.derivations[name]
            z[block] = derive(model.aux[name], problem, nodes, edges)
    return z
