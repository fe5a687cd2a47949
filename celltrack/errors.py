"""Exceptions raised by celltrack.

Every public function validates its input and raises one of these, with a message that
says what was expected, what was found and how to fix it. Solver outcomes (optimal,
feasible, infeasible, time limit) are statuses on results, never exceptions.
"""

from __future__ import annotations

__all__ = [
    "CelltrackError",
    "CheckpointError",
    "ConfigError",
    "DependencyError",
    "FormatError",
    "GraphError",
    "InvalidInputError",
    "OutputExistsError",
    "ShapeError",
]


class CelltrackError(Exception):
    """Base class of every error celltrack raises on purpose."""


class InvalidInputError(CelltrackError, ValueError):
    """An argument has the wrong value (out of range, wrong length, NaN, ...)."""


class ShapeError(InvalidInputError):
    """An array has the wrong dimensionality or shape."""


class GraphError(InvalidInputError):
    """A graph breaks a structural rule (duplicate ids, backward edges, > 1 parent, ...)."""


class ConfigError(CelltrackError, ValueError):
    """A configuration is invalid: unknown key, wrong type, unreadable file."""


class FormatError(CelltrackError, ValueError):
    """A file is corrupt, truncated or does not follow its format's rules."""


class CheckpointError(CelltrackError, ValueError):
    """A model checkpoint is unreadable or belongs to another architecture."""


class DependencyError(CelltrackError, ImportError):
    """An optional dependency needed for this feature is not installed."""


class OutputExistsError(CelltrackError, FileExistsError):
    """An output path already holds data and the caller did not ask to replace it."""
