"""Annotation CSV/JSON round trips, layouts, unit conversion and error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from celltrack.errors import FormatError, GraphError, InvalidInputError
from celltrack.geometry import covariance_from_radii
from celltrack.graph.trackgraph import TrackGraph
from celltrack.io.annotations import links_path, read_annotations, write_annotations


def _annotated() -> TrackGraph:
    rot = np.array([[1.0, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    cov = covariance_from_radii(np.array([[2.0, 3.0, 4.0]] * 4), np.stack([rot] * 4))
    nodes = {
        "id": np.array([10, 11, 12, 13]),
        "t": np.array([0, 1, 2, 2]),
        "z": np.array([1.5, 2.0, 2.5, 3.0]),
        "y": np.array([10.25, 11.0, 12.0, 14.0]),
        "x": np.array([5.0, 6.0, 7.125, 9.0]),
        "covariance": cov,
        "tag": np.array(["tp", "fn", "unlabeled", "fp"]),
        "score": np.array([0.9, np.nan, 0.5, 0.1]),
        "lineage_name": np.array(["AB", "AB", "ABa", "ABp"]),
    }
    edges = {
        "source": np.array([10, 11, 11]),
        "target": np.array([11, 12, 13]),
        "approved": np.array([True, False, True]),
    }
    return TrackGraph(nodes, edges)


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_roundtrip(tmp_path, suffix):
    g = _annotated()
    out = write_annotations(g, tmp_path / f"ann{suffix}")
    if suffix == ".csv":
        assert links_path(out).is_file()
    back = read_annotations(out)
    assert back.equals(g, atol=1e-9)
    assert back.edges["approved"].dtype == bool
    assert back.nodes["tag"].tolist() == ["tp", "fn", "unlabeled", "fp"]


def test_csv_radius_parent_id_and_2d(tmp_path):
    path = tmp_path / "spots.csv"
    path.write_text("id,t,y,x,radius,tag,parent_id\n1,0,5,5,2,tp,\n2,1,6,5,2,,1\n3,2,7,5,3,fn,2\n")
    g = read_annotations(path)
    assert g.ids.tolist() == [1, 2, 3]
    assert np.allclose(g.nodes["z"], 0.0)
    assert np.allclose(g.nodes["covariance"][2], np.eye(3) * 9.0)
    assert g.nodes["tag"].tolist() == ["tp", "unlabeled", "fn"]
    assert list(zip(g.edges["source"].tolist(), g.edges["target"].tolist())) == [(1, 2), (2, 3)]
    assert g.edges["approved"].all()  # links drawn by a person


def test_csv_six_covariance_entries_and_voxel_units(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(
        "id,t,z,y,x,cov_zz,cov_zy,cov_zx,cov_yy,cov_yx,cov_xx,score\n"
        "1,0,2,10,20,1,0,0,4,0.5,4,0.7\n"
    )
    (tmp_path / "s_links.csv").write_text("source,target,approved\n")
    with pytest.raises(InvalidInputError, match="voxel_size"):
        read_annotations(path, units="voxel")
    g = read_annotations(path, units="voxel", voxel_size=(2.0, 0.5, 0.5))
    assert np.allclose(g.positions, [[4.0, 5.0, 10.0]])
    vs = np.array([2, 0.5, 0.5])
    expected = np.array([[1, 0, 0], [0, 4, 0.5], [0, 0.5, 4]]) * np.outer(vs, vs)
    assert np.allclose(g.nodes["covariance"][0], expected)
    assert g.attrs["voxel_size"] == [2.0, 0.5, 0.5]
    assert g.num_edges == 0


def test_json_links_are_oriented_forward(tmp_path):
    path = tmp_path / "a.json"
    doc = {
        "spots": [
            {"id": 1, "t": 3, "z": 0, "y": 0, "x": 0, "radius": 1.5},
            {"id": 2, "t": 4, "z": 0, "y": 1, "x": 0, "radius": 1.5, "tag": "TP"},
        ],
        "links": [{"source": 2, "target": 1, "approved": True}],
    }
    path.write_text(json.dumps(doc))
    g = read_annotations(path)
    assert (g.edges["source"].tolist(), g.edges["target"].tolist()) == ([1], [2])
    assert g.nodes["tag"].tolist() == ["unlabeled", "tp"]


def test_unknown_tag_lists_allowed(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,t,z,y,x,tag\n1,0,0,0,0,tp\n2,0,0,1,0,maybe\n")
    with pytest.raises(GraphError, match=r"line 3.*'maybe'.*allowed tags are \['tp', 'fp'"):
        read_annotations(path)


@pytest.mark.parametrize(
    ("text", "links", "error", "match"),
    [
        ("id,t,y\n1,0,0\n", None, FormatError, r"\['x'\] are missing"),
        ("id,t,z,y,x\n1,0,0,a,0\n", None, FormatError, "line 2: column 'y' needs a number"),
        ("id,t,z,y,x\n1,0.5,0,0,0\n", None, FormatError, "column 't' needs an integer"),
        ("id,t,z,y,x\n1,0,0,0\n", None, FormatError, "line 2: 4 fields"),
        ("id,t,z,y,x,cov_zz\n1,0,0,0,0,1\n", None, FormatError, "incomplete"),
        ("id,t,z,y,x,radius\n1,0,0,0,0,-1\n", None, FormatError, "radius must be > 0"),
        ("id,t,z,y,x\n1,0,0,0,0\n1,1,0,0,0\n", None, GraphError, "unique"),
        ("id,t,z,y,x\n1,0,0,0,0\n2,1,0,0,0\n", "source,target\n1,5\n", GraphError, r"\[5\]"),
        ("id,t,z,y,x\n1,0,0,0,0\n2,0,0,0,0\n", "source,target\n1,2\n", GraphError, "same frame"),
        ("id,t,z,y,x\n1,0,0,0,0\n2,1,0,0,0\n", "source,target,approved\n1,2,perhaps\n",
         FormatError, "true/false"),
    ],
)
def test_csv_errors(tmp_path, text, links, error, match):
    path = tmp_path / "s.csv"
    path.write_text(text)
    if links is not None:
        (tmp_path / "s_links.csv").write_text(links)
    with pytest.raises(error, match=match):
        read_annotations(path)


def test_other_errors(tmp_path):
    with pytest.raises(FormatError, match="no such"):
        read_annotations(tmp_path / "none.csv")
    bad = tmp_path / "a.json"
    bad.write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        read_annotations(bad)
    other = tmp_path / "a.txt"
    other.write_text("x")
    with pytest.raises(FormatError, match="unknown annotation format"):
        read_annotations(other)
    with pytest.raises(InvalidInputError):
        write_annotations(_annotated(), tmp_path / "a.txt")
    with pytest.raises(InvalidInputError):
        read_annotations(bad, units="pixels")


def test_predictions_saved_stay_unapproved(tmp_path):
    g = TrackGraph(
        {"id": [0, 1], "t": [0, 1], "z": [0, 0], "y": [0, 1], "x": [0, 0]},
        {"source": [0], "target": [1]},
    )
    back = read_annotations(write_annotations(g, tmp_path / "p.csv"))
    assert back.edges["approved"].tolist() == [False]


def test_json_is_standard_and_keeps_attrs(tmp_path):
    g = _annotated()
    g.attrs.update({"voxel_size": np.array([2.0, 0.5, 0.5]), "note": "x", "bad": float("nan")})
    out = write_annotations(g, tmp_path / "a.json")
    text = out.read_text()
    assert "NaN" not in text
    doc = json.loads(text)
    assert doc["spots"][1]["score"] is None
    back = read_annotations(out)
    assert np.isnan(back.nodes["score"][1])
    assert back.attrs == {"voxel_size": [2.0, 0.5, 0.5], "note": "x", "bad": None}
