"""Read TrackMate and MaMuT XML files (spots and track edges) into a :class:`TrackGraph`.

Both tools write ``<Spot ID=".." FRAME=".." POSITION_X/Y/Z=".." RADIUS=".." QUALITY="..">``
elements (inside ``Model/AllSpots/SpotsInFrame``) and ``<Edge SPOT_SOURCE_ID=".."
SPOT_TARGET_ID="..">`` elements (inside ``Model/AllTracks/Track``). Positions are stored
calibrated, in the model's ``spatialunits``; they are converted to µm when the unit is a
known length unit and kept as stored otherwise. The file is streamed with
``xml.etree.ElementTree.iterparse``, so large MaMuT projects do not need a DOM in memory.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import FormatError, GraphError, InvalidInputError
from celltrack.geometry import check_voxel_size
from celltrack.graph.trackgraph import TrackGraph
from celltrack.io.annotations import _integer, check_lineage
from celltrack.io.units import unit_scale

__all__ = ["read_trackmate"]

logger = logging.getLogger(__name__)

def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _int_attr(a: dict[str, str], key: str, what: str, path: Path) -> int:
    raw = a.get(key)
    if raw is None:
        raise FormatError(
            f"{path}: {what} has no {key} attribute; every {what.split()[0]} needs one"
        )
    value = _integer(raw)
    if value is None or not -(2**63) <= value <= 2**63 - 1:
        raise FormatError(
            f"{path}: {what} has {key}={raw[:60]!r}; {key} must be a whole number "
            "(64-bit integer): fix the file"
        )
    return value


def _float_attr(a: dict[str, str], key: str, what: str, path: Path, default: float | None) -> float:
    raw = a.get(key)
    if raw is None:
        if default is None:
            raise FormatError(f"{path}: {what} has no {key} attribute; add it")
        return default
    try:
        value = float(raw)
    except (ValueError, OverflowError):
        value = None
    if value is None or (default is None and not np.isfinite(value)):
        raise FormatError(f"{path}: {what} has {key}={raw[:60]!r}; {key} must be a finite number")
    return value


def read_trackmate(path: str | Path, *, lineage: bool = True) -> TrackGraph:
    """Read spots and links of a TrackMate or MaMuT XML file.

    Parameters
    ----------
    path : str or Path
        The ``.xml`` file.
    lineage : bool
        Check the lineage rules (at most one parent and two children per spot). Pass
        False to read tracks with merge events.

    Returns
    -------
    TrackGraph
        Nodes: ``id`` (spot ID), ``t`` (FRAME), ``z, y, x`` (POSITION_Z/Y/X in µm, or as
        stored when the unit is unknown; z = 0 when absent), ``covariance`` (sphere of
        RADIUS, when every spot has one), ``score`` (QUALITY, NaN where absent). Edges:
        parent → child (oriented forward in time whatever the file's order), with
        ``track_id`` (TrackMate TRACK_ID, -1 when absent) and ``approved`` (True: links
        in these files were made or accepted in the tracking tool). ``attrs`` holds
        ``spatial_units`` / ``time_units`` as written in the file and, when present,
        ``voxel_size`` from the ImageData calibration (µm, z, y, x).

    Raises
    ------
    FormatError
        If the file is not well-formed XML, holds no TrackMate model, a spot or edge
        lacks a required attribute or has a malformed one (e.g. ``FRAME="1.5"``), a
        radius is not a finite number > 0 or the calibration is not > 0.
    GraphError
        On duplicate spot ids, edges to unknown spots or edges within one frame, and
        (with ``lineage``) spots with several parents or more than two children.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path}: no such TrackMate/MaMuT file")
    ids: list[int] = []
    frames: list[int] = []
    pos: list[tuple[float, float, float]] = []
    radius: list[float] = []
    quality: list[float] = []
    src: list[int] = []
    tgt: list[int] = []
    track: list[int] = []
    attrs: dict[str, Any] = {}
    model_seen = False
    track_id = -1
    try:
        for event, elem in ET.iterparse(path, events=("start", "end")):
            tag = _local(elem.tag)
            if event == "start":
                if tag == "Model":
                    model_seen = True
                    for key in ("spatialunits", "timeunits"):
                        if key in elem.attrib:
                            attrs[key.replace("units", "_units")] = elem.attrib[key]
                elif tag == "Track":
                    track_id = _int_attr(
                        {"TRACK_ID": elem.attrib.get("TRACK_ID", "-1")}, "TRACK_ID", "a track", path
                    )
                continue
            if tag == "Spot":
                a = elem.attrib
                what = f"spot {a.get('ID', '?')[:30]}"
                ids.append(_int_attr(a, "ID", what, path))
                frame = _int_attr(a, "FRAME", what, path)
                if frame < 0:
                    raise FormatError(f"{path}: {what} has FRAME={frame}; frames start at 0")
                frames.append(frame)
                pos.append((_float_attr(a, "POSITION_Z", what, path, 0.0),
                            _float_attr(a, "POSITION_Y", what, path, None),
                            _float_attr(a, "POSITION_X", what, path, None)))
                if not np.all(np.isfinite(pos[-1])):
                    raise FormatError(f"{path}: {what} has a position that is not finite")
                radius.append(_float_attr(a, "RADIUS", what, path, np.nan))
                quality.append(_float_attr(a, "QUALITY", what, path, np.nan))
                elem.clear()
            elif tag == "Edge":
                a = elem.attrib
                what = f"an edge of track {track_id}"
                src.append(_int_attr(a, "SPOT_SOURCE_ID", what, path))
                tgt.append(_int_attr(a, "SPOT_TARGET_ID", what, path))
                track.append(track_id)
                elem.clear()
            elif tag == "Track":
                track_id = -1
                elem.clear()
            elif tag == "ImageData":
                vs = _calibration(elem.attrib, path)
                if vs is not None:
                    attrs["voxel_size"] = vs
    except ET.ParseError as err:
        raise FormatError(f"{path}: not well-formed XML ({err}); is the file complete?") from err
    except RecursionError:
        raise FormatError(f"{path}: XML nested too deeply to read") from None
    if not model_seen:
        raise FormatError(f"{path}: no <Model> element; is this a TrackMate or MaMuT XML file?")
    scale = unit_scale(attrs.get("spatial_units"))
    if scale is None:
        logger.warning("%s: spatial units %r unknown; positions kept as stored",
                       path, attrs.get("spatial_units"))
        scale = 1.0
    if "voxel_size" in attrs:
        attrs["voxel_size"] = [v * scale for v in attrs["voxel_size"]]
    p = np.asarray(pos, float).reshape(-1, 3) * scale
    nodes: dict[str, Any] = {
        "id": np.asarray(ids, np.int64),
        "t": np.asarray(frames, np.int64),
        "z": p[:, 0],
        "y": p[:, 1],
        "x": p[:, 2],
        "score": np.asarray(quality, float),
    }
    with np.errstate(over="ignore"):
        r = np.asarray(radius, float) * scale
        given = ~np.isnan(np.asarray(radius, float))
        bad = given & ~(np.isfinite(r**2) & (r > 0))
        if np.any(bad):
            row = int(np.flatnonzero(bad)[0])
            raise FormatError(
                f"{path}: spot {ids[row]} has RADIUS={radius[row]!r}; a radius must be a finite "
                "number > 0 (remove it to read the spot as a point)"
            )
        if r.size and np.all(given):
            nodes["covariance"] = np.eye(3)[None] * (r**2)[:, None, None]
    edges: dict[str, Any] = {
        "source": np.asarray(src, np.int64),
        "target": np.asarray(tgt, np.int64),
        "track_id": np.asarray(track, np.int64),
        "approved": np.ones(len(src), bool),
    }
    try:
        graph = TrackGraph(nodes, edges, attrs=attrs, validate=False)
        graph = _oriented(graph, nodes, edges, attrs)
        if lineage:
            check_lineage(graph, "TrackMate/MaMuT")
    except GraphError as err:
        raise GraphError(f"{path}: {err}") from err
    return graph


def _oriented(graph: TrackGraph, nodes: dict, edges: dict, attrs: dict) -> TrackGraph:
    if graph.num_edges:
        s, t = graph.edge_index()
        frames = graph.t
        same = frames[s] == frames[t]
        if np.any(same):
            bad_s, bad_t = edges["source"][same][:5], edges["target"][same][:5]
            pairs = list(zip(bad_s.tolist(), bad_t.tolist()))
            raise GraphError(f"edges {pairs} join spots of the same frame")
        back = frames[s] > frames[t]
        edges["source"][back], edges["target"][back] = (
            edges["target"][back].copy(), edges["source"][back].copy()
        )
    return TrackGraph(nodes, edges, attrs=attrs)


def _calibration(attrib: dict[str, str], path: Path) -> list[float] | None:
    keys = ("voxeldepth", "pixelheight", "pixelwidth")
    if not all(k in attrib for k in keys):
        return None
    try:
        return check_voxel_size([attrib[k] for k in keys]).tolist()
    except InvalidInputError as err:
        raise FormatError(
            f"{path}: <ImageData voxeldepth/pixelheight/pixelwidth> is not a valid calibration "
            f"({err}); fix these attributes in the file"
        ) from None
