"""TrackGraph: the one columnar graph type of celltrack.

Nodes and edges are stored as columns (numpy arrays). Node columns ``id`` (int64),
``t`` (int64, frame index) and ``z, y, x`` (float64, µm) are always present; optional
columns include ``covariance`` (N, 3, 3) in µm², ``score``, ``tag`` and anything a user
adds. Edge columns ``source`` and ``target`` (node ids, pointing forward in time:
parent → child) are always present, plus any feature column. Every query is vectorised:
no Python loop runs over nodes or edges.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from celltrack.errors import GraphError, InvalidInputError, ShapeError
from celltrack.graph.components import component_labels
from celltrack.graph.tags import TAG_DTYPE, TAGS, Tag, unknown_tags

__all__ = ["EDGE_REQUIRED", "NODE_REQUIRED", "TAGS", "TrackGraph"]

NODE_REQUIRED = ("id", "t", "z", "y", "x")
EDGE_REQUIRED = ("source", "target")
POSITION = ("z", "y", "x")


def _as_column(name: str, values: Any, length: int | None, owner: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 0:
        raise ShapeError(f"{owner} column '{name}' must be an array, got a scalar {array!r}")
    if length is not None and array.shape[0] != length:
        raise ShapeError(
            f"{owner} column '{name}' has {array.shape[0]} rows, expected {length} "
            f"(one per {owner})"
        )
    if array.dtype.kind in "UO" and name == "tag":
        array = array.astype(str, copy=False)
    return array


class TrackGraph:
    """Columnar directed graph of cell detections (nodes) and links (edges).

    Parameters
    ----------
    nodes : mapping of str to array_like
        Node columns, each with first dimension N. Must contain ``id`` (unique integers),
        ``t`` (integer frame), ``z``, ``y``, ``x`` (µm). ``covariance`` if present is
        (N, 3, 3) in µm². ``tag`` if present takes values in :data:`TAGS`.
    edges : mapping of str to array_like, optional
        Edge columns, each with first dimension E. Must contain ``source`` and ``target``
        (node ids, parent → child, forward in time).
    attrs : dict, optional
        Free metadata (e.g. ``voxel_size``, provenance); copied, never interpreted.
    validate : bool
        Check ids, columns and edge direction on construction (default True).

    Examples
    --------
    >>> g = TrackGraph({"id": [1, 2], "t": [0, 1], "z": [0, 0], "y": [1, 1], "x": [2, 3]},
    ...                {"source": [1], "target": [2]})
    >>> g.num_nodes, g.num_edges
    (2, 1)
    """

    def __init__(
        self,
        nodes: Mapping[str, Any],
        edges: Mapping[str, Any] | None = None,
        *,
        attrs: Mapping[str, Any] | None = None,
        validate: bool = True,
    ) -> None:
        if not isinstance(nodes, Mapping):
            raise InvalidInputError(
                f"nodes must be a mapping of column name to array, got {type(nodes).__name__}"
            )
        missing = [c for c in NODE_REQUIRED if c not in nodes]
        if missing:
            raise GraphError(
                f"node columns {missing} are missing; a TrackGraph needs {list(NODE_REQUIRED)} "
                f"(positions in µm), got {sorted(nodes)}"
            )
        n = len(np.asarray(nodes["id"]).reshape(-1))
        self._nodes: dict[str, np.ndarray] = {}
        for name, values in nodes.items():
            self._nodes[name] = _as_column(name, values, n, "node")
        self._nodes["id"] = self._int_column(self._nodes["id"], "node column 'id'")
        self._nodes["t"] = self._int_column(self._nodes["t"], "node column 't'")
        for axis in POSITION:
            self._nodes[axis] = self._float_column(self._nodes[axis], f"node column '{axis}'")

        edges = {} if edges is None else edges
        if not isinstance(edges, Mapping):
            raise InvalidInputError(
                f"edges must be a mapping of column name to array, got {type(edges).__name__}"
            )
        if edges and any(c not in edges for c in EDGE_REQUIRED):
            raise GraphError(
                f"edge columns must include {list(EDGE_REQUIRED)}, got {sorted(edges)}"
            )
        m = len(np.asarray(edges["source"]).reshape(-1)) if edges else 0
        self._edges: dict[str, np.ndarray] = {
            "source": np.zeros(0, np.int64),
            "target": np.zeros(0, np.int64),
        }
        for name, values in edges.items():
            self._edges[name] = _as_column(name, values, m, "edge")
        for end in EDGE_REQUIRED:
            self._edges[end] = self._int_column(self._edges[end], f"edge column '{end}'")
        self.attrs: dict[str, Any] = dict(attrs or {})
        self._cache: dict[str, Any] = {}
        if validate:
            self.validate()

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _int_column(values: np.ndarray, what: str) -> np.ndarray:
        if values.ndim != 1:
            raise ShapeError(f"{what} must be 1-D, got shape {values.shape}")
        if values.dtype.kind in "iu":
            return values.astype(np.int64, copy=False)
        if values.dtype.kind == "f":
            if values.size and not np.all(np.isfinite(values)):
                raise GraphError(f"{what} contains NaN or infinite values")
            if values.size and np.any(values != np.round(values)):
                raise GraphError(f"{what} must hold integers, found non-integral values")
            return values.astype(np.int64)
        if values.size == 0:
            return values.astype(np.int64)
        raise GraphError(f"{what} must hold integers, got dtype {values.dtype}")

    @staticmethod
    def _float_column(values: np.ndarray, what: str) -> np.ndarray:
        if values.ndim != 1:
            raise ShapeError(f"{what} must be 1-D, got shape {values.shape}")
        if values.size == 0:
            return values.astype(np.float64)
        if values.dtype.kind not in "iuf":
            raise GraphError(f"{what} must be numeric (µm), got dtype {values.dtype}")
        out = values.astype(np.float64, copy=False)
        if not np.all(np.isfinite(out)):
            raise GraphError(f"{what} contains NaN or infinite positions")
        return out

    @classmethod
    def empty(
        cls, node_columns: Iterable[str] = (), edge_columns: Iterable[str] = ()
    ) -> TrackGraph:
        """A graph with no nodes and no edges (extra float columns may be named)."""
        nodes = {c: np.zeros(0) for c in (*NODE_REQUIRED, *node_columns)}
        edges = {c: np.zeros(0) for c in (*EDGE_REQUIRED, *edge_columns)}
        return cls(nodes, edges)

    @classmethod
    def from_positions(
        cls,
        t: Any,
        positions: Any,
        *,
        ids: Any | None = None,
        **columns: Any,
    ) -> TrackGraph:
        """Build a node-only graph from frames ``t`` (N,) and ``positions`` (N, 3) in µm.

        Ids default to ``0..N-1``; extra keyword arguments become node columns.
        """
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ShapeError(f"positions must be (N, 3) as (z, y, x) µm, got {positions.shape}")
        n = positions.shape[0]
        nodes = {
            "id": np.arange(n) if ids is None else ids,
            "t": t,
            "z": positions[:, 0],
            "y": positions[:, 1],
            "x": positions[:, 2],
            **columns,
        }
        return cls(nodes)

    # ------------------------------------------------------------------ basic access
    @property
    def nodes(self) -> Mapping[str, np.ndarray]:
        """Read-only view of the node columns (arrays share memory with the graph)."""
        return _ReadOnlyColumns(self._nodes)

    @property
    def edges(self) -> Mapping[str, np.ndarray]:
        """Read-only view of the edge columns."""
        return _ReadOnlyColumns(self._edges)

    @property
    def node_columns(self) -> list[str]:
        """Names of all node columns."""
        return list(self._nodes)

    @property
    def edge_columns(self) -> list[str]:
        """Names of all edge columns."""
        return list(self._edges)

    @property
    def num_nodes(self) -> int:
        """Number of nodes N."""
        return int(self._nodes["id"].shape[0])

    @property
    def num_edges(self) -> int:
        """Number of edges E."""
        return int(self._edges["source"].shape[0])

    @property
    def ids(self) -> np.ndarray:
        """Node ids, shape (N,), int64."""
        return self._nodes["id"]

    @property
    def t(self) -> np.ndarray:
        """Node frames, shape (N,), int64."""
        return self._nodes["t"]

    @property
    def positions(self) -> np.ndarray:
        """Node positions, shape (N, 3) as (z, y, x) in µm (a new array)."""
        return np.stack([self._nodes[a] for a in POSITION], axis=1)

    @property
    def frames(self) -> np.ndarray:
        """Sorted unique frames that hold at least one node, shape (F,)."""
        return np.unique(self._nodes["t"])

    def __len__(self) -> int:
        return self.num_nodes

    def __repr__(self) -> str:
        frames = self.frames
        span = f"t={frames[0]}..{frames[-1]}" if frames.size else "no frames"
        extra_n = [c for c in self._nodes if c not in NODE_REQUIRED]
        extra_e = [c for c in self._edges if c not in EDGE_REQUIRED]
        return (
            f"TrackGraph({self.num_nodes} nodes, {self.num_edges} edges, {span}, "
            f"node columns +{extra_n}, edge columns +{extra_e})"
        )

    def copy(self) -> TrackGraph:
        """Deep copy of all columns and attrs."""
        return TrackGraph(
            {k: v.copy() for k, v in self._nodes.items()},
            {k: v.copy() for k, v in self._edges.items()},
            attrs=dict(self.attrs),
            validate=False,
        )

    def set_node_column(self, name: str, values: Any) -> None:
        """Add or replace a node column (first dimension must be N)."""
        if name in NODE_REQUIRED:
            raise InvalidInputError(
                f"'{name}' is a required node column; build a new TrackGraph to change it"
            )
        column = _as_column(name, values, self.num_nodes, "node")
        if name == "tag":
            _check_tags(column)
        if name == "covariance":
            _check_covariance(column)
        self._nodes[name] = column
        self._cache.clear()

    def set_edge_column(self, name: str, values: Any) -> None:
        """Add or replace an edge column (first dimension must be E)."""
        if name in EDGE_REQUIRED:
            raise InvalidInputError(
                f"'{name}' is a required edge column; build a new TrackGraph to change it"
            )
        self._edges[name] = _as_column(name, values, self.num_edges, "edge")

    # ------------------------------------------------------------------ indexing
    def _sorted_ids(self) -> tuple[np.ndarray, np.ndarray]:
        if "sorted" not in self._cache:
            order = np.argsort(self._nodes["id"], kind="stable")
            self._cache["sorted"] = (self._nodes["id"][order], order)
        return self._cache["sorted"]

    def _lookup(self, node_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        """Row index of each id (0 where absent) and a mask of which ids exist."""
        ids = np.asarray(node_ids, dtype=np.int64)
        sorted_ids, order = self._sorted_ids()
        if sorted_ids.size == 0:
            return np.zeros(ids.shape, np.int64), np.zeros(ids.shape, bool)
        pos = np.searchsorted(sorted_ids, ids)
        np.minimum(pos, sorted_ids.size - 1, out=pos)
        return order[pos], sorted_ids[pos] == ids

    def index_of(self, node_ids: Any) -> np.ndarray:
        """Row indices of ``node_ids`` (array_like of ids) in the node columns.

        Raises
        ------
        GraphError
            If an id is not a node of this graph.
        """
        rows, found = self._lookup(node_ids)
        if not np.all(found):
            bad = np.asarray(node_ids, dtype=np.int64)[~found].reshape(-1)[:5].tolist()
            raise GraphError(f"node ids {bad} are not in the graph")
        return rows

    def has_nodes(self, node_ids: Any) -> np.ndarray:
        """Boolean mask: which of ``node_ids`` are nodes of this graph."""
        return self._lookup(node_ids)[1]

    def edge_rows(self, pairs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Edge row of each (parent id, child id) pair, and which pairs are edges.

        Parameters
        ----------
        pairs : array_like of int, shape (P, 2)
            Node id pairs (parent, child); one pair may be given as shape (2,).

        Returns
        -------
        rows : ndarray of int64, shape (P,)
            Edge row (0 where the pair is not an edge).
        found : ndarray of bool, shape (P,)

        Raises
        ------
        InvalidInputError
            If ``pairs`` is not of shape (P, 2).
        """
        pairs = np.asarray(pairs, dtype=np.int64)
        if pairs.size == 0:
            pairs = pairs.reshape(0, 2)
        if pairs.ndim == 1 and pairs.size == 2:
            pairs = pairs[None]
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise InvalidInputError(
                f"links must be (parent_id, child_id) pairs, shape (P, 2); got shape "
                f"{pairs.shape}"
            )
        src = self._edges["source"].astype(np.int64)
        tgt = self._edges["target"].astype(np.int64)
        if src.size == 0:
            return np.zeros(len(pairs), np.int64), np.zeros(len(pairs), bool)
        order = np.lexsort((tgt, src))
        layout = [("s", np.int64), ("t", np.int64)]  # binary search on (source, target) rows
        view = np.ascontiguousarray(np.stack([src, tgt], axis=1)[order]).view(layout).ravel()
        query = np.ascontiguousarray(pairs).view(layout).ravel()
        pos = np.minimum(np.searchsorted(view, query), view.size - 1)
        return order[pos], view[pos] == query

    def edge_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of edge sources and targets, each shape (E,)."""
        if "edge_index" not in self._cache:
            self._cache["edge_index"] = (
                self.index_of(self._edges["source"]),
                self.index_of(self._edges["target"]),
            )
        return self._cache["edge_index"]

    def in_degree(self) -> np.ndarray:
        """Number of parents of every node, shape (N,)."""
        _, tgt = self.edge_index()
        return np.bincount(tgt, minlength=self.num_nodes)

    def out_degree(self) -> np.ndarray:
        """Number of children of every node, shape (N,)."""
        src, _ = self.edge_index()
        return np.bincount(src, minlength=self.num_nodes)

    # ------------------------------------------------------------------ validation
    def validate(self, forest: bool = False) -> TrackGraph:
        """Check structural rules; raise :class:`GraphError` naming the first violation.

        Always checked: unique node ids, non-negative frames, consistent column lengths,
        edge endpoints that exist, no self loops, no duplicate edges, edges forward in
        time, valid tags and covariance shapes. With ``forest=True`` (solutions) also:
        at most one parent and at most two children per node.

        Returns
        -------
        TrackGraph
            ``self``, so calls can be chained.
        """
        ids = self._nodes["id"]
        sorted_ids, _ = self._sorted_ids()
        dup = sorted_ids[1:] == sorted_ids[:-1]
        if np.any(dup):
            repeated = np.unique(sorted_ids[1:][dup])[:5].tolist()
            raise GraphError(f"node ids must be unique; duplicated: {repeated}")
        if ids.size and np.any(self._nodes["t"] < 0):
            raise GraphError("node frames 't' must be >= 0, found negative frames")
        if "tag" in self._nodes:
            _check_tags(self._nodes["tag"])
        if "covariance" in self._nodes:
            _check_covariance(self._nodes["covariance"])
        if self.num_edges:
            src, src_ok = self._lookup(self._edges["source"])
            tgt, tgt_ok = self._lookup(self._edges["target"])
            if not (np.all(src_ok) and np.all(tgt_ok)):
                bad = np.flatnonzero(~(src_ok & tgt_ok))[:5]
                pairs = list(
                    zip(self._edges["source"][bad].tolist(), self._edges["target"][bad].tolist())
                )
                raise GraphError(f"edges {pairs} point to node ids that are not in the graph")
            self._cache["edge_index"] = (src, tgt)
            t = self._nodes["t"]
            backward = t[src] >= t[tgt]
            if np.any(backward):
                i = int(np.flatnonzero(backward)[0])
                raise GraphError(
                    "edges must go forward in time (parent at t → child at t' > t); edge "
                    f"{self._edges['source'][i]} (t={t[src[i]]}) → {self._edges['target'][i]} "
                    f"(t={t[tgt[i]]}) does not. Swap source and target if your edges point back."
                )
            key = np.sort(src * max(self.num_nodes, 1) + tgt)
            if np.any(key[1:] == key[:-1]):
                raise GraphError("duplicate edges: each (source, target) pair may appear once")
        if forest:
            indeg, outdeg = self.in_degree(), self.out_degree()
            if np.any(indeg > 1):
                bad = ids[indeg > 1][:5].tolist()
                raise GraphError(
                    f"a lineage forest allows at most one parent per node; nodes {bad} have more"
                )
            if np.any(outdeg > 2):
                bad = ids[outdeg > 2][:5].tolist()
                raise GraphError(
                    f"a lineage forest allows at most two children per node; nodes {bad} have more"
                )
        return self

    # ------------------------------------------------------------------ selection
    def subgraph(self, nodes: Any | None = None, edges: Any | None = None) -> TrackGraph:
        """Select nodes and/or edges; edges whose endpoints are dropped are dropped too.

        Parameters
        ----------
        nodes : array_like, optional
            Boolean mask of shape (N,) or an array of node ids to keep. Default: all.
        edges : array_like, optional
            Boolean mask of shape (E,) or integer row indices of edges to keep.
            Default: all edges among the kept nodes.
        """
        keep_nodes = self._node_mask(nodes)
        keep_edges = np.ones(self.num_edges, bool)
        if edges is not None:
            e = np.asarray(edges)
            if e.dtype == bool:
                if e.shape != (self.num_edges,):
                    raise ShapeError(
                        f"edge mask must have shape ({self.num_edges},), got {e.shape}"
                    )
                keep_edges = e.copy()
            else:
                keep_edges = np.zeros(self.num_edges, bool)
                keep_edges[e.astype(np.int64)] = True
        if self.num_edges:
            src, tgt = self.edge_index()
            keep_edges &= keep_nodes[src] & keep_nodes[tgt]
        return TrackGraph(
            {k: v[keep_nodes] for k, v in self._nodes.items()},
            {k: v[keep_edges] for k, v in self._edges.items()},
            attrs=dict(self.attrs),
            validate=False,
        )

    def _node_mask(self, nodes: Any | None) -> np.ndarray:
        if nodes is None:
            return np.ones(self.num_nodes, bool)
        arr = np.asarray(nodes)
        if arr.dtype == bool:
            if arr.shape != (self.num_nodes,):
                raise ShapeError(f"node mask must have shape ({self.num_nodes},), got {arr.shape}")
            return arr
        mask = np.zeros(self.num_nodes, bool)
        mask[self.index_of(arr.reshape(-1))] = True
        return mask

    def nodes_at(self, t: int) -> np.ndarray:
        """Ids of the nodes in frame ``t``, shape (n_t,)."""
        if "by_t" not in self._cache:
            order = np.argsort(self._nodes["t"], kind="stable")
            self._cache["by_t"] = (self._nodes["t"][order], order)
        ts, order = self._cache["by_t"]
        lo, hi = np.searchsorted(ts, [t, t + 1])
        return self._nodes["id"][order[lo:hi]]

    def rows_at(self, t: int) -> np.ndarray:
        """Row indices of the nodes in frame ``t`` (see :meth:`nodes_at`)."""
        return self.index_of(self.nodes_at(t))

    # ------------------------------------------------------------------ topology
    def parents(self, node_ids: Any) -> np.ndarray:
        """Parent id of each of ``node_ids`` (-1 where none); shape like ``node_ids``.

        For graphs with several parents per node (candidate graphs) one of them is given.
        """
        rows = self.index_of(node_ids)
        parent = np.full(self.num_nodes, -1, np.int64)
        _, tgt = self.edge_index()
        parent[tgt] = self._edges["source"]
        return parent[rows]

    def children(self, node_id: int) -> np.ndarray:
        """Ids of the children of one node, shape (k,)."""
        row = int(self.index_of([node_id])[0])
        src, _ = self.edge_index()
        return self._edges["target"][src == row]

    def divisions(self) -> np.ndarray:
        """Ids of nodes with two or more children, shape (D,)."""
        return self._nodes["id"][self.out_degree() >= 2]

    def adjacency(self) -> Any:
        """Sparse (N, N) adjacency (``scipy.sparse.csr_matrix``) in row-index space.

        ``A[i, j] = 1`` for an edge from row i to row j.
        """
        from scipy import sparse

        src, tgt = self.edge_index()
        n = self.num_nodes
        return sparse.csr_matrix((np.ones(src.size, np.int8), (src, tgt)), shape=(n, n))

    def lineages(self) -> np.ndarray:
        """Lineage label (weakly connected component) of every node, shape (N,), from 0."""
        if self.num_nodes == 0:
            return np.zeros(0, np.int64)
        src, tgt = self.edge_index()
        return component_labels(src, tgt, self.num_nodes, first_appearance=True)

    def tracklets(self) -> np.ndarray:
        """Tracklet label of every node, shape (N,), from 0.

        A tracklet is a maximal chain without branching: an edge continues a tracklet
        when its source has exactly one child and its target exactly one parent.
        """
        if self.num_nodes == 0:
            return np.zeros(0, np.int64)
        src, tgt = self.edge_index()
        outdeg, indeg = self.out_degree(), self.in_degree()
        keep = (outdeg[src] == 1) & (indeg[tgt] == 1)
        return component_labels(src[keep], tgt[keep], self.num_nodes, first_appearance=True)

    # ------------------------------------------------------------------ combination
    def add_nodes(self, nodes: Mapping[str, Any], *, validate: bool = True) -> TrackGraph:
        """A new graph with extra nodes appended (missing columns filled with defaults).

        ``validate=False`` skips the checks (for a caller that validates the result itself).
        """
        other = TrackGraph(nodes, validate=False)
        return concat([self, other], offset_ids=False, validate=validate)

    def add_edges(self, edges: Mapping[str, Any], *, validate: bool = True) -> TrackGraph:
        """A new graph with extra edges appended (missing columns filled with defaults).

        ``validate=False`` skips the checks (for a caller that validates the result itself).
        """
        m = len(np.asarray(edges["source"]))
        cols = _merge_columns([self._edges, dict(edges)], [self.num_edges, m])
        return TrackGraph(dict(self._nodes), cols, attrs=dict(self.attrs), validate=validate)

    # ------------------------------------------------------------------ networkx
    def to_networkx(self):
        """Convert to a ``networkx.DiGraph``; every column becomes an attribute."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.graph.update(self.attrs)
        rest = [c for c in self._nodes if c != "id"]
        values = [_python_values(self._nodes[c]) for c in rest]
        graph.add_nodes_from(
            (i, dict(zip(rest, row))) for i, *row in zip(self._nodes["id"].tolist(), *values)
        )
        enames = [c for c in self._edges if c not in EDGE_REQUIRED]
        evals = [_python_values(self._edges[c]) for c in enames]
        graph.add_edges_from(
            (s, t, dict(zip(enames, r)))
            for s, t, *r in zip(
                self._edges["source"].tolist(), self._edges["target"].tolist(), *evals
            )
        )
        return graph

    @classmethod
    def from_networkx(cls, graph: Any, *, validate: bool = True) -> TrackGraph:
        """Build from a networkx directed graph with node attributes ``t, z, y, x``.

        Node keys must be integers (they become ``id``). Attributes present on every node
        (edge) become columns; an attribute missing on some nodes becomes a float column
        with NaN (or None for non-numeric values) where missing.
        """
        if not graph.is_directed():
            raise GraphError("from_networkx needs a directed graph (edges parent → child)")
        node_keys = list(graph.nodes)
        if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in node_keys):
            raise GraphError("from_networkx needs integer node keys (they become node ids)")
        nodes: dict[str, Any] = {"id": np.asarray(node_keys, np.int64)}
        attr_names = _attribute_names(data for _, data in graph.nodes(data=True))
        for axis in ("t", *POSITION):
            if axis not in attr_names:
                raise GraphError(
                    f"every node needs attribute '{axis}' (frame and z, y, x in µm); "
                    f"attributes found: {sorted(attr_names)}"
                )
        for name in attr_names:
            nodes[name] = _gather([d.get(name) for _, d in graph.nodes(data=True)], name)
        edge_list = list(graph.edges(data=True))
        edges: dict[str, Any] = {
            "source": np.asarray([u for u, _, _ in edge_list], np.int64),
            "target": np.asarray([v for _, v, _ in edge_list], np.int64),
        }
        for name in _attribute_names(d for _, _, d in edge_list):
            if name in EDGE_REQUIRED:
                continue
            edges[name] = _gather([d.get(name) for _, _, d in edge_list], name)
        return cls(nodes, edges, attrs=dict(graph.graph), validate=validate)

    # ------------------------------------------------------------------ equality
    def equals(self, other: TrackGraph, *, atol: float = 1e-9, columns: bool = True) -> bool:
        """True if both graphs hold the same nodes, edges and (optionally) columns.

        Rows are compared after sorting nodes by id and edges by (source, target).
        """
        if not isinstance(other, TrackGraph):
            return False
        if self.num_nodes != other.num_nodes or self.num_edges != other.num_edges:
            return False
        a, b = self.sorted(), other.sorted()
        names = set(a._nodes) if columns else set(NODE_REQUIRED)
        if columns and set(a._nodes) != set(b._nodes):
            return False
        if columns and set(a._edges) != set(b._edges):
            return False
        for name in names:
            if not _columns_equal(a._nodes[name], b._nodes[name], atol):
                return False
        enames = set(a._edges) if columns else set(EDGE_REQUIRED)
        return all(_columns_equal(a._edges[n], b._edges[n], atol) for n in enames)

    def sorted(self) -> TrackGraph:
        """A copy with nodes ordered by id and edges by (source, target).

        A table already in that order is not gathered again: the copy shares its column
        arrays (columns are never written in place; :meth:`set_node_column` replaces them).
        """
        ids, src, tgt = self._nodes["id"], self._edges["source"], self._edges["target"]
        nodes_ok = _non_decreasing(ids)
        edges_ok = _pairs_ordered(src, tgt)
        if nodes_ok:
            nodes = dict(self._nodes)
        else:
            norder = np.argsort(ids, kind="stable")
            nodes = {k: v[norder] for k, v in self._nodes.items()}
        if edges_ok:
            edges = dict(self._edges)
        else:
            eorder = np.lexsort((tgt, src))
            edges = {k: v[eorder] for k, v in self._edges.items()}
        out = TrackGraph(nodes, edges, attrs=dict(self.attrs), validate=False)
        if nodes_ok:  # the cached lookups stay true for the same arrays
            out._cache = {k: v for k, v in self._cache.items() if edges_ok or k != "edge_index"}
        return out


