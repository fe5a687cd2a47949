"""Linking results back into a project: fresh ids for linker-made nodes, links merged.

A project links its spots through the link stage (:mod:`celltrack.solve.stage`, which
carries the approved links and pins); these pure functions give nodes the linker made
(interpolated spots) fresh project ids and write the result's links back into the
annotation graph as non-approved links, ready for a person to approve.
"""

from __future__ import annotations

import numpy as np

from celltrack.geometry import sphere_covariances
from celltrack.graph import TrackGraph
from celltrack.graph.tags import TAG_DTYPE, Tag, approved_mask

__all__ = ["merge_links", "renumber_created"]


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
                "tag": np.full(n, Tag.UNLABELED.value, dtype=TAG_DTYPE),
            }
        )
        out.attrs = attrs
    pairs = np.stack([tracks.edges["source"], tracks.edges["target"]], axis=1)
    if pairs.shape[0]:
        _, exists = out.edge_rows(pairs)
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
