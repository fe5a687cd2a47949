"""Linking helpers of a project: approved links into candidate graphs, results back.

A project links its nucleus spots with any linker; these pure functions carry the
approved links into the candidate graph (so ILP/greedy pin them), give nodes the linker
made (interpolated spots) fresh project ids, and write the result's links back into the
annotation graph as non-approved links, ready for a person to approve.
"""

from __future__ import annotations

import numpy as np

from celltrack.geometry import sphere_covariances
from celltrack.graph import TrackGraph
from celltrack.project.tags import approved_mask, edge_rows

__all__ = ["merge_links", "renumber_created", "with_approved_links"]


def with_approved_links(cand: TrackGraph, spots: TrackGraph) -> TrackGraph:
    """Candidate graph with edge column ``approved``; approved links missing are added."""
    approved_pairs = np.stack([spots.edges["source"], spots.edges["target"]], axis=1)
    col = np.zeros(cand.num_edges, bool)
    if approved_pairs.shape[0] == 0:
        cand.set_edge_column("approved", col)
        return cand
    rows, found = edge_rows(cand, approved_pairs)
    col[rows[found]] = True
    cand.set_edge_column("approved", col)
    missing = approved_pairs[~found]
    if missing.shape[0]:
        prow, crow = cand.index_of(missing[:, 0]), cand.index_of(missing[:, 1])
        pos = cand.positions
        dist = np.sqrt(((pos[prow] - pos[crow]) ** 2).sum(axis=1))
        attrs = dict(cand.attrs)
        cand = cand.add_edges(
            {
                "source": missing[:, 0],
                "target": missing[:, 1],
                "distance": dist,
                "pred_distance": dist,
                "frame_gap": cand.t[crow] - cand.t[prow],
                "approved": np.ones(missing.shape[0], bool),
            }
        )
        cand.attrs = attrs
    return cand


def renumber_created(tracks: TrackGraph, linked: np.ndarray, next_id: int) -> TrackGraph:
    """Copy of ``tracks`` whose nodes not in ``linked`` (made by the linker) get fresh ids."""
    created = ~np.isin(tracks.ids, linked)
    out = tracks.copy()
    if not np.any(created):
        return out
    old = tracks.ids[created]
    new = np.arange(next_id, next_id + old.size, dtype=np.int64)
    order = np.argsort(old)

    def remap(ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        pos = np.minimum(np.searchsorted(old[order], ids), old.size - 1)
        hit = old[order][pos] == ids
        return np.where(hit, new[order][pos], ids)

    nodes = {k: np.array(v) for k, v in tracks.nodes.items()}
    nodes["id"] = remap(nodes["id"])
    edges = {k: np.array(v) for k, v in tracks.edges.items()}
    edges["source"], edges["target"] = remap(edges["source"]), remap(edges["target"])
    return TrackGraph(nodes, edges, attrs=dict(tracks.attrs))


def merge_links(annotations: TrackGraph, tracks: TrackGraph, linked: np.ndarray) -> TrackGraph:
    """Annotations whose non-approved links into ``linked`` nodes are the tracks' links.

    Nodes created by the linker (interpolated spots) are added as ``unlabeled`` spots.
    """
    g = annotations
    approved = approved_mask(g)
    tgt = g.edges["target"]
    keep = approved | ~np.isin(tgt, linked)
    out = g.subgraph(edges=keep)
    out.attrs = dict(g.attrs)
    new_nodes = ~out.has_nodes(tracks.ids)
    if np.any(new_nodes):
        add = tracks.subgraph(nodes=new_nodes)
        n = add.num_nodes
        cov = (
            np.asarray(add.nodes["covariance"])
            if "covariance" in add.nodes
            else sphere_covariances(n, 3.0)
        )
        attrs = dict(out.attrs)
        out = out.add_nodes(
            {
                "id": add.ids,
                "t": add.t,
                "z": add.nodes["z"],
                "y": add.nodes["y"],
                "x": add.nodes["x"],
                "covariance": cov,
                "score": np.full(n, np.nan),
                "tag": np.full(n, "unlabeled", dtype="<U9"),
            }
        )
        out.attrs = attrs
    pairs = np.stack([tracks.edges["source"], tracks.edges["target"]], axis=1)
    if pairs.shape[0]:
        _, exists = edge_rows(out, pairs)
        pairs = pairs[~exists]
    if pairs.shape[0]:
        attrs = dict(out.attrs)
        out = out.add_edges(
            {
                "source": pairs[:, 0],
                "target": pairs[:, 1],
                "approved": np.zeros(pairs.shape[0], bool),
            }
        )
        out.attrs = attrs
    return out
