"""write_trackmate: round trips through read_trackmate and an independent parser (pycellin)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from celltrack.errors import GraphError, InvalidInputError, OutputExistsError
from celltrack.graph import TrackGraph
from celltrack.io import read_tracks, tracks_format, write_tracks
from celltrack.io.trackmate import read_trackmate
from celltrack.io.trackmate_write import DEFAULT_RADIUS_UM, write_trackmate


def _lineages(z: bool = True) -> TrackGraph:
    """Two lineages: 10 → 11 → (12, 13) with 13 skipping a frame, and 20 → 21; 30 alone."""
    zs = [4.25, 4.5, 3.0, 6.125, 1.0, 1.5, 9.0] if z else [0.0] * 7
    return TrackGraph(
        {"id": [10, 11, 12, 13, 20, 21, 30], "t": [0, 1, 2, 3, 0, 1, 2], "z": zs,
         "y": [5.1, 6.2, 4.3, 10.4, 1.0 / 3.0, 2.0, 7.0],
         "x": [5.5, 5.25, 4.0, 12.0, 8.0, 9.0, 1e-7],
         "score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3],
         "size": np.array([1, 2, 3, 4, 5, 6, 7]),
         "tag": ["tp", "fp", "tp", "unlabeled", "tp", "tp", "fn"]},
        {"source": [10, 11, 11, 20], "target": [11, 12, 13, 21]},
        attrs={"voxel_size": [2.0, 0.5, 0.5]},
    )


def _edge_set(graph: TrackGraph) -> set[tuple[int, int]]:
    return set(zip(graph.edges["source"].tolist(), graph.edges["target"].tolist()))


def _lineage_sets(graph: TrackGraph) -> set[frozenset[int]]:
    labels = graph.lineages()
    return {frozenset(graph.ids[labels == k].tolist()) for k in np.unique(labels)}


@pytest.mark.parametrize("three_d", [True, False])
def test_round_trip_keeps_nodes_edges_and_lineages(tmp_path, three_d):
    g = _lineages(three_d)
    out = write_trackmate(g, tmp_path / "tm.xml")
    back = read_trackmate(out)
    assert back.equals(g, columns=False, atol=1e-9)  # ids, t, z, y, x; edges
    assert _edge_set(back) == _edge_set(g)
    assert _lineage_sets(back) == _lineage_sets(g)
    assert back.divisions().tolist() == [11]
    np.testing.assert_allclose(back.sorted().nodes["score"], g.sorted().nodes["score"])
    assert back.attrs["voxel_size"] == [2.0, 0.5, 0.5]
    image = ET.parse(out).getroot().find("Settings/ImageData").attrib
    assert image["nslices"] == ("1" if not three_d else image["nslices"])
    assert int(image["nframes"]) == 4


def test_file_has_what_trackmate_needs(tmp_path):
    out = write_trackmate(_lineages(), tmp_path / "tm.xml", shape=(4, 10, 30, 40),
                          image_path=tmp_path / "movie.tif", frame_interval=2.5)
    root = ET.parse(out).getroot()
    assert root.tag == "TrackMate" and root.attrib["version"].startswith("7.")
    model = root.find("Model")
    assert model.attrib == {"spatialunits": "µm", "timeunits": "frame"}
    declared = {
        kind: {f.attrib["feature"] for f in model.find(f"FeatureDeclarations/{kind}")}
        for kind in ("SpotFeatures", "EdgeFeatures", "TrackFeatures")
    }
    assert {"SPOT_SOURCE_ID", "SPOT_TARGET_ID", "LINK_COST"} <= declared["EdgeFeatures"]
    assert {"TRACK_ID", "TRACK_INDEX", "NUMBER_SPOTS"} <= declared["TrackFeatures"]
    spots = model.findall("AllSpots/SpotsInFrame/Spot")
    assert model.find("AllSpots").attrib["nspots"] == str(len(spots)) == "7"
    for spot in spots:  # TrackMate parses every spot attribute but ID/name as a number
        undeclared = set(spot.attrib) - declared["SpotFeatures"] - {"ID", "name"}
        assert not undeclared
        assert all(np.isfinite(float(v)) for k, v in spot.attrib.items() if k != "name")
    assert "size" in declared["SpotFeatures"] and "tag" not in declared["SpotFeatures"]
    tracks = model.findall("AllTracks/Track")
    assert [t.attrib["TRACK_ID"] for t in tracks] == ["0", "1"]
    for track in tracks:
        assert set(track.attrib) - declared["TrackFeatures"] == {"name"}
    assert [t.attrib["TRACK_ID"] for t in model.findall("FilteredTracks/TrackID")] == ["0", "1"]
    assert tracks[0].attrib["NUMBER_SPLITS"] == "1" and tracks[0].attrib["NUMBER_GAPS"] == "1"
    edge = tracks[0].find("Edge").attrib
    assert (edge["SPOT_SOURCE_ID"], edge["SPOT_TARGET_ID"]) == ("10", "11")
    settings = root.find("Settings")
    image = settings.find("ImageData").attrib
    assert (image["width"], image["height"], image["nslices"], image["nframes"]) == (
        "40", "30", "10", "4")
    assert image["filename"] == "movie.tif" and image["timeinterval"] == "2.5"
    for tag in ("BasicSettings", "InitialSpotFilter", "SpotFilterCollection",
                "TrackFilterCollection", "DetectorSettings", "TrackerSettings",
                "AnalyzerCollection"):
        assert settings.find(tag) is not None, tag
    spot = {s.attrib["ID"]: s.attrib for s in spots}["13"]
    assert spot["POSITION_T"] == "7.5" and spot["FRAME"] == "3"


def test_radius_from_covariance_or_default(tmp_path):
    g = _lineages()
    cov = np.zeros((7, 3, 3))
    cov[:] = np.diag([1.0, 4.0, 16.0])  # sds 1, 2, 4: geometric mean 2
    g.set_node_column("covariance", cov)
    back = read_trackmate(write_trackmate(g, tmp_path / "a.xml"))
    np.testing.assert_allclose(back.nodes["covariance"][:, 0, 0], 4.0)
    back = read_trackmate(write_trackmate(g, tmp_path / "b.xml", radius_um=3.0))
    np.testing.assert_allclose(back.nodes["covariance"][:, 1, 1], 9.0)
    plain = read_trackmate(write_trackmate(_lineages(), tmp_path / "c.xml"))
    np.testing.assert_allclose(plain.nodes["covariance"][:, 2, 2], DEFAULT_RADIUS_UM**2)


def test_write_tracks_dispatches_by_suffix_and_format(tmp_path):
    g = _lineages()
    out = write_tracks(g, tmp_path / "tracks.xml", shape=(4, 10, 30, 40),
                       voxel_size=(2.0, 0.5, 0.5))
    assert tracks_format(out) == "xml"
    assert _edge_set(read_tracks(out)) == _edge_set(g)
    out = write_tracks(g, tmp_path / "other", "trackmate")
    assert out.name == "other.xml" and read_tracks(out).equals(g, columns=False)
    with pytest.raises(OutputExistsError):
        write_tracks(g, tmp_path / "tracks.xml")


def test_independent_parser_reads_the_same_lineage(tmp_path):
    pycellin = pytest.importorskip("pycellin")
    g = _lineages()
    out = write_trackmate(g, tmp_path / "tm.xml")
    # pycellin drops spots outside tracks by default (and numbers lone spots' lineages
    # so that they can collide with track ids when kept): compare the tracked spots
    model = pycellin.load_TrackMate_XML(out)
    lineages = model.get_cell_lineages()
    cells = {int(n) for lin in lineages for n in lin.nodes}
    edges = {(int(a), int(b)) for lin in lineages for a, b in lin.edges}
    tracked = set(g.edges["source"].tolist()) | set(g.edges["target"].tolist())
    assert cells == tracked
    assert edges == _edge_set(g)
    assert {frozenset(int(n) for n in lin.nodes) for lin in lineages} == {
        s for s in _lineage_sets(g) if len(s) > 1}
    assert sorted(c.cell_ID for c in model.get_divisions()) == g.divisions().tolist()
    by_id = {int(n): d for lin in lineages for n, d in lin.nodes(data=True)}
    for i, t, z, y, x in zip(g.ids, g.t, *(g.nodes[a] for a in "zyx")):
        if int(i) in by_id:
            d = by_id[int(i)]
            assert d["FRAME"] == t
            np.testing.assert_allclose((d["cell_z"], d["cell_y"], d["cell_x"]), (z, y, x),
                                       atol=1e-9)


def test_not_a_forest_is_refused(tmp_path):
    g = TrackGraph({"id": [1, 2, 3], "t": [0, 0, 1], "z": [0.0] * 3, "y": [0.0] * 3,
                    "x": [0.0, 1.0, 2.0]}, {"source": [1, 2], "target": [3, 3]})
    with pytest.raises(GraphError, match=r"nodes \[3\] have several parents.*solve"):
        write_trackmate(g, tmp_path / "x.xml")
    assert list(tmp_path.iterdir()) == []


def test_ids_outside_java_int_are_refused(tmp_path):
    g = TrackGraph.from_positions([0, 1], np.zeros((2, 3)), ids=[0, 2**31])
    with pytest.raises(GraphError, match="renumber"):
        write_trackmate(g, tmp_path / "x.xml")


def test_existing_file_needs_overwrite(tmp_path):
    out = tmp_path / "x.xml"
    out.write_text("keep me")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_trackmate(_lineages(), out)
    assert out.read_text() == "keep me"
    write_trackmate(_lineages(), out, overwrite=True)
    assert read_trackmate(out).num_nodes == 7


@pytest.mark.parametrize("kw", [{"frame_interval": 0}, {"radius_um": -1.0},
                                {"shape": (3, 4)}, {"voxel_size": (1.0, 0.0, 1.0)}])
def test_bad_arguments(tmp_path, kw):
    with pytest.raises(InvalidInputError):
        write_trackmate(_lineages(), tmp_path / "x.xml", **kw)


def test_ten_thousand_spots_quickly(tmp_path):
    rng = np.random.default_rng(0)
    n, frames = 10_000, 50
    per = n // frames
    ids = np.arange(n)
    g = TrackGraph({"id": ids, "t": ids // per, "z": rng.random(n) * 30,
                    "y": rng.random(n) * 300, "x": rng.random(n) * 300},
                   {"source": ids[:-per], "target": ids[per:]})
    start = time.perf_counter()
    out = write_trackmate(g, tmp_path / "big.xml")
    assert time.perf_counter() - start < 5.0  # about 0.15 s here
    back = read_trackmate(out)
    assert back.num_nodes == n and back.num_edges == n - per


def test_missing_values_are_spelled_for_java(tmp_path):
    g = _lineages()
    g.set_node_column("score", [np.nan, 0.8, np.inf, 0.6, 0.5, 0.4, 0.3])
    out = write_trackmate(g, tmp_path / "x.xml", time_units="min", frame_interval=5.0)
    text = out.read_text(encoding="utf-8")
    assert 'QUALITY="NaN"' in text and 'QUALITY="Infinity"' in text and "nan" not in text
    assert 'timeunits="min"' in text
    back = read_trackmate(out).sorted()
    assert np.isnan(back.nodes["score"][0]) and np.isinf(back.nodes["score"][2])
