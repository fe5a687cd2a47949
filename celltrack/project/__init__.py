"""Human-in-the-loop tracking projects: annotate, train, predict, proofread, link, export.

:class:`Project` keeps a movie, an annotation graph with ELEPHANT's proofreading tags
(:mod:`celltrack.project.tags`), the detection and flow models and the last tracks in a
folder (:mod:`celltrack.project.storage`), saving every edit atomically. Importing this
package imports torch (through the detection and flow configs).
"""

from celltrack.project.config import ProjectConfig, as_project_config
from celltrack.project.project import Project
from celltrack.project.tags import (
    found_tags,
    merge_predictions,
    reset_tags,
    review_tags,
    reviewed_mask,
)

__all__ = [
    "Project",
    "ProjectConfig",
    "as_project_config",
    "found_tags",
    "merge_predictions",
    "reset_tags",
    "review_tags",
    "reviewed_mask",
]
