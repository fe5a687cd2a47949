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

from celltrack.errors import FormatError, GraphError
from celltrack.graph.trackgraph import TrackGraph
from celltrack.io.units import unit_scale

__all__ = ["read_trackmate"]

logger = logging.getLogger(__name__)

def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_trackmate(path: str | Path) -> TrackGraph:
    """Read spots and links of a TrackMate or MaMuT XML file.

    Parameters
    ----------
    path : str or Path
        The ``.xml`` file.

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
        If the file is not well-formed XML, holds no TrackMate model, or a spot or edge
        lacks a required attribute.
    GraphError
        On duplicate spot ids, edges to unknown spots or edges within one frame.
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
                    track_id = int(float(elem.attrib.get("TRACK_ID", -1)))
                continue
            if tag == "Spot":
                a = elem.attrib
                try:
                    ids.append(int(a["ID"]))
                    frames.append(round(float(a["FRAME"])))
                    pos.append((float(a.get("POSITION_Z", 0.0)), float(a["POSITION_Y"]),
                                float(a["POSITION_X"])))
                except (KeyError, ValueError) as err:
                    raise FormatError(
                        f"{path}: spot {a.get('ID', '?')} needs numeric ID, FRAME, POSITION_X, "
                        f"POSITION_Y (and optionally POSITION_Z): {type(err).__name__} {err}"
                    ) from None
                radius.append(float(a.get("RADIUS", "nan")))
                quality.append(float(a.get("QUALITY", "nan")))
                elem.clear()
            elif tag == "Edge":
                a = elem.attrib
                try:
                    src.append(int(float(a["SPOT_SOURCE_ID"])))
                    tgt.append(int(float(a["SPOT_TARGET_ID"])))
                except (KeyError, ValueError) as err:
                    raise FormatError(
                        f"{path}: an edge of track {track_id} needs numeric SPOT_SOURCE_ID and "
                        f"SPOT_TARGET_ID: {type(err).__name__} {err}"
                    ) from None
                track.append(track_id)
                elem.clear()
            elif tag == "Track":
                track_id = -1
                elem.clear()
            elif tag == "ImageData":
                vs = _calibration(elem.attrib)
                if vs is not None:
                    attrs["voxel_size"] = vs
    except ET.ParseError as err:
        raise FormatError(f"{path}: not well-formed XML ({err})") from err
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
    r = np.asarray(radius, float) * scale
    if r.size and np.all(np.isfinite(r) & (r > 0)):
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


def _calibration(attrib: dict[str, str]) -> list[float] | None:
    try:
        return [float(attrib[k]) for k in ("voxeldepth", "pixelheight", "pixelwidth")]
    except (KeyError, ValueError):
        return None
