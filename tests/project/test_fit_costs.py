"""Project.fit_costs: ILP costs learned from a person's approved lineage fragments."""

from __future__ import annotations

import numpy as np
import pytest

from celltrack.errors import InvalidInputError
from celltrack.graph.tags import approved_mask
from celltrack.project import Project


def test_fit_costs_learns_from_approved_links_and_links_with_them(project, tiny_data):
    gt = tiny_data.gt
    ids = project.add_annotations(gt, tag="tp", approved=False)
    lineage = gt.lineages()
    fragments = np.isin(lineage[gt.edge_index()[0]], np.unique(lineage)[:2])
    src, tgt = gt.edge_index()
    project.approve_links(np.stack([ids[src[fragments]], ids[tgt[fragments]]], axis=1))
    before = project.config.linker

    result = project.fit_costs(max_iterations=5, time_limit_s=5.0)

    assert result.loss_history and np.all(np.isfinite(result.loss_history))
    learned = project.config.linker
    assert learned.kind == "ilp" and learned == result.config and learned != before
    assert Project.open(project.folder).config.linker == learned  # saved in project.json
    linked = project.link()
    assert linked.ok
    g = project.annotations
    kept = {(int(s), int(t)) for s, t, a in zip(g.edges["source"], g.edges["target"],
                                                approved_mask(g)) if a}
    assert kept == {(int(ids[s]), int(ids[t])) for s, t in zip(src[fragments], tgt[fragments])}


def test_fit_costs_needs_approved_links(project):
    project.add_spots(0, [[4.0, 10.0, 10.0]])
    with pytest.raises(InvalidInputError, match="approve a few lineage"):
        project.fit_costs()
