"""Human-in-the-loop tracking projects: annotate, train, predict, proofread, link, export.

:class:`Project` keeps a movie, an annotation graph with ELEPHANT's proofreading tags
(:mod:`celltrack.graph.tags`), the detection and flow models and the last tracks in a
folder (:mod:`celltrack.project.storage`), saving every edit atomically. Importing this
package does not import torch; training and prediction load it when called.
"""

from celltrack.project.config import ProjectConfig, as_project_config
from celltrack.project.project import Project
from celltrack.project.tags import merge_predictions

__all__ = [
    "Project",
    "ProjectConfig",
    "as_project_config",
    "merge_predictions",
]
