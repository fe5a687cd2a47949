"""How well predicted parent positions match a ground-truth lineage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from celltrack.errors import GraphError, InvalidInputError
from celltrack.flow.displace import PARENT_COLUMNS
from celltrack.graph import TrackGraph

__all__ = ["ParentErrors", "parent_errors"]


@dataclass(frozen=True)
class ParentErrors:
    """Per-link distances between predicted and true parent positions.

    Attributes
    ----------
    t : ndarray, shape (L,)
        Child frame of each ground-truth link.
    flow : ndarray, shape (L,)
        |predicted parent position − true parent position| (µm).
    no_motion : ndarray, shape (L,)
        |child position − true parent position| (µm): the error of assuming no motion.
    """

    t: np.ndarray
    flow: np.ndarray
    no_motion: np.ndarray

    @property
    def ratio(self) -> float:
        """Mean flow error / mean no-motion error (< 1: the flow helps)."""
        return float(self.flow.mean() / max(self.no_motion.mean(), 1e-12))

    def summary(self) -> dict[str, float]:
        """Mean errors (µm), their ratio and the number of links."""
        return {
            "n_links": int(self.t.size),
            "mean_error_flow_um": float(self.flow.mean()) if self.t.size else float("nan"),
            "mean_error_no_motion_um": float(self.no_motion.mean())
            if self.t.size
            else float("nan"),
            "ratio": self.ratio if self.t.size else float("nan"),
        }


def parent_errors(predicted: TrackGraph, gt: TrackGraph) -> ParentErrors:
    """Compare the parent columns of ground-truth children with their true parents.

    Parameters
    ----------
    predicted : TrackGraph
        The ground-truth nodes (same ids) with ``parent_z, parent_y, parent_x`` (µm), e.g.
        ``predict_parents(model, images, gt, voxel_size)``.
    gt : TrackGraph
        Ground truth with edges parent → child between consecutive frames.

    Returns
    -------
    ParentErrors
        One entry per ground-truth link whose child is in ``predicted``.

    Raises
    ------
    InvalidInputError
        If ``predicted`` lacks the parent columns.
    """
    missing = [c for c in PARENT_COLUMNS if c not in predicted.nodes]
    if missing:
        raise InvalidInputError(
            f"predicted graph lacks columns {missing}; run celltrack.flow.displace first"
        )
    src, tgt = gt.edge_index()
    child_ids = gt.ids[tgt]
    keep = predicted.has_nodes(child_ids)
    if not np.any(keep) and gt.num_edges:
        raise GraphError("no ground-truth child is a node of the predicted graph (ids differ)")
    rows = predicted.index_of(child_ids[keep])
    pred_parent = np.stack([predicted.nodes[c][rows] for c in PARENT_COLUMNS], axis=1)
    pos = gt.positions
    true_parent = pos[src[keep]]
    child = pos[tgt[keep]]
    return ParentErrors(
        t=gt.t[tgt[keep]],
        flow=np.linalg.norm(pred_parent - true_parent, axis=1),
        no_motion=np.linalg.norm(child - true_parent, axis=1),
    )
