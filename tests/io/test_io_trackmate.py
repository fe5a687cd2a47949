"""TrackMate / MaMuT XML reading from small hand-written files."""

# ruff: noqa: E501  (the XML fixtures keep TrackMate's one-element-per-line layout)

from __future__ import annotations

import numpy as np
import pytest

from celltrack.errors import FormatError, GraphError
from celltrack.io.annotations import read_annotations
from celltrack.io.trackmate import read_trackmate

TRACKMATE = """<?xml version="1.0" encoding="UTF-8"?>
<TrackMate version="7.11.1">
  <Log>TrackMate v7.11.1 started on: ...</Log>
  <Model spatialunits="{units}" timeunits="min">
    <FeatureDeclarations>
      <SpotFeatures>
        <Feature feature="QUALITY" name="Quality" shortname="Quality" dimension="QUALITY" isint="false" />
        <Feature feature="POSITION_X" name="X" shortname="X" dimension="POSITION" isint="false" />
      </SpotFeatures>
    </FeatureDeclarations>
    <AllSpots nspots="5">
      <SpotsInFrame frame="0">
        <Spot ID="100" name="ID100" STD_INTENSITY_CH1="3.2" QUALITY="21.5" POSITION_T="0.0" FRAME="0" VISIBILITY="1" RADIUS="2.5" POSITION_X="10.0" POSITION_Y="20.0" POSITION_Z="4.0" />
      </SpotsInFrame>
      <SpotsInFrame frame="1">
        <Spot ID="101" name="ID101" QUALITY="18.0" POSITION_T="5.0" FRAME="1" VISIBILITY="1" RADIUS="2.5" POSITION_X="11.0" POSITION_Y="20.5" POSITION_Z="4.0" />
      </SpotsInFrame>
      <SpotsInFrame frame="2">
        <Spot ID="102" name="ID102" QUALITY="15.0" POSITION_T="10.0" FRAME="2" VISIBILITY="1" RADIUS="2.0" POSITION_X="9.0" POSITION_Y="18.0" POSITION_Z="4.5" />
        <Spot ID="103" name="ID103" QUALITY="16.0" POSITION_T="10.0" FRAME="2" VISIBILITY="1" RADIUS="2.0" POSITION_X="13.0" POSITION_Y="23.0" POSITION_Z="3.5" />
        <Spot ID="7" name="lonely" QUALITY="1.0" POSITION_T="10.0" FRAME="2" VISIBILITY="1" RADIUS="1.0" POSITION_X="40.0" POSITION_Y="40.0" POSITION_Z="1.0" />
      </SpotsInFrame>
    </AllSpots>
    <AllTracks>
      <Track name="Track_0" TRACK_ID="0" TRACK_INDEX="0" NUMBER_SPOTS="4" NUMBER_GAPS="0">
        <Edge SPOT_SOURCE_ID="100" SPOT_TARGET_ID="101" LINK_COST="1.2" EDGE_TIME="2.5" />
        <Edge SPOT_SOURCE_ID="102" SPOT_TARGET_ID="101" LINK_COST="3.1" EDGE_TIME="7.5" />
        <Edge SPOT_SOURCE_ID="101" SPOT_TARGET_ID="103" LINK_COST="2.0" EDGE_TIME="7.5" />
      </Track>
    </AllTracks>
    <FilteredTracks>
      <TrackID TRACK_ID="0" />
    </FilteredTracks>
  </Model>
  <Settings>
    <ImageData filename="embryo.tif" folder="/data/" width="64" height="64" nslices="10" nframes="3" pixelwidth="0.5" pixelheight="0.5" voxeldepth="2.0" timeinterval="5.0" />
  </Settings>
  <GUIState state="ConfigureViews" />
</TrackMate>
"""

