"""Write a lineage forest as a TrackMate XML file (TrackMate 7, Mastodon's TrackMate import).

The file holds what TrackMate's reader needs to open it without a detection run:

- ``<Model spatialunits="µm" timeunits="frame">`` (or the ``time_units`` given) with
  ``<FeatureDeclarations>`` for every attribute written on a spot, edge or track
  (TrackMate parses every spot attribute but ``ID`` / ``name`` as a number, and only
  declared edge features);
- ``<AllSpots>``: one ``<Spot>`` per node, grouped by frame, its ``ID`` the node id;
- ``<AllTracks>``: one ``<Track>`` per lineage (connected component with at least one
  edge), one ``<Edge SPOT_SOURCE_ID=parent SPOT_TARGET_ID=child>`` per edge, all
  listed in ``<FilteredTracks>`` (visible). A node without edges is a spot only;
- ``<Settings>``: the image calibration (``<ImageData>``), crop, manual detector and
  tracker and empty filter / analyzer collections; ``<GUIState state="ConfigureViews">``.
  No ``<DisplaySettings>``: TrackMate then uses the user's defaults.

Positions are written in µm, as the graph stores them (POSITION_Z = z, 0 for 2D+t).
Spot radius: a sphere of the same volume as the node's covariance ellipsoid (one
standard deviation), ``RADIUS = det(C) ** (1 / 6)`` (µm, the geometric mean of the
three standard deviations; ``det`` of the (y, x) block to the power 1/4 when every z is
0). :func:`~celltrack.io.trackmate.read_trackmate` reads it back as the sphere r² I.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from celltrack.errors import GraphError, InvalidInputError
from celltrack.geometry import check_voxel_size
from celltrack.graph.trackgraph import TrackGraph
from celltrack.io.atomic import atomic_path, refuse_existing

__all__ = ["DEFAULT_RADIUS_UM", "TRACKMATE_VERSION", "write_trackmate"]

logger = logging.getLogger(__name__)

#: Spot radius (µm) written when the graph has no covariance and no radius is given.
DEFAULT_RADIUS_UM = 1.0
#: The TrackMate file version written in the root element.
TRACKMATE_VERSION = "7.13.2"

_INT32_MAX = 2**31 - 1
_NO_IMAGE = "no-image.tif"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESERVED = {"ID", "name", "ROI_N_POINTS", "QUALITY", "POSITION_X", "POSITION_Y",
             "POSITION_Z", "POSITION_T", "FRAME", "RADIUS", "VISIBILITY"}
_SKIPPED_COLUMNS = {"id", "t", "z", "y", "x", "score", "covariance"}

# (feature, name, shortname, dimension, isint)
_SPOT_FEATURES = (
    ("QUALITY", "Quality", "Quality", "QUALITY", False),
    ("POSITION_X", "X", "X", "POSITION", False),
    ("POSITION_Y", "Y", "Y", "POSITION", False),
    ("POSITION_Z", "Z", "Z", "POSITION", False),
    ("POSITION_T", "T", "T", "TIME", False),
    ("FRAME", "Frame", "Frame", "NONE", True),
    ("RADIUS", "Radius", "R", "LENGTH", False),
    ("VISIBILITY", "Visibility", "Visibility", "NONE", True),
)
_EDGE_FEATURES = (
    ("SPOT_SOURCE_ID", "Source spot ID", "Source ID", "NONE", True),
    ("SPOT_TARGET_ID", "Target spot ID", "Target ID", "NONE", True),
    ("LINK_COST", "Edge cost", "Cost", "COST", False),
)
_TRACK_FEATURES = (
    ("TRACK_INDEX", "Track index", "Index", "NONE", True),
    ("TRACK_ID", "Track ID", "ID", "NONE", True),
    ("NUMBER_SPOTS", "Number of spots in track", "N spots", "NONE", True),
    ("NUMBER_GAPS", "Number of gaps", "N gaps", "NONE", True),
    ("NUMBER_SPLITS", "Number of split events", "N splits", "NONE", True),
    ("NUMBER_MERGES", "Number of merge events", "N merges", "NONE", True),
    ("TRACK_START", "Track start", "Track start", "TIME", False),
    ("TRACK_STOP", "Track stop", "Track stop", "TIME", False),
    ("TRACK_DURATION", "Track duration", "Duration", "TIME", False),
)


def write_trackmate(
    graph: TrackGraph,
    path: str | Path,
    *,
    shape: Sequence[int] | None = None,
    voxel_size: Sequence[float] | np.ndarray | None = None,
    image_path: str | Path | None = None,
    frame_interval: float = 1.0,
    radius_um: float | None = None,
    time_units: str = "frame",
    overwrite: bool = False,
) -> Path:
    """Write a lineage forest as a TrackMate XML file (atomically).

    Parameters
    ----------
    graph : TrackGraph
        Tracks (µm), edges parent → child; at most one parent per node. Node ids become
        the spot IDs and must lie in 0 … 2**31 - 1 (TrackMate's Java ``int``). The
        optional ``score`` column becomes QUALITY (1.0 without one), ``covariance``
        (N, 3, 3) µm² the RADIUS (see the module notes); other one-dimensional numeric
        node columns are written as extra declared spot features (non-numeric ones,
        e.g. ``tag``, and names that are not plain identifiers are skipped). An edge
        column ``cost`` becomes LINK_COST (-1, TrackMate's "manual", without one).
    path : str or Path
        Output ``.xml`` file.
    shape : sequence of 4 int, optional
        Movie shape (T, Z, Y, X) in voxels, for ``<ImageData>``
        (nframes, nslices, height, width). Default: ``graph.attrs["ctc_shape"]``, else
        the extent of the spots (in voxels) and of the frames.
    voxel_size : sequence of 3 float, optional
        Voxel size (z, y, x) in µm (voxeldepth, pixelheight, pixelwidth). Default:
        ``graph.attrs["voxel_size"]``, else 1 µm.
    image_path : str or Path, optional
        The movie TrackMate should open with the tracks (``filename`` / ``folder``).
        Default: none (filename ``no-image.tif``; TrackMate and Mastodon then show the
        tracks on an empty image of the ``shape``).
    frame_interval : float
        Time between frames (``timeinterval``, POSITION_T = frame × it), > 0.
    radius_um : float, optional
        Radius (µm) of every spot. Default: from the covariance when the graph has one,
        else :data:`DEFAULT_RADIUS_UM`.
    time_units : str
        The model's ``timeunits``: the unit of ``frame_interval`` (and of POSITION_T).
    overwrite : bool
        Replace an existing file; otherwise an existing ``path`` is an error and nothing
        is written.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False (CLI: ``--force``).
    GraphError
        If a node has several parents (not a forest), or a node id is negative or above
        2**31 - 1.
    InvalidInputError
        If ``graph`` is not a TrackGraph, or ``shape``, ``voxel_size``,
        ``frame_interval`` or ``radius_um`` is malformed.
    """
    if not isinstance(graph, TrackGraph):
        raise InvalidInputError(f"write_trackmate needs a TrackGraph, got {type(graph).__name__}")
    path = Path(path)
    _check_forest(graph)
    vs = _voxel_size(graph, voxel_size)
    interval = _positive(frame_interval, "frame_interval")
    radius = _radii(graph, None if radius_um is None else _positive(radius_um, "radius_um"))
    dims = _image_shape(graph, shape, vs)
    refuse_existing(path, overwrite)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(
                _document(graph, radius, dims, vs, interval, image_path, str(time_units))
            )
            handle.flush()
            os.fsync(handle.fileno())
    return path


# ---------------------------------------------------------------------- checks
def _check_forest(graph: TrackGraph) -> None:
    ids = graph.ids
    if ids.size and (ids.min() < 0 or ids.max() > _INT32_MAX):
        bad = ids[(ids < 0) | (ids > _INT32_MAX)][:5].tolist()
        raise GraphError(
            f"node ids {bad} cannot be TrackMate spot IDs (whole numbers 0 … 2**31 - 1); "
            "renumber the nodes first (e.g. ids 0..N-1)"
        )
    if graph.num_edges == 0:
        return
    indeg = graph.in_degree()
    if np.any(indeg > 1):
        bad = ids[indeg > 1][:5].tolist()
        raise GraphError(
            f"nodes {bad} have several parents: a TrackMate file holds lineage forests "
            "(at most one parent per node); solve the candidate graph into tracks first, "
            "or write it as GEFF / CSV (write_tracks(graph, 'x.geff'))"
        )
    # a forest with one parent per node has no duplicate edges: in-degree 1 each


def _positive(value: float, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (np.isfinite(number) and number > 0):
        raise InvalidInputError(f"{what} must be a finite number > 0, got {value!r}")
    return number


def _voxel_size(graph: TrackGraph, voxel_size) -> np.ndarray:
    if voxel_size is None:
        voxel_size = graph.attrs.get("voxel_size", (1.0, 1.0, 1.0))
    return check_voxel_size(voxel_size)


def _is_2d(graph: TrackGraph, shape: Sequence[int] | None) -> bool:
    if shape is not None:
        return int(shape[1]) == 1
    return bool(np.all(graph.nodes["z"] == 0))


def _image_shape(graph: TrackGraph, shape, vs: np.ndarray) -> tuple[int, int, int, int]:
    """(T, Z, Y, X) voxels: ``shape`` checked, or the extent of the data."""
    shape = graph.attrs.get("ctc_shape") if shape is None else shape
    if shape is not None:
        try:
            dims = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            dims = ()
        if len(dims) != 4 or min(dims) < 1:
            raise InvalidInputError(
                f"shape must be 4 whole numbers >= 1, (T, Z, Y, X) in voxels, got {shape!r}"
            )
        return dims  # type: ignore[return-value]
    if graph.num_nodes == 0:
        return (1, 1, 1, 1)
    extent = [int(np.ceil(max(float(graph.nodes[a].max()), 0.0) / v)) + 1
              for a, v in zip("zyx", vs)]
    nz = 1 if _is_2d(graph, None) else extent[0]
    return (int(graph.t.max()) + 1, nz, extent[1], extent[2])


def _radii(graph: TrackGraph, radius_um: float | None) -> np.ndarray:
    """Spot radius (µm) per node, shape (N,)."""
    n = graph.num_nodes
    if radius_um is not None or "covariance" not in graph.nodes:
        return np.full(n, DEFAULT_RADIUS_UM if radius_um is None else radius_um)
    cov = np.asarray(graph.nodes["covariance"], np.float64)
    if _is_2d(graph, None):
        with np.errstate(invalid="ignore", over="ignore"):
            r = np.linalg.det(cov[:, 1:, 1:]) ** 0.25
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            r = np.linalg.det(cov) ** (1.0 / 6.0)
    bad = ~(np.isfinite(r) & (r > 0))
    if np.any(bad):
        logger.warning("%d spots have a degenerate covariance; written with radius %g µm",
                       int(bad.sum()), DEFAULT_RADIUS_UM)
        r = np.where(bad, DEFAULT_RADIUS_UM, r)
    return r


# ---------------------------------------------------------------------- writing
_JAVA = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _num(values: np.ndarray) -> list[str]:
    """Exact text of each number (shortest repr that reads back to the same float).

    NaN and infinities are spelled as Java's ``Double.valueOf`` (and Python) read them.
    """
    if values.dtype.kind in "iub":
        return [str(v) for v in values.astype(np.int64).tolist()]
    text = [repr(v) for v in values.astype(np.float64).tolist()]
    if not np.all(np.isfinite(values)):
        text = [_JAVA.get(v, v) for v in text]
    return text


def _declare(kind: str, features) -> list[str]:
    lines = [f"      <{kind}>\n"]
    for feature, name, short, dim, isint in features:
        lines.append(
            f'        <Feature feature="{feature}" name={quoteattr(name)} '
            f'shortname={quoteattr(short)} dimension="{dim}" isint="{str(isint).lower()}" />\n'
        )
    lines.append(f"      </{kind}>\n")
    return lines


def _extra_columns(graph: TrackGraph) -> dict[str, np.ndarray]:
    """Extra 1-D numeric node columns written as spot features."""
    extra = {}
    for name, col in graph.nodes.items():
        if name in _SKIPPED_COLUMNS:
            continue
        if col.ndim != 1 or col.dtype.kind not in "iufb":
            logger.debug("node column %r is not a 1-D number: not written to TrackMate", name)
            continue
        if not _NAME.match(name) or name in _RESERVED:
            logger.warning("node column %r: not a usable TrackMate feature name; skipped", name)
            continue
        extra[name] = col
    return extra


def _spot_lines(graph: TrackGraph, radius: np.ndarray, interval: float,
                extra: dict[str, np.ndarray]) -> list[str]:
    nodes = graph.nodes
    t = graph.t
    order = np.lexsort((graph.ids, t))
    score = (np.asarray(nodes["score"], np.float64) if "score" in nodes
             else np.ones(graph.num_nodes))
    cols = {
        "ID": _num(graph.ids[order]),
        "QUALITY": _num(score[order]),
        "POSITION_X": _num(nodes["x"][order]),
        "POSITION_Y": _num(nodes["y"][order]),
        "POSITION_Z": _num(nodes["z"][order]),
        "POSITION_T": _num(t[order] * interval),
        "FRAME": _num(t[order]),
        "RADIUS": _num(radius[order]),
    }
    cols.update({k: _num(v[order]) for k, v in extra.items()})
    keys = list(cols)
    rows = zip(*(cols[k] for k in keys))
    spots = [
        f'        <Spot ID="{r[0]}" name="ID{r[0]}" VISIBILITY="1" '
        + " ".join(f'{k}="{v}"' for k, v in zip(keys[1:], r[1:]))
        + " />\n"
        for r in rows
    ]
    lines = [f'    <AllSpots nspots="{graph.num_nodes}">\n']
    frames, starts = np.unique(t[order], return_index=True)
    bounds = [*starts.tolist(), graph.num_nodes]
    for k, frame in enumerate(frames.tolist()):
        lines.append(f'      <SpotsInFrame frame="{frame}">\n')
        lines.extend(spots[bounds[k]:bounds[k + 1]])
        lines.append("      </SpotsInFrame>\n")
    lines.append("    </AllSpots>\n")
    return lines


def _track_lines(graph: TrackGraph, interval: float) -> tuple[list[str], list[int]]:
    """``<AllTracks>`` lines and the TRACK_IDs written."""
    if graph.num_edges == 0:
        return ["    <AllTracks />\n"], []
    src, tgt = graph.edge_index()
    label = graph.lineages()
    t = graph.t
    linked = np.unique(label[src])  # lineages that have an edge, by first appearance
    track_of_edge = np.searchsorted(linked, label[src])
    track_of_node = np.full(graph.num_nodes, -1, np.int64)
    has = np.isin(label, linked)
    track_of_node[has] = np.searchsorted(linked, label[has])
    k = linked.size
    n_spots = np.bincount(track_of_node[has], minlength=k)
    gaps = np.bincount(track_of_edge, weights=(t[tgt] - t[src]) > 1, minlength=k)
    outdeg = graph.out_degree()
    splits = np.bincount(track_of_node[has], weights=outdeg[has] > 1, minlength=k)
    start = np.full(k, np.iinfo(np.int64).max)
    stop = np.full(k, np.iinfo(np.int64).min)
    np.minimum.at(start, track_of_node[has], t[has])
    np.maximum.at(stop, track_of_node[has], t[has])
    cost = (np.asarray(graph.edges["cost"], np.float64) if "cost" in graph.edges
            else np.full(graph.num_edges, -1.0))
    ids = graph.ids
    s_txt, d_txt, c_txt = _num(ids[src]), _num(ids[tgt]), _num(cost)
    order = np.argsort(track_of_edge, kind="stable")
    bounds = np.searchsorted(track_of_edge[order], np.arange(k + 1))
    lines = ["    <AllTracks>\n"]
    for i in range(k):
        t0, t1 = float(start[i]) * interval, float(stop[i]) * interval
        lines.append(
            f'      <Track name="Track_{i}" TRACK_ID="{i}" TRACK_INDEX="{i}" '
            f'NUMBER_SPOTS="{int(n_spots[i])}" NUMBER_GAPS="{int(gaps[i])}" '
            f'NUMBER_SPLITS="{int(splits[i])}" NUMBER_MERGES="0" TRACK_START="{t0!r}" '
            f'TRACK_STOP="{t1!r}" TRACK_DURATION="{t1 - t0!r}">\n'
        )
        lines.extend(
            f'        <Edge SPOT_SOURCE_ID="{s_txt[e]}" SPOT_TARGET_ID="{d_txt[e]}" '
            f'LINK_COST="{c_txt[e]}" />\n'
            for e in order[bounds[i]:bounds[i + 1]].tolist()
        )
        lines.append("      </Track>\n")
    lines.append("    </AllTracks>\n")
    return lines, list(range(k))


def _settings_lines(dims: tuple[int, int, int, int], vs: np.ndarray, interval: float,
                    image_path: str | Path | None, radius: np.ndarray) -> list[str]:
    nt, nz, ny, nx = dims
    if image_path is None:
        # not empty: Mastodon would resolve folder "" + filename "" to "/"; a missing file
        # makes TrackMate and Mastodon show the tracks on an empty image of this size
        filename, folder = _NO_IMAGE, ""
    else:
        image = Path(image_path)
        filename, folder = image.name, (str(image.parent.resolve()) + os.sep)
    r = float(np.median(radius)) if radius.size else DEFAULT_RADIUS_UM
    return [
        "  <Settings>\n",
        f"    <ImageData filename={quoteattr(filename)} folder={quoteattr(folder)} "
        f'width="{nx}" height="{ny}" nslices="{nz}" nframes="{nt}" '
        f'pixelwidth="{float(vs[2])!r}" pixelheight="{float(vs[1])!r}" '
        f'voxeldepth="{float(vs[0])!r}" timeinterval="{interval!r}" />\n',
        f'    <BasicSettings xstart="0" xend="{nx - 1}" ystart="0" yend="{ny - 1}" '
        f'zstart="0" zend="{nz - 1}" tstart="0" tend="{nt - 1}" />\n',
        f'    <DetectorSettings DETECTOR_NAME="MANUAL_DETECTOR" RADIUS="{r!r}" />\n',
        '    <InitialSpotFilter feature="QUALITY" value="0.0" isabove="true" />\n',
        "    <SpotFilterCollection />\n",
        '    <TrackerSettings TRACKER_NAME="MANUAL_TRACKER" />\n',
        "    <TrackFilterCollection />\n",
        "    <AnalyzerCollection>\n      <SpotAnalyzers />\n      <EdgeAnalyzers />\n"
        "      <TrackAnalyzers />\n    </AnalyzerCollection>\n",
        "  </Settings>\n",
    ]


def _document(graph: TrackGraph, radius: np.ndarray, dims, vs: np.ndarray, interval: float,
              image_path: str | Path | None, time_units: str) -> list[str]:
    from celltrack._version import __version__

    extra = _extra_columns(graph)
    extra_features = [
        (k, k, k, "NONE", v.dtype.kind in "iub") for k, v in extra.items()
    ]
    tracks, track_ids = _track_lines(graph, interval)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<TrackMate version="{TRACKMATE_VERSION}">\n',
        f"  <Log>Written by celltrack {__version__}: {graph.num_nodes} spots, "
        f"{graph.num_edges} links.</Log>\n",
        f'  <Model spatialunits="µm" timeunits={quoteattr(time_units)}>\n',
        "    <FeatureDeclarations>\n",
        *_declare("SpotFeatures", (*_SPOT_FEATURES, *extra_features)),
        *_declare("EdgeFeatures", _EDGE_FEATURES),
        *_declare("TrackFeatures", _TRACK_FEATURES),
        "    </FeatureDeclarations>\n",
        *_spot_lines(graph, radius, interval, extra),
        *tracks,
        "    <FilteredTracks>\n",
        *(f'      <TrackID TRACK_ID="{i}" />\n' for i in track_ids),
        "    </FilteredTracks>\n",
        "  </Model>\n",
        *_settings_lines(dims, vs, interval, image_path, radius),
        '  <GUIState state="ConfigureViews" />\n',
        "</TrackMate>\n",
    ]
    return lines
