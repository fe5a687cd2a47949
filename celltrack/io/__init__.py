"""Reading and writing images, annotations, Cell Tracking Challenge folders and GEFF.

Nothing here imports torch; the ``geff`` and ``zarr`` packages load only when used.
"""

from celltrack.io.annotations import links_path, read_annotations, write_annotations
from celltrack.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from celltrack.io.ctc import ctc_segments, read_ctc, write_ctc
from celltrack.io.geff_io import read_geff, write_geff
from celltrack.io.images import ImageSeries, read_image, write_image
from celltrack.io.movie import as_movie
from celltrack.io.trackmate import read_trackmate

__all__ = [
    "ImageSeries",
    "as_movie",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "ctc_segments",
    "links_path",
    "read_annotations",
    "read_ctc",
    "read_geff",
    "read_image",
    "read_trackmate",
    "write_annotations",
    "write_ctc",
    "write_geff",
    "write_image",
]
