"""The napari/TrackMate track table: column order, sorting, track and lineage ids, round trip."""

import numpy as np
import pytest

from celltrack.errors import InvalidInputError, OutputExistsError
from celltrack.graph import TrackGraph
from celltrack.io import read_tracks
from celltrack.io.track_table import (
    TRACK_TABLE_COLUMNS,
    napari_graph,
    track_table,
    write_track_table,
)


def _two_lineages() -> TrackGraph:
    """Lineage A: 10 → 11 → {12 → 14, 13}; lineage B: 20 → 21 (starts at t=1).

    Node rows are deliberately out of time order.
    """
    ids = [14, 21, 10, 13, 11, 20, 12]
    t = [3, 2, 0, 2, 1, 1, 2]
    pos = np.arange(21, dtype=float).reshape(7, 3)
    g = TrackGraph.from_positions(t, pos, ids=ids, score=np.linspace(0, 1, 7))
    return g.add_edges({"source": [10, 11, 11, 12, 20], "target": [11, 12, 13, 14, 21]})


def test_columns_order_and_sorting():
    table = track_table(_two_lineages())
    assert tuple(table)[: len(TRACK_TABLE_COLUMNS)] == TRACK_TABLE_COLUMNS
    assert list(table)[len(TRACK_TABLE_COLUMNS) :] == ["score"]
    # tracks numbered by first frame: A's root track 1 (t 0-1), B 2 (t 1-2), daughters 3, 4
    assert table["id"].tolist() == [10, 11, 20, 21, 12, 14, 13]
    assert table["track_id"].tolist() == [1, 1, 2, 2, 3, 3, 4]
    assert table["t"].tolist() == [0, 1, 1, 2, 2, 3, 2]
    assert table["parent_track_id"].tolist() == [-1, -1, -1, -1, 1, 1, 1]
    assert table["parent_id"].tolist() == [-1, 10, -1, 20, 11, 12, 11]
    assert table["lineage_id"].tolist() == [1, 1, 2, 2, 1, 1, 1]
    # positions and extra columns travel with their node
    g = _two_lineages()
    rows = g.index_of(table["id"])
    np.testing.assert_array_equal(table["x"], g.nodes["x"][rows])
    np.testing.assert_array_equal(table["score"], g.nodes["score"][rows])
    # sorted by track, then time
    key = np.stack([table["track_id"], table["t"]], axis=1)
    assert np.all(np.diff(key[:, 0]) >= 0)
    same = np.diff(key[:, 0]) == 0
    assert np.all(np.diff(key[:, 1])[same] > 0)


def test_napari_graph():
    assert napari_graph(track_table(_two_lineages())) == {3: [1], 4: [1]}
    with pytest.raises(InvalidInputError, match="track_id"):
        napari_graph({"t": np.zeros(1)})


def test_empty_graph_and_covariance():
    table = track_table(TrackGraph.from_positions([], np.zeros((0, 3))))
    assert all(col.size == 0 for col in table.values())
    cov = np.tile(np.diag([4.0, 1.0, 2.0]), (2, 1, 1))
    g = TrackGraph.from_positions([0, 1], np.zeros((2, 3)), covariance=cov)
    table = track_table(g)
    assert table["cov_zz"].tolist() == [4.0, 4.0] and table["cov_xx"].tolist() == [2.0, 2.0]
    assert "covariance" not in table


def test_write_reads_back_and_refuses_to_overwrite(tmp_path):
    g = _two_lineages()
    path = write_track_table(g, tmp_path / "tracks.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert header[:6] == ["track_id", "t", "z", "y", "x", "parent_track_id"]
    back = read_tracks(path)
    assert back.num_nodes == g.num_nodes and back.num_edges == g.num_edges
    assert sorted(zip(back.edges["source"].tolist(), back.edges["target"].tolist())) == sorted(
        zip(g.edges["source"].tolist(), g.edges["target"].tolist())
    )
    rows = back.index_of(g.ids)
    np.testing.assert_allclose(back.positions[rows], g.positions)
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_track_table(g, path)
    write_track_table(g.subgraph(nodes=g.t < 2), path, overwrite=True)
    assert read_tracks(path).num_nodes == 3
    with pytest.raises(InvalidInputError, match=r"\.csv"):
        write_track_table(g, tmp_path / "tracks.txt")
    with pytest.raises(InvalidInputError, match="TrackGraph"):
        track_table({"id": [1]})
