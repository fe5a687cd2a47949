"""On-disk layout of a human-in-the-loop project folder, with atomic writes and recovery.

::

    folder/
      project.json        manifest: format version, config dump, image source, voxel size,
                          shape, frame cursor, celltrack version (atomic JSON)
      annotations.geff    the annotation graph (GEFF zarr), rewritten atomically when
                          the journal is compacted
      annotations.journal the edits since (fsynced JSON lines; see project.journal)
      images.zarr         the movie, when it was given as an array (OME-Zarr)
      models/detection.pt detection U-Net checkpoint (atomic, weights_only loading)
      models/flow.pt      flow U-Net checkpoint
      tracks.geff         the last linking result

Every writer goes through :mod:`celltrack.io.atomic` (temporary sibling + rename; folders
are exchanged atomically where the OS allows), so a crash leaves either the old or the new
version; :func:`recover` drops what a killed writer left and finishes an interrupted swap.
Annotation edits between two full writes live in the fsynced ``annotations.journal``
(:mod:`celltrack.project.journal`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from celltrack.errors import FormatError
from celltrack.graph import TrackGraph
from celltrack.io.atomic import atomic_write_text, clean_leftovers
from celltrack.io.geff_io import read_geff, write_geff

__all__ = [
    "ANNOTATIONS",
    "FORMAT",
    "FORMAT_VERSION",
    "IMAGES",
    "JOURNAL",
    "MANIFEST",
    "MODELS",
    "TRACKS",
    "load_graph",
    "read_manifest",
    "recover",
    "save_graph",
    "write_manifest",
]

logger = logging.getLogger(__name__)

FORMAT = "celltrack-project"
FORMAT_VERSION = 1
MANIFEST = "project.json"
ANNOTATIONS = "annotations.geff"
#: Append-only edit journal on top of ANNOTATIONS (see celltrack.project.journal).
JOURNAL = "annotations.journal"
TRACKS = "tracks.geff"
IMAGES = "images.zarr"
#: Folder of the trained networks (``<kind name>.pt``, see celltrack.model_kinds).
MODELS = "models"


def recover(path: str | Path) -> bool:
    """Finish an interrupted atomic write of ``path`` and drop what killed writers left.

    See :func:`celltrack.io.atomic.clean_leftovers` (temporaries of live writers are kept).

    Returns
    -------
    bool
        True if a previous version was restored under ``path``.
    """
    path = Path(path)
    return path in clean_leftovers(path)


def save_graph(graph: TrackGraph, path: str | Path) -> Path:
    """Write ``graph`` to the GEFF store ``path`` atomically (replacing it)."""
    return write_geff(graph, path, overwrite=True)


def load_graph(path: str | Path) -> TrackGraph:
    """Read a GEFF store written by :func:`save_graph`, recovering an interrupted swap."""
    path = Path(path)
    recover(path)
    if not path.exists():
        raise FormatError(f"{path} is missing: the project folder is incomplete")
    return read_geff(path)


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``project.json`` atomically (pretty-printed, sorted keys)."""
    text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False)
    return atomic_write_text(Path(folder) / MANIFEST, text + "\n")


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Read and check ``project.json`` of a project folder.

    Raises
    ------
    FormatError
        If the folder is not a celltrack project, the file is corrupt, or it was written
        by a newer format version.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    recover(path)
    if not path.is_file():
        raise FormatError(
            f"{folder} is not a celltrack project (no {MANIFEST}); create one with "
            "Project.create(folder, images, voxel_size=...)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormatError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FormatError(f"{path} is not a celltrack project manifest (format != {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise FormatError(
            f"{path} has project format version {version!r}; this celltrack reads up to "
            f"{FORMAT_VERSION}: upgrade celltrack"
        )
    return manifest
