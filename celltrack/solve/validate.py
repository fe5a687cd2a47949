"""The input checks of every linker, in one place.

:meth:`celltrack.solve.base.Linker.link` runs :func:`check_candidates` before any linker's
``_link``; the readers below (:func:`pins`, :func:`edge_feature`, :func:`node_feature`,
:func:`roi_um`, :func:`bool_mask`) are what linkers use to read their inputs, so a column
is checked the same way whichever linker reads it. The few rules that really differ
between linkers are small named options or functions here:

- the greedy linker needs costs ≥ 0 (``edge_feature(..., nonnegative=True)``);
- the heuristics report pinned or approved edges that break the forest rules with
  :func:`forest_violation` (the ILP finds such conflicts in its own constraint rows).

Every error says what was expected, what was found and how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from celltrack.errors import GraphError, InvalidInputError, ShapeError
from celltrack.graph import TrackGraph

__all__ = [
    "bool_mask",
    "check_candidates",
    "check_graph",
    "edge_feature",
    "forest_violation",
    "node_feature",
    "pins",
    "roi_um",
]

Where = Literal["node", "edge"]


def check_graph(candidates: Any, who: str) -> None:
    """Check that ``candidates`` is a :class:`TrackGraph` with at least one node.

    Parameters
    ----------
    candidates : object
        What the caller passed as the candidate graph.
    who : str
        Name of the caller, used in the messages (e.g. ``"GreedyLinker"``).

    Raises
    ------
    InvalidInputError
        If ``candidates`` is not a TrackGraph.
    GraphError
        If it has no nodes.
    """
    if not isinstance(candidates, TrackGraph):
        raise InvalidInputError(
            f"{who} links a candidate TrackGraph, got {type(candidates).__name__}; build one "
            "with TrackGraph.from_positions(...) and celltrack.graph.candidates.build_candidates"
        )
    if candidates.num_nodes == 0:
        raise GraphError(
            f"{who}: the candidate graph has no nodes, so there is nothing to link; check the "
            "detection step (score threshold, input frames) or the roi the graph was cut to"
        )


def pins(graph: TrackGraph, where: Where) -> np.ndarray:
    """The ``pin`` column of the nodes or edges as int8, validated.

    Parameters
    ----------
    graph : TrackGraph
    where : {"node", "edge"}

    Returns
    -------
    ndarray of int8, shape (N,) or (E,)
        1 = must be selected, 0 = must be excluded, -1 = free (also where the column is
        absent, and for NaN in a float column). A bool column reads True = 1, False = 0.

    Raises
    ------
    InvalidInputError
        If the column holds other values than -1, 0, 1 (or NaN, or bools).
    """
    columns = graph.nodes if where == "node" else graph.edges
    size = graph.num_nodes if where == "node" else graph.num_edges
    if "pin" not in columns:
        return np.full(size, -1, np.int8)
    values = np.asarray(columns["pin"])
    if values.dtype.kind == "b":
        return values.astype(np.int8)
    if values.dtype.kind == "f":
        values = np.where(np.isnan(values), -1, values)
    if values.dtype.kind not in "iuf" or not np.all(np.isin(values, (-1, 0, 1))):
        found = np.unique(values)[:5].tolist() if values.dtype.kind in "iuf" else values.dtype
        raise InvalidInputError(
            f"{where} column 'pin' must hold -1 (free), 0 (excluded) or 1 (selected), got "
            f"{found}; fix it with graph.set_{where}_column('pin', values) or drop the column"
        )
    return values.astype(np.int8)


def check_candidates(candidates: Any, who: str) -> None:
    """All checks every linker needs: a non-empty TrackGraph with valid pin columns.

    Raises
    ------
    InvalidInputError, GraphError
        See :func:`check_graph` and :func:`pins`.
    """
    check_graph(candidates, who)
    pins(candidates, "node")
    pins(candidates, "edge")


def edge_feature(
    columns: Mapping[str, np.ndarray],
    name: str,
    *,
    setting: str,
    nonnegative: bool = False,
) -> np.ndarray:
    """An edge column used as a cost, as float64, validated (finite; ≥ 0 if asked).

    Parameters
    ----------
    columns : mapping of str to ndarray
        The edge columns (``graph.edges``), each of shape (E,).
    name : str
        The column to read (e.g. ``"pred_distance"``, µm).
    setting : str
        The config field that names the column (quoted in the fix, e.g.
        ``"GreedyConfig.cost_feature"``).
    nonnegative : bool
        Also require every value ≥ 0 (costs read as distances).

    Returns
    -------
    ndarray of float64, shape (E,)

    Raises
    ------
    InvalidInputError
        If the column is missing, not 1-D, holds NaN/inf, or (``nonnegative``) a value < 0.
    """
    if name not in columns:
        available = sorted(c for c in columns if c not in ("source", "target"))
        raise InvalidInputError(
            f"edge feature '{name}' is not an edge column; available: {available}. Build the "
            f"graph with celltrack.graph.candidates.build_candidates or set {setting}"
        )
    values = np.asarray(columns[name], dtype=np.float64)
    if values.ndim != 1:
        raise ShapeError(
            f"edge column '{name}' must be 1-D (one value per edge), got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise InvalidInputError(
            f"edge column '{name}' must be finite numbers, found NaN or infinite values; "
            "fill them (e.g. with a large distance) or drop those edges"
        )
    if nonnegative and values.size and values.min() < 0:
        raise InvalidInputError(
            f"edge column '{name}' must be >= 0 (a distance-like cost), found minimum "
            f"{values.min():g}; shift the costs or choose another column with {setting}"
        )
    return values


def node_feature(graph: TrackGraph, name: str, default: float) -> np.ndarray:
    """A numeric node column as float64 (N,), ``default`` where the column is absent.

    Raises
    ------
    InvalidInputError
        If the column is not one finite number per node.
    """
    if name not in graph.nodes:
        return np.full(graph.num_nodes, float(default))
    values = np.asarray(graph.nodes[name], dtype=np.float64)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise InvalidInputError(
            f"node column '{name}' must be finite numbers (one per node); found NaN/inf or "
            f"shape {values.shape}"
        )
    return values


def roi_um(graph: TrackGraph) -> np.ndarray | None:
    """The graph's ``attrs["roi_um"]`` as a (4, 2) float array, or None when absent.

    Rows are ``[t_min, t_max]`` (frames, inclusive), ``[z_lo, z_hi]``, ``[y_lo, y_hi]``,
    ``[x_lo, x_hi]`` (µm).

    Raises
    ------
    ShapeError
        If it is not 4 × 2 finite numbers.
    """
    roi = graph.attrs.get("roi_um")
    if roi is None:
        return None
    try:
        arr = np.asarray(roi, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != (4, 2) or not np.all(np.isfinite(arr)):
        raise ShapeError(
            "graph attrs['roi_um'] must be [[t_min, t_max], [z_lo, z_hi], [y_lo, y_hi], "
            f"[x_lo, x_hi]] (frames, µm; shape (4, 2), finite), got {roi!r}"
        )
    return arr


def bool_mask(values: Any, size: int, name: str) -> np.ndarray:
    """A boolean mask of length ``size``, validated.

    Raises
    ------
    InvalidInputError
        If ``values`` is not a bool array of shape (size,).
    """
    mask = np.asarray(values)
    if mask.dtype != bool or mask.shape != (size,):
        raise InvalidInputError(
            f"{name} must be a bool array of shape ({size},) (one entry per candidate), got "
            f"{mask.dtype} {mask.shape}"
        )
    return mask


def forest_violation(
    src: np.ndarray,
    tgt: np.ndarray,
    chosen: np.ndarray,
    num_nodes: int,
    max_children: int,
    node_ok: np.ndarray | None = None,
    what: str = "pinned",
) -> str | None:
    """Why the chosen edges cannot all be part of one lineage forest (None if they can).

    Parameters
    ----------
    src, tgt : ndarray of int, shape (E,)
        Parent and child node rows of every edge.
    chosen : ndarray of bool, shape (E,)
        The edges that must be selected (pinned or approved).
    num_nodes : int
        N.
    max_children : int
        Most children a node may have (1 or 2).
    node_ok : ndarray of bool, shape (N,), optional
        Nodes that may carry a chosen edge (e.g. not pinned out); default all.
    what : str
        What the chosen edges are, for the message (``"pinned"``, ``"approved"``).

    Returns
    -------
    str or None
        A sentence naming the broken rule, or None.
    """
    if node_ok is not None:
        bad = chosen & ~(node_ok[src] & node_ok[tgt])
        if bad.any():
            return f"{int(bad.sum())} {what} edge(s) touch a node that is pinned out"
    parents = np.bincount(tgt[chosen], minlength=num_nodes)
    if parents.size and parents.max() > 1:
        return f"{what} edges give {int(np.count_nonzero(parents > 1))} node(s) > 1 parent"
    children = np.bincount(src[chosen], minlength=num_nodes)
    if children.size and children.max() > max_children:
        many = int(np.count_nonzero(children > max_children))
        return f"{what} edges give {many} node(s) > {max_children} children"
    return None
