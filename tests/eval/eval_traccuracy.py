"""Run traccuracy on celltrack graphs (test helper; traccuracy is a test dependency)."""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np

from celltrack.graph import TrackGraph


def to_traccuracy(graph: TrackGraph):
    """A traccuracy TrackingGraph with the same nodes (inserted in id order) and edges."""
    from traccuracy import TrackingGraph

    g = nx.DiGraph()
    order = np.argsort(graph.ids)
    ids, t = graph.ids[order], graph.t[order]
    z, y, x = (np.asarray(graph.nodes[c])[order] for c in ("z", "y", "x"))
    g.add_nodes_from(
        (int(i), {"t": int(tt), "z": float(a), "y": float(b), "x": float(c)})
        for i, tt, a, b, c in zip(ids, t, z, y, x)
    )
    g.add_edges_from(zip(graph.edges["source"].tolist(), graph.edges["target"].tolist()))
    return TrackingGraph(g, frame_key="t", location_keys=("z", "y", "x"))


def traccuracy_scores(gt: TrackGraph, pred: TrackGraph, threshold: float, tolerance: int):
    """traccuracy's CTCMetrics + DivisionMetrics with PointMatcher; flat dict."""
    from traccuracy import run_metrics
    from traccuracy.matchers import PointMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results, matched = run_metrics(
            to_traccuracy(gt),
            to_traccuracy(pred),
            PointMatcher(threshold=threshold),
            [CTCMetrics(), DivisionMetrics(max_frame_buffer=tolerance)],
        )
    ctc = results[0]["results"]
    div = results[1]["results"][f"Frame Buffer {tolerance}"]
    return ctc, div, matched
