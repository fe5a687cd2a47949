"""Graphs: the columnar :class:`TrackGraph` and the candidate-graph builder."""

from celltrack.graph.trackgraph import TAGS, TrackGraph, concat

__all__ = ["TAGS", "TrackGraph", "concat"]
