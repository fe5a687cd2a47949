"""Graphs: the columnar :class:`TrackGraph` and the candidate-graph builder."""

from celltrack.graph.candidates import (
    PARENT_COLUMNS,
    CandidateConfig,
    build_candidates,
    pins_from_tags,
    predicted_parent,
)
from celltrack.graph.tags import TAGS, Tag
from celltrack.graph.trackgraph import TrackGraph, concat

__all__ = [
    "PARENT_COLUMNS",
    "TAGS",
    "CandidateConfig",
    "Tag",
    "TrackGraph",
    "build_candidates",
    "concat",
    "pins_from_tags",
    "predicted_parent",
]
