"""Reading and writing images, annotations, track files (GEFF, CTC, CSV/JSON, TrackMate).

:func:`read_tracks` / :func:`write_tracks` handle every track format (told by content on
reading); :func:`to_napari_tracks` / :func:`from_napari_tracks` convert to and from a
napari Tracks layer; :func:`as_movie` is the one way a movie comes in. Nothing here imports torch,
and ``tifffile``, ``zarr`` and ``geff`` load only when a function needs them.
"""

from celltrack.io.annotations import links_path, read_annotations, write_annotations
from celltrack.io.atomic import (
    OutputExistsError,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    refuse_existing,
)
from celltrack.io.ctc import ctc_segments, read_ctc, write_ctc
from celltrack.io.geff_io import read_geff, write_geff
from celltrack.io.images import ImageSeries, read_image, write_image
from celltrack.io.movie import as_movie
from celltrack.io.napari_tracks import from_napari_tracks, to_napari_tracks
from celltrack.io.trackmate import read_trackmate
from celltrack.io.trackmate_write import write_trackmate
from celltrack.io.tracks import (
    READ_FORMATS,
    WRITE_FORMATS,
    read_tracks,
    tracks_format,
    write_tracks,
)

__all__ = [
    "READ_FORMATS",
    "WRITE_FORMATS",
    "ImageSeries",
    "OutputExistsError",
    "as_movie",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "ctc_segments",
    "from_napari_tracks",
    "links_path",
    "read_annotations",
    "read_ctc",
    "read_geff",
    "read_image",
    "read_trackmate",
    "read_tracks",
    "refuse_existing",
    "to_napari_tracks",
    "tracks_format",
    "write_annotations",
    "write_ctc",
    "write_geff",
    "write_image",
    "write_trackmate",
    "write_tracks",
]
