"""read_tracks / write_tracks: round trips in every format, sniffing, refusals, errors."""

import shutil

import numpy as np
import pytest

from celltrack.errors import FormatError, InvalidInputError
from celltrack.graph import TrackGraph
from celltrack.io import (
    READ_FORMATS,
    WRITE_FORMATS,
    OutputExistsError,
    read_tracks,
    tracks_format,
    write_tracks,
)

VS = (2.0, 1.0, 1.0)
SHAPE = (3, 5, 20, 20)


def _lineage() -> TrackGraph:
    """1 → 2 → (3, 4): a division, positions on voxel centres (µm)."""
    return TrackGraph(
        {"id": [1, 2, 3, 4], "t": [0, 1, 2, 2], "z": [4.0, 4.0, 4.0, 6.0],
         "y": [5.0, 6.0, 4.0, 10.0], "x": [5.0, 5.0, 4.0, 12.0]},
        {"source": [1, 2, 2], "target": [2, 3, 4]},
    )


def _by_position(graph: TrackGraph) -> tuple[set, set]:
    """Nodes as (t, z, y, x) and edges as pairs of those: comparable across renumbering."""
    key = {
        int(i): (int(t), *np.round(p, 3).tolist())
        for i, t, p in zip(graph.ids, graph.t, graph.positions)
    }
    edges = {(key[int(s)], key[int(d)])
             for s, d in zip(graph.edges["source"], graph.edges["target"])}
    return set(key.values()), edges


def _write(graph, path, fmt=None, **kw):
    return write_tracks(graph, path, fmt, shape=SHAPE, voxel_size=VS, radius_um=1.0, **kw)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("t.geff", None), ("t.zarr", None), ("t.csv", None), ("t.json", None), ("res", "ctc"),
     ("t.xml", None), ("tm", "trackmate")],
)
def test_round_trip_every_format(tmp_path, name, fmt):
    g = _lineage()
    out = _write(g, tmp_path / name, fmt)
    assert out.exists()
    back = read_tracks(out, voxel_size=VS)
    assert _by_position(back) == _by_position(g)
    assert back.attrs["voxel_size"] == list(VS)


def test_formats_are_told_by_content_not_suffix(tmp_path):
    g = _lineage()
    # each file moved to a name without (or with a misleading) suffix
    for fmt, name in (("csv", "spots.csv"), ("json", "t.json"), ("geff", "t.geff")):
        out = _write(g, tmp_path / fmt / name)
        plain = out.with_name("data.txt")
        out.rename(plain)
        if fmt == "csv":  # a forest is one track table: no links file
            assert not (tmp_path / fmt / "spots_links.csv").exists()
        assert tracks_format(plain) == fmt
        assert _by_position(read_tracks(plain)) == _by_position(g)
    # a CTC ground-truth folder given by its parent (01_GT/TRA)
    from celltrack.io import write_ctc

    write_ctc(g, tmp_path / "01_GT" / "TRA", shape=SHAPE, voxel_size=VS, radius=1.0, kind="gt")
    assert tracks_format(tmp_path / "01_GT") == "ctc"
    assert _by_position(read_tracks(tmp_path / "01_GT", voxel_size=VS)) == _by_position(g)


def test_trackmate_xml_is_sniffed(tmp_path):
    xml = tmp_path / "model"  # no suffix
    xml.write_text(
        '<?xml version="1.0"?>\n<TrackMate><Model spatialunits="µm" timeunits="frame">'
        '<AllSpots><SpotsInFrame frame="0"><Spot ID="1" FRAME="0" POSITION_X="1" '
        'POSITION_Y="2" POSITION_Z="3" RADIUS="1"/></SpotsInFrame><SpotsInFrame frame="1">'
        '<Spot ID="2" FRAME="1" POSITION_X="1" POSITION_Y="2" POSITION_Z="4" RADIUS="1"/>'
        '</SpotsInFrame></AllSpots><AllTracks><Track TRACK_ID="0"><Edge SPOT_SOURCE_ID="1" '
        'SPOT_TARGET_ID="2"/></Track></AllTracks></Model></TrackMate>\n',
        encoding="utf-8",
    )
    assert tracks_format(xml) == "xml" and "xml" in READ_FORMATS
    g = read_tracks(xml)
    assert g.num_nodes == 2 and g.num_edges == 1
    assert g.positions.tolist() == [[3.0, 2.0, 1.0], [4.0, 2.0, 1.0]]


