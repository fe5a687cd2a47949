"""Re-export of the project config, which lives in :mod:`celltrack.config.project`.

Kept so that ``from celltrack.project.config import ProjectConfig`` keeps working; new
code imports from :mod:`celltrack.config.project` (no torch) or :mod:`celltrack.project`.
"""

from celltrack.config.project import ProjectConfig, as_project_config, renamed_sections

__all__ = ["ProjectConfig", "as_project_config", "renamed_sections"]