MAMUT = """<?xml version="1.0" encoding="UTF-8"?>
<TrackMate version="3.5.1">
  <Model spatialunits="pixels" timeunits="frames">
    <AllSpots nspots="2">
      <SpotsInFrame frame="0">
        <Spot ID="0" name="0" VISIBILITY="1" RADIUS="5.0" QUALITY="-1.0" SOURCE_ID="0" POSITION_T="0.0" POSITION_X="100.5" POSITION_Y="50.0" FRAME="0" POSITION_Z="30.0" />
      </SpotsInFrame>
      <SpotsInFrame frame="3">
        <Spot ID="1" name="1" VISIBILITY="1" RADIUS="5.0" QUALITY="-1.0" SOURCE_ID="0" POSITION_T="3.0" POSITION_X="102.0" POSITION_Y="51.0" FRAME="3" POSITION_Z="30.5" />
      </SpotsInFrame>
    </AllSpots>
    <AllTracks>
      <Track name="Track_0" TRACK_ID="5">
        <Edge SPOT_SOURCE_ID="0" SPOT_TARGET_ID="1" LINK_COST="-1.0" />
      </Track>
    </AllTracks>
    <FilteredTracks><TrackID TRACK_ID="5" /></FilteredTracks>
  </Model>
  <Settings><ImageData filename="dataset.xml" folder="/data/" /></Settings>
  <GUIState><View key="MaMuT Viewer" /></GUIState>
</TrackMate>
"""


def test_trackmate_spots_edges_units(tmp_path):
    path = tmp_path / "tm.xml"
    path.write_text(TRACKMATE.replace("{units}", "µm"), encoding="utf-8")
    g = read_trackmate(path)
    assert sorted(g.ids.tolist()) == [7, 100, 101, 102, 103]
    row = int(g.index_of([103])[0])
    assert g.t[row] == 2
    assert np.allclose(g.positions[row], [3.5, 23.0, 13.0])  # (z, y, x)
    assert np.isclose(g.nodes["score"][row], 16.0)
    assert np.allclose(g.nodes["covariance"][row], np.eye(3) * 4.0)
    edges = set(zip(g.edges["source"].tolist(), g.edges["target"].tolist()))
    # the 102 -> 101 edge goes backward in time in the file and is flipped
    assert edges == {(100, 101), (101, 102), (101, 103)}
    assert g.divisions().tolist() == [101]
    assert set(g.edges["track_id"].tolist()) == {0}
    assert g.edges["approved"].all()
    assert g.attrs["spatial_units"] == "µm"
    assert g.attrs["voxel_size"] == [2.0, 0.5, 0.5]
    # read_annotations dispatches .xml here
    assert read_annotations(path).equals(g)


def test_nanometre_units_are_converted(tmp_path):
    path = tmp_path / "tm.xml"
    path.write_text(TRACKMATE.replace("{units}", "nm"), encoding="utf-8")
    g = read_trackmate(path)
    row = int(g.index_of([100])[0])
    assert np.allclose(g.positions[row], [0.004, 0.020, 0.010])
    assert np.allclose(g.attrs["voxel_size"], [0.002, 0.0005, 0.0005])


def test_mamut_file(tmp_path):
    path = tmp_path / "mamut.xml"
    path.write_text(MAMUT, encoding="utf-8")
    g = read_trackmate(path)
    assert g.num_nodes == 2 and g.num_edges == 1
    assert g.t.tolist() == [0, 3]
    assert np.allclose(g.positions[1], [30.5, 51.0, 102.0])  # unknown unit: kept as stored
    assert g.edges["track_id"].tolist() == [5]
    assert "voxel_size" not in g.attrs


def test_bad_files(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text(TRACKMATE.replace("{units}", "µm")[:900], encoding="utf-8")
    with pytest.raises(FormatError, match="not well-formed"):
        read_trackmate(broken)
    other = tmp_path / "other.xml"
    other.write_text("<root><a/></root>")
    with pytest.raises(FormatError, match="Model"):
        read_trackmate(other)
    nopos = tmp_path / "nopos.xml"
    nopos.write_text(TRACKMATE.replace("{units}", "µm").replace(' POSITION_Y="20.0"', ""))
    with pytest.raises(FormatError, match="spot 100"):
        read_trackmate(nopos)
    dangling = tmp_path / "dangling.xml"
    dangling.write_text(TRACKMATE.replace("{units}", "µm").replace('SPOT_TARGET_ID="103"', 'SPOT_TARGET_ID="999"'))
    with pytest.raises(GraphError, match="999"):
        read_trackmate(dangling)
    with pytest.raises(FormatError, match="no such"):
        read_trackmate(tmp_path / "absent.xml")
