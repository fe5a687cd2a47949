"""Tests of the CTC writer/reader, cross-checked with py-ctcmetrics' validator."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from celltrack.errors import FormatError, GraphError, InvalidInputError
from celltrack.geometry import sphere_covariances
from celltrack.graph.trackgraph import TrackGraph
from celltrack.io.atomic import OutputExistsError
from celltrack.io.ctc import ctc_segments, read_ctc, write_ctc

VS3 = np.array([2.0, 1.0, 1.0])


def _lineage(z: float = 8.0, z2: float = 8.0) -> TrackGraph:
    """Node 0..2 one track; 2 divides into 3 and 5; 5 → 6 skips frame 4 (gap); 7 → 8 alone."""
    ids = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8])
    t = np.array([0, 1, 2, 3, 4, 3, 5, 1, 2])
    pos = np.array(
        [
            [z, 10, 10], [z, 11, 11], [z, 12, 12],
            [z2, 10, 22], [z2, 10, 24],
            [z, 22, 12], [z, 24, 12],
            [z, 30, 30], [z, 30, 31],
        ],
        float,
    )
    g = TrackGraph(
        {"id": ids, "t": t, "z": pos[:, 0], "y": pos[:, 1], "x": pos[:, 2]},
        {"source": [0, 1, 2, 2, 3, 5, 7], "target": [1, 2, 3, 5, 4, 6, 8]},
    )
    g.set_node_column("covariance", sphere_covariances(9, 3.0))
    return g


def _match(original: TrackGraph, read: TrackGraph, tol: float) -> dict[int, int]:
    """Map original ids to read ids by nearest node in the same frame (asserts within tol)."""
    mapping = {}
    pos_r = read.positions
    for row, node in enumerate(original.ids.tolist()):
        cand = np.flatnonzero(read.t == original.t[row])
        d = np.linalg.norm(pos_r[cand] - original.positions[row], axis=1)
        assert d.min() <= tol, (node, d.min())
        mapping[node] = int(read.ids[cand[np.argmin(d)]])
    return mapping


def _assert_same_graph(original: TrackGraph, read: TrackGraph, tol: float) -> None:
    assert read.num_nodes == original.num_nodes
    assert read.num_edges == original.num_edges
    m = _match(original, read, tol)
    assert len(set(m.values())) == original.num_nodes
    src, tgt = original.edges["source"].tolist(), original.edges["target"].tolist()
    mapped = {(m[s], m[t]) for s, t in zip(src, tgt)}
    got = set(zip(read.edges["source"].tolist(), read.edges["target"].tolist()))
    assert mapped == got


def test_segments_follow_ctc_rules():
    labels, table = ctc_segments(_lineage())
    # segments: [0,1,2], [7,8], [3,4], [5], [6]
    rows = {int(r[0]): r.tolist() for r in table}
    assert len(rows) == 5
    lab = dict(zip(_lineage().ids.tolist(), labels.tolist()))
    assert lab[0] == lab[1] == lab[2] and lab[3] == lab[4] and lab[7] == lab[8]
    assert len({lab[0], lab[3], lab[5], lab[6], lab[7]}) == 5
    assert rows[lab[0]] == [lab[0], 0, 2, 0]
    assert rows[lab[3]] == [lab[3], 3, 4, lab[0]]  # division daughters
    assert rows[lab[5]] == [lab[5], 3, 3, lab[0]]
    assert rows[lab[6]] == [lab[6], 5, 5, lab[5]]  # the gap starts a new label
    assert rows[lab[7]] == [lab[7], 1, 2, 0]
    # child begins after parent ends
    span = {r[0]: r for r in rows.values()}
    for r in rows.values():
        if r[3]:
            assert r[1] > span[r[3]][2]


@pytest.mark.parametrize("two_d", [False, True])
def test_roundtrip_and_ctcmetrics_validation(tmp_path, two_d):
    validate_sequence = pytest.importorskip("ctc_metrics.scripts.validate").validate_sequence
    if two_d:
        g, shape, vs = _lineage(z=0.0, z2=0.0), (6, 1, 40, 40), (1.0, 1.0, 1.0)
    else:
        g, shape, vs = _lineage(), (6, 9, 40, 40), VS3
    out = write_ctc(g, tmp_path / "01_RES", shape=shape, voxel_size=vs)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["mask000.tif", "mask001.tif", "mask002.tif", "mask003.tif", "mask004.tif",
                     "mask005.tif", "res_track.txt"]
    mask = tifffile.imread(out / "mask002.tif")
    assert mask.dtype == np.uint16
    assert mask.shape == ((40, 40) if two_d else (9, 40, 40))
    assert validate_sequence(str(out), threads=1)["Valid"] == 1
    read = read_ctc(out, voxel_size=vs)
    _assert_same_graph(g, read, tol=float(np.max(vs)))
    assert read.attrs["ctc_shape"] == list(shape)
    assert set(read.nodes) >= {"label", "volume"}
    assert np.all(read.nodes["volume"] > 0)


def test_gt_kind_and_tra_autodetect(tmp_path):
    g = _lineage()
    write_ctc(g, tmp_path / "01_GT" / "TRA", shape=(6, 9, 40, 40), voxel_size=VS3, kind="gt",
              radius=2.0)
    assert (tmp_path / "01_GT" / "TRA" / "man_track.txt").is_file()
    assert (tmp_path / "01_GT" / "TRA" / "man_track005.tif").is_file()
    read = read_ctc(tmp_path / "01_GT", voxel_size=VS3)
    _assert_same_graph(g, read, tol=2.0)


def test_overlapping_nuclei_keep_every_label(tmp_path):
    # a small nucleus inside a large one: painting order must keep both
    g = TrackGraph.from_positions([0, 0], [[8, 20, 20], [8, 20, 23]])
    cov = np.stack([np.eye(3) * 36.0, np.eye(3) * 1.0])
    g.set_node_column("covariance", cov)
    out = write_ctc(g, tmp_path / "res", shape=(1, 9, 40, 40), voxel_size=VS3)
    mask = tifffile.imread(out / "mask000.tif")
    labels, counts = np.unique(mask[mask > 0], return_counts=True)
    assert labels.tolist() == [1, 2]
    assert counts.min() >= 1
    read = read_ctc(out, voxel_size=VS3)
    assert read.num_nodes == 2


def test_shared_centre_voxel_raises(tmp_path):
    g = TrackGraph.from_positions([0, 0], [[8, 20, 20], [8.1, 20.2, 20.1]])
    with pytest.raises(FormatError, match="centre voxel"):
        write_ctc(g, tmp_path / "res", shape=(1, 9, 40, 40), voxel_size=VS3, radius=2.0)
    assert not (tmp_path / "res").exists()  # atomic: nothing left behind


def test_write_rejects_bad_input(tmp_path):
    g = _lineage()
    with pytest.raises(InvalidInputError, match="outside the movie"):
        write_ctc(g, tmp_path / "a", shape=(3, 9, 40, 40), voxel_size=VS3)
    with pytest.raises(InvalidInputError):
        write_ctc(g, tmp_path / "a", shape=(6, 9, 40, 40), voxel_size=(1, 1))
    with pytest.raises(InvalidInputError):
        write_ctc(g, tmp_path / "a", shape=(6, 9, 40, 40), voxel_size=VS3, kind="nope")
    merged = TrackGraph.from_positions([0, 0, 1], [[8, 5, 5], [8, 15, 15], [8, 10, 10]])
    merged = merged.add_edges({"source": [0, 1], "target": [2, 2]})
    with pytest.raises(GraphError, match="one parent"):
        write_ctc(merged, tmp_path / "a", shape=(2, 9, 40, 40), voxel_size=VS3, radius=2)


def _simple_folder(tmp_path, lines: str, frames: dict[int, np.ndarray]):
    folder = tmp_path / "res"
    folder.mkdir()
    (folder / "res_track.txt").write_text(lines)
    for t, m in frames.items():
        tifffile.imwrite(folder / f"mask{t:03d}.tif", m)
    return folder


def _img(*labels):
    m = np.zeros((10, 10), np.uint16)
    for i, lab in enumerate(labels):
        m[i * 3 : i * 3 + 2, 1:3] = lab
    return m


@pytest.mark.parametrize(
    ("lines", "frames", "match"),
    [
        ("1 0 1 0\n", {0: _img(1), 1: _img()}, r"labels \[1\] are missing from frame 1"),
        ("1 0 0 0\n", {0: _img(1), 1: _img(1)}, "outside their track span"),
        ("1 0 0 0\n", {0: _img(1, 2), 1: _img()}, "not in the track file"),
        ("1 0 0 0\n2 1 1 7\n", {0: _img(1), 1: _img(2)}, "line 2: parent P=7"),
        ("1 0 0 0\n2 0 1 1\n", {0: _img(1, 2), 1: _img(2)}, "line 2: label 2 begins"),
        ("1 0 x 0\n", {0: _img(1)}, "line 1: expected four integers"),
        ("1 0 0\n", {0: _img(1)}, "line 1"),
        ("1 0 0 0\n1 0 0 0\n", {0: _img(1)}, "defined more than once"),
        ("1 0 2 0\n", {0: _img(1), 2: _img(1)}, r"frames \[1\] are missing"),
    ],
)
def test_read_rejects_inconsistent_folders(tmp_path, lines, frames, match):
    folder = _simple_folder(tmp_path, lines, frames)
    with pytest.raises(FormatError, match=match):
        read_ctc(folder)


def test_read_reports_file_and_corrupt_tiff(tmp_path):
    folder = _simple_folder(tmp_path, "1 0 0 0\n", {0: _img(1)})
    (folder / "mask000.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(FormatError, match=r"mask000\.tif"):
        read_ctc(folder)
    with pytest.raises(FormatError, match=r"no res_track\.txt"):
        read_ctc(tmp_path)


def test_read_2d_simple_edges(tmp_path):
    folder = _simple_folder(
        tmp_path, "1 0 1 0\n2 2 2 1\n3 2 2 1\n", {0: _img(1), 1: _img(1), 2: _img(2, 3)}
    )
    g = read_ctc(folder, voxel_size=(1.0, 0.5, 0.5))
    assert g.num_nodes == 4 and g.num_edges == 3
    assert np.allclose(g.nodes["z"], 0.0)
    first = g.ids[(g.t == 0)][0]
    assert np.isclose(g.nodes["y"][g.index_of([first])[0]], 0.25)
    assert g.nodes["volume"].tolist() == [4, 4, 4, 4]
    assert sorted(g.divisions().tolist()) == [int(g.ids[(g.t == 1)][0])]


def test_three_slice_volume_is_stored_as_pages(tmp_path):
    # tifffile would store a (3, Y, X) array as RGB unless told otherwise
    g = TrackGraph.from_positions([0], [[2.0, 10, 10]])
    out = write_ctc(g, tmp_path / "res", shape=(1, 3, 20, 20), voxel_size=VS3, radius=2.0)
    with tifffile.TiffFile(out / "mask000.tif") as tif:
        assert len(tif.pages) == 3
        assert tif.series[0].shape == (3, 20, 20)
    read = read_ctc(out, voxel_size=VS3)
    assert np.allclose(read.positions, [[2.0, 10, 10]], atol=1.0)


def test_bad_covariance_names_node(tmp_path):
    g = TrackGraph.from_positions([0, 0], [[8, 10, 10], [8, 30, 30]], ids=[4, 9])
    cov = np.stack([np.eye(3), np.full((3, 3), np.nan)])
    g.set_node_column("covariance", cov)
    with pytest.raises(InvalidInputError, match=r"nodes \[9\]"):
        write_ctc(g, tmp_path / "res", shape=(1, 9, 40, 40), voxel_size=VS3)


def test_write_never_deletes_existing_files_without_overwrite(tmp_path):
    # before: write_ctc replaced the whole folder, deleting every file a user had in it
    g = _lineage()
    kw = {"shape": (6, 9, 40, 40), "voxel_size": VS3}
    (tmp_path / "results.xlsx").write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match=r"results\.xlsx"):
        write_ctc(g, tmp_path, **kw)
    assert [p.name for p in tmp_path.iterdir()] == ["results.xlsx"]
    out = write_ctc(g, tmp_path / "res", **kw)
    (out / "mask000.tif").write_bytes(b"edited")
    with pytest.raises(OutputExistsError):
        write_ctc(g.subgraph(nodes=[0, 1]), out, **kw)
    assert (out / "mask000.tif").read_bytes() == b"edited"
    # overwrite=True swaps the whole folder in one rename
    write_ctc(g.subgraph(nodes=[0, 1]), out, overwrite=True, **kw)
    assert read_ctc(out, voxel_size=VS3).num_nodes == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "results.xlsx"]
