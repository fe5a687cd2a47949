"""Track files in any supported format: one reader, one writer, the format told by content.

:func:`read_tracks` opens a GEFF store, a Cell Tracking Challenge folder, an annotation
CSV or JSON file, or a TrackMate / MaMuT XML file, deciding which by looking at the data
(:func:`tracks_format`), not only at the name. :func:`write_tracks` is the one export
dispatch (the CLI's ``export``, :class:`~celltrack.pipeline.Pipeline` and
:class:`~celltrack.project.Project` all use it); it never replaces or deletes anything
that exists unless asked to with ``overwrite=True``.

========== ===================================== ==========================
format     on disk                               read by (written by)
========== ===================================== ==========================
``geff``   Zarr store (``.geff`` / ``.zarr``)    ``read_geff`` (``write_geff``)
``ctc``    folder: track file + label masks      ``read_ctc`` (``write_ctc``)
``csv``    ``x.csv`` (+ ``x_links.csv``)         ``read_annotations`` (see below)
``json``   one ``.json`` file                    ``read_annotations`` (``write_annotations``)
``xml``    TrackMate / MaMuT ``.xml``            ``read_trackmate`` (``write_trackmate``)
========== ===================================== ==========================

TrackMate XML (TrackMate 7, which Mastodon imports) is written for ``format="trackmate"``
(or ``"xml"``) or an ``.xml`` suffix; a written file reads back as format ``xml``.

A lineage forest is written as CSV in one file, the track table napari's Tracks layer and
TrackMate users expect (:func:`~celltrack.io.track_table.write_track_table`: ``track_id,
t, z, y, x, parent_track_id, id, parent_id, …``); any other graph (a candidate graph with
several parents per node) as spots plus a links file (``write_annotations``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from celltrack.errors import FormatError, InvalidInputError
from celltrack.geometry import check_voxel_size
from celltrack.graph.trackgraph import TrackGraph
from celltrack.io.atomic import refuse_existing
from celltrack.io.ctc_files import CTC_KINDS

__all__ = ["READ_FORMATS", "WRITE_FORMATS", "read_tracks", "tracks_format", "write_tracks"]

logger = logging.getLogger(__name__)

#: Formats :func:`read_tracks` reads.
READ_FORMATS = ("geff", "ctc", "csv", "json", "xml")
#: Formats :func:`write_tracks` writes.
WRITE_FORMATS = ("geff", "ctc", "csv", "json", "trackmate")

_SUFFIXES = {".geff": "geff", ".zarr": "geff", ".csv": "csv", ".json": "json", ".xml": "xml"}
_ZARR_META = ("zarr.json", ".zattrs", ".zgroup")
_SNIFF_BYTES = 4096
_ACCEPTED = (
    "a GEFF/Zarr store, a CTC folder (res_track.txt or man_track.txt, here or in TRA/), "
    "a CSV or JSON annotation file, or a TrackMate/MaMuT XML file"
)


def tracks_format(path: str | Path) -> str:
    """Tell the track format of a file or folder from its content.

    Parameters
    ----------
    path : str or Path
        A GEFF/Zarr store (a folder with ``zarr.json``, ``.zgroup`` or ``.zattrs``), a CTC
        folder (with ``res_track.txt`` or ``man_track.txt``, or a ``TRA`` subfolder that
        has one), or a file: XML (starts with ``<``), JSON (starts with ``{``) or CSV (a
        text header line with commas). Suffixes are not needed.

    Returns
    -------
    str
        One of :data:`READ_FORMATS`.

    Raises
    ------
    FormatError
        If ``path`` does not exist or holds none of these formats.
    """
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path} does not exist; expected {_ACCEPTED}")
    if path.is_dir():
        if any((path / name).is_file() for name in _ZARR_META):
            return "geff"
        for where in (path, path / "TRA"):
            if any((where / name).is_file() for name, _ in CTC_KINDS.values()):
                return "ctc"
        raise FormatError(f"{path}: a folder holding no track data; expected {_ACCEPTED}")
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as err:
        raise FormatError(f"{path}: cannot read ({err})") from err
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"<"):
        return "xml"
    if text.startswith(b"{"):
        return "json"
    first_line = text.split(b"\n", 1)[0]
    if b"," in first_line and b"\x00" not in head:
        try:
            first_line.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return "csv"
    what = "an empty file" if not text else "not GEFF, CTC, CSV, JSON or XML content"
    raise FormatError(f"{path}: {what}; expected {_ACCEPTED}")


def read_tracks(
    path: str | Path,
    *,
    voxel_size: Sequence[float] | np.ndarray | None = None,
    lineage: bool | None = None,
) -> TrackGraph:
    """Read tracks (or annotations) from any supported format, told by content.

    Parameters
    ----------
    path : str or Path
        GEFF store, CTC folder, CSV / JSON annotation file or TrackMate / MaMuT XML file
        (see :func:`tracks_format`).
    voxel_size : sequence of 3 float, optional
        Voxel size (z, y, x) in µm. A CTC folder's centroids (voxels) are scaled by it
        (default 1 µm, with a warning, so positions stay in voxels); for the other
        formats, whose positions are already in µm, it is recorded in
        ``attrs["voxel_size"]``.
    lineage : bool, optional
        Check the lineage rules (at most one parent and two children per node). Default
        True, except for a GEFF store that celltrack wrote from a non-forest graph (e.g.
        candidates). False reads any graph.

    Returns
    -------
    TrackGraph
        Positions in µm; the columns each reader provides (see :func:`read_geff`,
        :func:`read_ctc`, :func:`read_annotations`, :func:`read_trackmate`).

    Raises
    ------
    FormatError
        If the path is missing, its format unknown, or the file malformed.
    GraphError
        If the file describes an invalid graph (duplicate ids, links within a frame, ...).
    InvalidInputError
        On a bad voxel size.
    """
    vs = None if voxel_size is None else check_voxel_size(voxel_size)
    fmt = tracks_format(path)
    if fmt == "ctc":
        from celltrack.io.ctc import read_ctc

        if vs is None:
            logger.warning(
                "%s: no voxel size given for a CTC folder; positions are in voxels "
                "(pass voxel_size=(z, y, x) µm)", path
            )
        return read_ctc(
            path, voxel_size=(1.0, 1.0, 1.0) if vs is None else vs, lineage=lineage is not False
        )
    if fmt == "geff":
        from celltrack.io.geff_io import read_geff

        graph = read_geff(path, lineage=lineage)
        if vs is not None:
            graph.attrs["voxel_size"] = vs.tolist()
        return graph
    from celltrack.io.annotations import read_annotations

    return read_annotations(path, voxel_size=vs, format=fmt, lineage=lineage is not False)


def write_tracks(
    graph: TrackGraph,
    path: str | Path,
    format: str | None = None,
    *,
    overwrite: bool = False,
    shape: Sequence[int] | None = None,
    voxel_size: Sequence[float] | np.ndarray | None = None,
    radius_um: float | None = None,
    ctc_layout: str = "res",
) -> Path:
    """Write a graph as GEFF, a CTC folder, CSV, JSON or TrackMate XML; never replace data.

    (Existing data is replaced only with ``overwrite=True``.)

    Every format is written atomically (temporary sibling + rename). An existing target
    that holds anything (for CSV: the spots file or its ``<stem>_links.csv``) is left
    untouched and :class:`~celltrack.io.atomic.OutputExistsError` is raised, unless
    ``overwrite=True``, which replaces it (a CTC folder or GEFF store as a whole).

    Parameters
    ----------
    graph : TrackGraph
        Positions in µm. CTC and TrackMate need a forest (at most one parent per node).
    path : str or Path
        Output: ``.geff`` / ``.zarr`` store, ``.csv``, ``.json`` or ``.xml`` (TrackMate)
        file, or a CTC folder (e.g. ``.../01_RES``). For CSV/JSON/TrackMate a different
        suffix is replaced by the format's (``.xml`` for TrackMate).
    format : {"geff", "ctc", "csv", "json", "trackmate"}, optional
        Default: from the suffix of ``path`` (``.xml``: TrackMate; a CTC folder needs
        ``format="ctc"``). ``"xml"`` is accepted for ``"trackmate"``.
    overwrite : bool
        Replace an existing target.
    shape : sequence of 4 int, optional
        CTC and TrackMate: movie shape (T, Z, Y, X) in voxels; default
        ``graph.attrs["ctc_shape"]`` (set by :func:`read_ctc`). Required for CTC;
        TrackMate falls back to the extent of the spots.
    voxel_size : sequence of 3 float, optional
        CTC and TrackMate: voxel size (z, y, x) in µm; default
        ``graph.attrs["voxel_size"]`` (TrackMate: else 1 µm).
    radius_um : float, optional
        CTC: paint spheres of this radius (µm) instead of the node covariances.
        TrackMate: the RADIUS of every spot (default: from the covariances, see
        :func:`~celltrack.io.trackmate_write.write_trackmate`).
    ctc_layout : {"res", "gt"}
        CTC only: ``"res"`` writes a result folder (``res_track.txt``, ``maskTTT.tif``);
        ``"gt"`` writes ground truth (``man_track.txt``, ``man_trackTTT.tif``), which
        evaluation reads as the reference (write it into ``.../01_GT/TRA``).

    Returns
    -------
    Path
        The written file or folder (the spots file for CSV).

    Raises
    ------
    OutputExistsError
        If the target holds data and ``overwrite`` is False; nothing is written. It is a
        ``FileExistsError`` too.
    InvalidInputError
        On an unknown or read-only format (the message lists the accepted ones), a graph
        that is not a TrackGraph, or CTC export without a shape or voxel size.
    GraphError, FormatError, ShapeError
        From the format's writer (see :func:`write_ctc`, :func:`write_geff`,
        :func:`~celltrack.io.trackmate_write.write_trackmate`).
    """
    if not isinstance(graph, TrackGraph):
        raise InvalidInputError(f"write_tracks needs a TrackGraph, got {type(graph).__name__}")
    path = Path(path)
    fmt = _write_format(path, format)
    if fmt == "geff":
        from celltrack.io.geff_io import write_geff

        return write_geff(graph, path, overwrite=overwrite)
    if fmt == "ctc":
        return _write_ctc(graph, path, overwrite, shape, voxel_size, radius_um, ctc_layout)
    if fmt == "trackmate":
        from celltrack.io.trackmate_write import write_trackmate

        if path.suffix.lower() != ".xml":
            path = path.with_suffix(".xml")
        return write_trackmate(graph, path, shape=shape, voxel_size=voxel_size,
                               radius_um=radius_um, overwrite=overwrite)
    from celltrack.io.annotations import links_path, write_annotations

    if path.suffix.lower() != f".{fmt}":
        path = path.with_suffix(f".{fmt}")
    for target in (path, links_path(path)) if fmt == "csv" else (path,):
        refuse_existing(target, overwrite)
    if fmt == "csv" and graph.in_degree().max(initial=0) <= 1:
        # a lineage forest: the track table napari and TrackMate users expect, one file
        from celltrack.io.track_table import write_track_table

        links_path(path).unlink(missing_ok=True)  # it would be read instead of parent_id
        return write_track_table(graph, path, overwrite=overwrite)
    return write_annotations(graph, path, overwrite=overwrite)


def _write_format(path: Path, format: str | None) -> str:
    """The output format: ``format`` checked, or the one the suffix names."""
    accepted = ", ".join(repr(f) for f in WRITE_FORMATS)
    if format is not None:
        fmt = str(format).strip().lower()
        if fmt == "xml":
            return "trackmate"
        if fmt not in WRITE_FORMATS:
            raise InvalidInputError(f"unknown track format {format!r}; accepted: {accepted}")
        return fmt
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInputError(
            f"cannot tell the output format of {path.name!r} from its suffix: use .geff/.zarr, "
            f".csv, .json or .xml (TrackMate), or pass format= (one of {accepted}; a CTC "
            "folder needs format='ctc')"
        )
    return "trackmate" if fmt == "xml" else fmt


def _write_ctc(
    graph: TrackGraph,
    path: Path,
    overwrite: bool,
    shape: Sequence[int] | None,
    voxel_size: Sequence[float] | np.ndarray | None,
    radius_um: float | None,
    layout: str,
) -> Path:
    from celltrack.io.ctc import write_ctc

    if layout not in ("res", "gt"):
        raise InvalidInputError(
            f"ctc_layout must be 'res' (a result folder) or 'gt' (ground truth), got {layout!r}"
        )
    shape = graph.attrs.get("ctc_shape") if shape is None else shape
    voxel_size = graph.attrs.get("voxel_size") if voxel_size is None else voxel_size
    missing = [
        what for what, value in (("shape=(T, Z, Y, X) in voxels", shape),
                                 ("voxel_size=(z, y, x) in µm", voxel_size)) if value is None
    ]
    if missing:
        raise InvalidInputError(
            f"CTC export paints label masks and needs {' and '.join(missing)} of the movie "
            "(CLI: --shape T Z Y X, --voxel-size Z Y X); the graph's attrs do not record them"
        )
    return write_ctc(
        graph,
        path,
        shape=shape,
        voxel_size=voxel_size,
        radius=radius_um,
        kind=layout,
        overwrite=overwrite,
    )
