"""The link stage: spots and a person's annotations → the graph a linker solves → LinkResult.

Every entry point links through this module (:class:`celltrack.pipeline.Pipeline`,
:meth:`celltrack.project.Project.link`, the demo and ``celltrack track``), so a person's
work means the same thing everywhere:

1. the spots a linker may link are those tagged ``tp``, ``fn`` or ``unlabeled``
   (:data:`celltrack.graph.tags.LINKABLE`; every spot without a ``tag`` column); a spot
   without a detection score (NaN: added by hand) counts as certain (score 1);
2. the annotations' approved links (:func:`celltrack.graph.tags.approved_mask`) whose two
   ends are among those spots are carried into the linker's graph;
3. a candidate-graph linker (greedy, ILP, any registered kind) gets the candidate graph of
   the spots (:func:`~celltrack.graph.candidates.build_candidates`) with every approved
   link in it (added when the candidate search did not find it) and marked ``approved``;
   the flow-corrected nearest-neighbour linker, which searches parents itself, gets the
   spots with the approved links as their only edges;
4. pins come from the tags and approved links
   (:func:`~celltrack.graph.candidates.pins_from_tags`), so no linker can override a
   person's decision;
5. the linker solves the graph, globally or block-wise
   (:func:`~celltrack.solve.blockwise.solve_blockwise`).

:func:`link_stage` runs all five; :func:`link_graph` (steps 1–4) and :func:`solve_links`
(step 5) are its two halves, for callers that cache the graph in between (the pipeline).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from celltrack.errors import InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.graph.candidates import CandidateConfig, build_candidates, pins_from_tags
from celltrack.graph.tags import LINKABLE, approved_mask, tags_of
from celltrack.solve.base import LinkResult, make_linker

__all__ = [
    "approved_pairs",
    "field_of_view",
    "learn_costs",
    "link_graph",
    "link_stage",
    "linkable_spots",
    "links_spots",
    "resolve_linker",
    "solve_links",
]


def approved_pairs(spots: TrackGraph, annotations: TrackGraph | None) -> np.ndarray:
    """The annotations' approved links whose two ends are among ``spots``.

    Parameters
    ----------
    spots : TrackGraph
        The spots to link (node ids).
    annotations : TrackGraph or None
        A person's annotations; links count when their edge column ``approved`` is True.

    Returns
    -------
    ndarray of int64, shape (P, 2)
        (parent id, child id) pairs, without duplicates.
    """
    if annotations is None or annotations.num_edges == 0:
        return np.zeros((0, 2), np.int64)
    keep = approved_mask(annotations)
    src = np.asarray(annotations.edges["source"], np.int64)[keep]
    tgt = np.asarray(annotations.edges["target"], np.int64)[keep]
    survive = spots.has_nodes(src) & spots.has_nodes(tgt)
    pairs = np.stack([src[survive], tgt[survive]], axis=1)
    return np.unique(pairs, axis=0) if pairs.shape[0] else pairs.reshape(0, 2)


def field_of_view(shape: Any, voxel_size: Any) -> tuple[tuple[float, float], ...]:
    """Spatial extent of a movie: ((0, z_max), (0, y_max), (0, x_max)) in µm.

    Parameters
    ----------
    shape : sequence of int
        Movie shape (T, Z, Y, X) in voxels.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    """
    return tuple(
        (0.0, float((int(n) - 1) * float(v))) for n, v in zip(tuple(shape)[1:], voxel_size)
    )


def resolve_linker(linker: Any) -> Any:
    """A linker from a Linker object, a linker config, a registered kind name or a dict."""
    if hasattr(linker, "link") and hasattr(linker, "config"):
        return linker
    return make_linker(linker)


def links_spots(linker: Any) -> bool:
    """True for a linker that searches parents itself and links spots, not candidate edges.

    Asks the linker's class attribute :attr:`Linker.links_spots` (``flow_nn``: True).
    """
    return bool(getattr(linker, "links_spots", False))


def linkable_spots(spots: TrackGraph) -> TrackGraph:
    """The spots a linker may link (step 1), without edges.

    Parameters
    ----------
    spots : TrackGraph
        Spots with an optional ``tag`` column (absent: every spot is linkable).

    Returns
    -------
    TrackGraph
        The spots tagged ``tp``, ``fn`` or ``unlabeled``; a NaN ``score`` (a spot added by
        hand) becomes 1.

    Raises
    ------
    InvalidInputError
        If ``spots`` is not a TrackGraph or no spot is linkable.
    """
    if not isinstance(spots, TrackGraph):
        raise InvalidInputError(
            f"the link stage needs a TrackGraph of spots, got {type(spots).__name__}"
        )
    keep = np.isin(tags_of(spots), LINKABLE)
    out = spots.subgraph(nodes=keep, edges=np.zeros(spots.num_edges, bool))
    out.attrs = dict(spots.attrs)
    if out.num_nodes == 0:
        raise InvalidInputError(
            f"no spots to link: {spots.num_nodes} spots given, none tagged {', '.join(LINKABLE)}"
            "; detect nuclei or annotate some first"
        )
    if "score" in out.nodes:
        score = np.asarray(out.nodes["score"], dtype=np.float64)
        out.set_node_column("score", np.where(np.isfinite(score), score, 1.0))
    return out


def _with_links(graph: TrackGraph, pairs: np.ndarray) -> TrackGraph:
    """``graph`` with edge column ``approved``: True on ``pairs``, which are added if missing.

    Added edges get the candidate features ``distance`` and ``pred_distance`` (µm: the
    parent–child distance) and ``frame_gap``.
    """
    rows, found = graph.edge_rows(pairs)
    col = approved_mask(graph)
    col[rows[found]] = True
    out = graph.copy()
    out.set_edge_column("approved", col)
    missing = pairs[~found]
    if missing.shape[0] == 0:
        return out
    prow, crow = out.index_of(missing[:, 0]), out.index_of(missing[:, 1])
    distance = np.linalg.norm(out.positions[prow] - out.positions[crow], axis=1)
    attrs = dict(out.attrs)
    out = out.add_edges(
        {
            "source": missing[:, 0],
            "target": missing[:, 1],
            "distance": distance,
            "pred_distance": distance,
            "frame_gap": out.t[crow] - out.t[prow],
            "approved": np.ones(missing.shape[0], bool),
        }
    )
    out.attrs = attrs
    return out


def link_graph(
    spots: TrackGraph,
    annotations: TrackGraph | None = None,
    *,
    candidates: CandidateConfig | None = None,
    linker: Any = "ilp",
    progress: bool = False,
    build: Callable[..., TrackGraph] | None = None,
) -> TrackGraph:
    """The graph ``linker`` solves: linkable spots, approved links and pins (steps 1–4).

    Parameters
    ----------
    spots : TrackGraph
        Detections (positions µm; optional ``tag``, ``score``, ``parent_z/y/x``). Their own
        edges are ignored.
    annotations : TrackGraph, optional
        A person's annotations; their approved links whose ends are spots are kept.
    candidates : CandidateConfig, optional
        Candidate search (ignored by spot linkers such as ``flow_nn``).
    linker : Linker, linker config, kind name or dict
        Decides between a candidate graph and the spots themselves (:func:`links_spots`).
    progress : bool
        Progress bar of the candidate search.
    build : callable, optional
        Builds the candidate graph, called as ``build(spots, cfg, progress=...)`` (default
        :func:`~celltrack.graph.build_candidates`; the Pipeline's block-wise mode passes
        :func:`celltrack.scale.candidates.build_candidates_blockwise`, which gives the same
        graph).

    Returns
    -------
    TrackGraph
        Nodes: the linkable spots with a ``pin`` column; edges: the candidate edges (or
        only the approved links, for spot linkers) with ``approved`` and ``pin`` columns.
    """
    base = linkable_spots(spots)
    pairs = approved_pairs(base, annotations)
    if not links_spots(resolve_linker(linker)):
        base = (build or build_candidates)(base, candidates or CandidateConfig(), progress=progress)
    return pins_from_tags(_with_links(base, pairs))


def solve_links(
    graph: TrackGraph,
    linker: Any,
    *,
    blockwise: Any = None,
    store: Any = None,
    progress: bool = False,
) -> LinkResult:
    """Solve the graph of :func:`link_graph` with ``linker``, globally or block-wise (step 5).

    Parameters
    ----------
    graph : TrackGraph
        Output of :func:`link_graph` for the same linker.
    linker : Linker, linker config, kind name or dict
    blockwise : BlockwiseConfig, optional
        Solve block by block (candidate-graph linkers only); None solves globally.
    store : str or Path, optional
        Block result folder (resumable); overrides ``blockwise.store``.
    progress : bool
        Progress bar over blocks.

    Raises
    ------
    InvalidInputError
        For block-wise solving with a spot linker (``flow_nn``).
    """
    linker = resolve_linker(linker)
    if blockwise is None:
        return linker.link(graph)
    if links_spots(linker):
        raise InvalidInputError(
            f"block-wise solving needs a candidate-graph linker (e.g. 'greedy' or 'ilp'), got "
            f"'{linker.config.kind}'; set blockwise to None or choose another linker"
        )
    from celltrack.solve.blockwise import solve_blockwise

    return solve_blockwise(graph, linker, config=blockwise, store=store, progress=progress)


def link_stage(
    spots: TrackGraph,
    annotations: TrackGraph | None = None,
    *,
    candidates: CandidateConfig | None = None,
    linker: Any = "ilp",
    blockwise: Any = None,
    store: Any = None,
    progress: bool = False,
) -> LinkResult:
    """Link spots, keeping every approved link of ``annotations`` (see the module docstring).

    Parameters
    ----------
    spots : TrackGraph
        Detections (N nodes, positions µm; optional ``tag``, ``score``, ``parent_z/y/x``).
    annotations : TrackGraph, optional
        A person's annotations (edge column ``approved``); may be ``spots`` themselves.
    candidates : CandidateConfig, optional
        Candidate search of candidate-graph linkers (defaults if omitted).
    linker : Linker, linker config, kind name or dict
        Any registered linker (default ``"ilp"``).
    blockwise : BlockwiseConfig, optional
        Solve block-wise (candidate-graph linkers only).
    store : str or Path, optional
        Block result folder for resuming (with ``blockwise``).
    progress : bool
        Progress bars.

    Returns
    -------
    LinkResult
        The linker's result; its graph holds every approved link whose ends are linkable
        spots, unless the pins are infeasible (status ``INFEASIBLE``).

    Examples
    --------
    >>> from celltrack.graph import TrackGraph
    >>> spots = TrackGraph.from_positions([0, 1], [[0, 0, 0], [0, 0, 3]])
    >>> link_stage(spots, candidates=CandidateConfig(max_distance_um=5),
    ...            linker="greedy").graph.num_edges
    1
    """
    linker = resolve_linker(linker)
    graph = link_graph(spots, annotations, candidates=candidates, linker=linker, progress=progress)
    return solve_links(graph, linker, blockwise=blockwise, store=store, progress=progress)


def learn_costs(graph: TrackGraph, annotations: TrackGraph, base: Any, **options: Any) -> Any:
    """Learn ILP costs on the graph of :func:`link_graph` from the approved links.

    The approved links and their end spots are the annotated lineage fragments (sparse
    ground truth); the pins are dropped for the fit, since pinned links would make every
    annotated decision trivial. See :func:`celltrack.solve.fit_costs`.

    Parameters
    ----------
    graph : TrackGraph
        Output of :func:`link_graph` (spot ids are the annotations' ids).
    annotations : TrackGraph
        A person's annotations with approved links.
    base : ILPConfig
        Starting weights and fixed settings.
    **options
        Passed to :func:`celltrack.solve.fit_costs` (``sparse`` defaults to True).

    Returns
    -------
    FitResult

    Raises
    ------
    InvalidInputError
        If no approved link has both ends in ``graph``.
    """
    from celltrack.solve import fit_costs

    approved = approved_mask(annotations)
    links = annotations.subgraph(edges=approved)
    truth = links.subgraph(nodes=(links.in_degree() + links.out_degree()) > 0)
    truth = truth.subgraph(nodes=graph.has_nodes(truth.ids))
    if truth.num_edges == 0:
        raise InvalidInputError(
            "no approved links to learn linking costs from: approve a few lineage fragments "
            "first (or set linker.learn to false)"
        )
    free = graph.copy()
    free.set_node_column("pin", np.full(free.num_nodes, -1, np.int8))
    free.set_edge_column("pin", np.full(free.num_edges, -1, np.int8))
    return fit_costs(free, truth, base=base, **{"sparse": True, **options})