class _ReadOnlyColumns(Mapping):
    """Mapping view whose arrays cannot be written through."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self._columns = columns

    def __getitem__(self, key: str) -> np.ndarray:
        view = self._columns[key].view()
        view.flags.writeable = False
        return view

    def __iter__(self):
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return f"columns({', '.join(f'{k}{v.shape}' for k, v in self._columns.items())})"


def _non_decreasing(values: np.ndarray) -> bool:
    """True if ``values`` (1-D) is in non-decreasing order (a stable sort keeps it)."""
    return values.size < 2 or bool(np.all(values[1:] >= values[:-1]))


def _pairs_ordered(first: np.ndarray, second: np.ndarray) -> bool:
    """True if the rows (first, second) are in lexicographic non-decreasing order."""
    if first.size < 2:
        return True
    if not _non_decreasing(first):
        return False
    tie = first[1:] == first[:-1]
    return bool(np.all(second[1:][tie] >= second[:-1][tie]))


def _check_tags(tags: np.ndarray) -> None:
    bad = unknown_tags(tags)
    if bad:
        raise GraphError(f"unknown tags {bad}; allowed tags are {list(TAGS)}")


def _check_covariance(cov: np.ndarray) -> None:
    if cov.ndim != 3 or cov.shape[1:] != (3, 3):
        raise ShapeError(f"node column 'covariance' must be (N, 3, 3) in µm², got {cov.shape}")


def _python_values(column: np.ndarray) -> list:
    if column.ndim == 1:
        return column.tolist()
    return list(column)  # keep (3, 3) covariances etc. as arrays


def _attribute_names(datas: Iterable[Mapping[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for data in datas:
        for key in data:
            names.setdefault(key, None)
    return list(names)


def _gather(values: list, name: str) -> np.ndarray:
    present = [v for v in values if v is not None]
    if len(present) == len(values):
        return np.asarray(values)
    if all(isinstance(v, (int, float, np.integer, np.floating, bool)) for v in present):
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.asarray(values, dtype=object)


def _columns_equal(a: np.ndarray, b: np.ndarray, atol: float) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(
            np.allclose(a.astype(float), b.astype(float), atol=atol, rtol=0, equal_nan=True)
        )
    return bool(np.array_equal(a, b))


def _default_fill(name: str, column: np.ndarray, length: int) -> np.ndarray:
    """Fill of a column a table lacks: NaN, False, -1, "" — and ``"unlabeled"`` for tags."""
    shape = (length, *column.shape[1:])
    if name == "tag":
        return np.full(shape, Tag.UNLABELED.value, TAG_DTYPE)
    if column.dtype.kind == "f":
        return np.full(shape, np.nan, column.dtype)
    if column.dtype.kind == "b":
        return np.zeros(shape, bool)
    if column.dtype.kind in "iu":
        return np.full(shape, -1, np.int64)
    if column.dtype.kind == "U":
        return np.full(shape, "", column.dtype)
    return np.full(shape, None, object)


def _merge_columns(
    tables: list[Mapping[str, np.ndarray]], lengths: list[int]
) -> dict[str, np.ndarray]:
    names: dict[str, np.ndarray] = {}
    for table in tables:
        for key, col in table.items():
            names.setdefault(key, np.asarray(col))
    merged = {}
    for key, example in names.items():
        parts = []
        for table, length in zip(tables, lengths):
            part = table[key] if key in table else _default_fill(key, example, length)
            parts.append(np.asarray(part))
        merged[key] = np.concatenate(parts) if parts else example
    return merged


def concat(
    graphs: list[TrackGraph], *, offset_ids: bool = False, validate: bool = True
) -> TrackGraph:
    """Concatenate graphs (nodes and edges); columns missing in some get defaults.

    Parameters
    ----------
    graphs : list of TrackGraph
        Graphs to join.
    offset_ids : bool
        If True, shift each graph's ids past the previous maximum so they cannot clash.
    validate : bool
        Check the result (default True).
    """
    if not graphs:
        return TrackGraph.empty()
    node_tables, edge_tables = [], []
    shift = 0
    for g in graphs:
        nodes, edges = dict(g._nodes), dict(g._edges)
        if offset_ids:
            nodes["id"] = nodes["id"] + shift
            edges["source"] = edges["source"] + shift
            edges["target"] = edges["target"] + shift
            shift = int(nodes["id"].max()) + 1 if nodes["id"].size else shift
        node_tables.append(nodes)
        edge_tables.append(edges)
    nodes = _merge_columns(node_tables, [g.num_nodes for g in graphs])
    edges = _merge_columns(edge_tables, [g.num_edges for g in graphs])
    return TrackGraph(nodes, edges, attrs=dict(graphs[0].attrs), validate=validate)