@pytest.mark.parametrize(("name", "fmt"), [("t.geff", None), ("t.csv", None),
                                           ("t.json", None), ("res", "ctc")])
def test_existing_target_is_refused_and_kept(tmp_path, name, fmt):
    g = _lineage()
    out = _write(g, tmp_path / name, fmt)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    smaller = g.subgraph(nodes=[1, 2])
    with pytest.raises(OutputExistsError, match="overwrite=True") as info:
        _write(smaller, tmp_path / name, fmt)
    assert isinstance(info.value, FileExistsError)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert read_tracks(out, voxel_size=VS).num_nodes == 4
    # overwrite=True replaces it, leaving no temporary siblings
    _write(smaller, tmp_path / name, fmt, overwrite=True)
    assert read_tracks(out, voxel_size=VS).num_nodes == 2
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_csv_links_file_alone_blocks_writing(tmp_path):
    (tmp_path / "t_links.csv").write_text("mine\n")
    with pytest.raises(OutputExistsError, match=r"t_links\.csv"):
        _write(_lineage(), tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()
    assert (tmp_path / "t_links.csv").read_text() == "mine\n"


def test_ctc_into_a_folder_with_files_keeps_them(tmp_path):
    # the bug: `celltrack export ... --format ctc DIR` deleted every file in DIR
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match=r"notes\.txt"):
        _write(_lineage(), tmp_path, "ctc")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    # an empty folder is filled
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (_write(_lineage(), empty, "ctc") / "res_track.txt").is_file()


def test_csv_json_suffix_follows_the_format(tmp_path):
    out = _write(_lineage(), tmp_path / "tracks", "json")
    assert out == tmp_path / "tracks.json" and tracks_format(out) == "json"


def test_ctc_shape_and_voxel_size_default_to_the_graph_attrs(tmp_path):
    ctc = _write(_lineage(), tmp_path / "a", "ctc")
    back = read_tracks(ctc, voxel_size=VS)
    assert back.attrs["ctc_shape"] == list(SHAPE)
    again = write_tracks(back, tmp_path / "b", "ctc", radius_um=1.0)
    assert _by_position(read_tracks(again, voxel_size=VS)) == _by_position(_lineage())
    with pytest.raises(InvalidInputError, match=r"shape=\(T, Z, Y, X\).*--shape"):
        write_tracks(_lineage(), tmp_path / "c", "ctc", voxel_size=VS)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("name", "fmt", "match"),
    [("t.xyz", None, "cannot tell the output format"), ("t", None, "format='ctc'"),
     ("t.geff", "mp4", "unknown track format 'mp4'")],
)
def test_unknown_write_format_names_the_accepted_ones(tmp_path, name, fmt, match):
    with pytest.raises(InvalidInputError, match=match) as info:
        write_tracks(_lineage(), tmp_path / name, fmt)
    assert all(repr(f) in str(info.value) for f in WRITE_FORMATS)
    assert list(tmp_path.iterdir()) == []


def test_write_needs_a_trackgraph(tmp_path):
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        write_tracks({"id": [1]}, tmp_path / "t.geff")


def test_unreadable_inputs_name_the_accepted_formats(tmp_path):
    binary = tmp_path / "movie.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "folder").mkdir()
    for path, match in ((binary, "not GEFF, CTC"), (tmp_path / "empty.csv", "empty file"),
                        (tmp_path / "folder", "holding no track data"),
                        (tmp_path / "absent.geff", "does not exist")):
        with pytest.raises(FormatError, match=match) as info:
            read_tracks(path)
        assert "CTC folder" in str(info.value) and "TrackMate" in str(info.value)


def test_broken_geff_store_is_a_format_error(tmp_path):
    out = _write(_lineage(), tmp_path / "t.geff")
    shutil.rmtree(out / "nodes")
    with pytest.raises(FormatError, match="GEFF"):
        read_tracks(out)
