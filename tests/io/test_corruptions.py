"""Hand-made corruptions, one per class of failure found by fuzzing (issue #12).

Each test builds a small valid input, breaks it the way the class describes and checks
that the reader raises a ``celltrack.errors`` exception naming the file, the place and the
fix (or, where a keyword relaxes the check, that the keyword works).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import tifffile

from celltrack.config import PipelineConfig, load_config
from celltrack.errors import (
    ConfigError,
    FormatError,
    GraphError,
    InvalidInputError,
    OutputExistsError,
)
from celltrack.geometry import check_voxel_size
from celltrack.graph.trackgraph import TrackGraph
from celltrack.io import (
    read_annotations,
    read_ctc,
    read_geff,
    read_image,
    read_trackmate,
    read_tracks,
    write_annotations,
    write_ctc,
    write_geff,
    write_image,
    write_tracks,
)


def _graph(children: int = 2) -> TrackGraph:
    n = 1 + children
    nodes = {"id": np.arange(n) + 1, "t": np.r_[0, np.ones(children, int)],
             "z": np.zeros(n), "y": np.arange(n) * 3.0 + 2, "x": np.full(n, 2.0)}
    edges = {"source": np.ones(children, int), "target": np.arange(children) + 2}
    return TrackGraph(nodes, edges)


# ---------------------------------------------------------------------------- wrong data
def test_missing_zarr_chunk_is_an_error_unless_allowed(tmp_path):
    movie = np.arange(3 * 2 * 4 * 4, dtype=np.uint16).reshape(3, 2, 4, 4)
    movie[1] = 0  # an all-zero frame is still written (write_empty_chunks)
    path = write_image(movie, tmp_path / "m.zarr", voxel_size=(1, 1, 1))
    assert np.array_equal(read_image(path).to_numpy(), movie)
    os.remove(path / "0" / "2.0.0.0")
    with pytest.raises(FormatError, match=r"m\.zarr.*frames \[2\].*allow_missing_chunks=True"):
        read_image(path)
    back = read_image(path, allow_missing_chunks=True).to_numpy()
    assert np.all(back[2] == 0)


def test_missing_geff_chunk_is_an_error_in_a_store_celltrack_wrote(tmp_path):
    path = write_geff(_graph(), tmp_path / "g.geff")
    assert read_geff(path).num_nodes == 3
    os.remove(path / "nodes" / "props" / "z" / "values" / "0")  # an all-zero column
    with pytest.raises(FormatError, match=r"g\.geff.*nodes/props/z/values.*allow_missing"):
        read_geff(path)
    assert read_geff(path, allow_missing_chunks=True).num_nodes == 3


def test_gapped_tiff_folder_frame_numbers(tmp_path):
    for i in (0, 2, 5):
        tifffile.imwrite(tmp_path / f"t{i:03d}.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(FormatError, match=r"jump from 0 \(t000\.tif\) to 2.*rename"):
        read_image(tmp_path, voxel_size=(1, 1, 1))


def test_float_frame_in_uint16_series(tmp_path):
    tifffile.imwrite(tmp_path / "t0.tif", np.zeros((4, 4), np.uint16))
    tifffile.imwrite(tmp_path / "t1.tif", np.zeros((4, 4), np.float32))
    with pytest.raises(FormatError, match=r"t1\.tif.*float32.*uint16"):
        read_image(tmp_path, voxel_size=(1, 1, 1))


@pytest.mark.parametrize("value, match", [
    ("1e30", "outside the 64-bit"), ("9223372036854775808", "outside the 64-bit"),
    ("1.5", "needs an integer"), ("abc", "needs an integer"),
])
def test_ids_beyond_int64_or_fractional_are_refused(tmp_path, value, match):
    path = tmp_path / "s.csv"
    path.write_text(f"id,t,y,x\n{value},0,1,1\n")
    with pytest.raises(FormatError, match=rf"s\.csv, line 2: column 'id'.*{match}"):
        read_annotations(path)


def test_ids_are_exact(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,t,y,x\n9007199254740993,0,1,1\n9007199254740993.0e0,1,1,1\n")
    with pytest.raises(GraphError, match="unique"):  # both are 2**53 + 1, not rounded apart
        read_annotations(path)
    path.write_text("id,t,y,x\n9007199254740993,0,1,1\n")
    assert read_annotations(path).ids.tolist() == [2**53 + 1]
    doc = {"spots": [{"id": 2**63, "t": 0, "y": 1, "x": 1}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"a\.json, item #0: column 'id'"):
        read_annotations(tmp_path / "a.json")
    doc = {"spots": [{"id": 1e30, "t": 0, "y": 1, "x": 1}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="2\\*\\*53"):
        read_annotations(tmp_path / "a.json")


def _xml(spot: str = 'ID="1" FRAME="0"', extra: str = "") -> str:
    return (
        '<TrackMate><Model spatialunits="micron"><AllSpots><SpotsInFrame>'
        f'<Spot {spot} POSITION_X="1" POSITION_Y="1"/>{extra}</SpotsInFrame></AllSpots>'
        "</Model></TrackMate>"
    )


@pytest.mark.parametrize("spot, match", [
    ('ID="1" FRAME="1.5"', "FRAME='1.5'.*whole number"),
    ('ID="1e30" FRAME="0"', "ID='1e30'"),
    ('ID="1" FRAME="0" RADIUS="-2"', "RADIUS"),
    ('ID="1" FRAME="0" QUALITY="high"', "QUALITY"),
])
def test_trackmate_attribute_values(tmp_path, spot, match):
    path = tmp_path / "t.xml"
    path.write_text(_xml(spot))
    with pytest.raises(FormatError, match=rf"t\.xml: .*{match}"):
        read_trackmate(path)


def test_trackmate_negative_calibration(tmp_path):
    path = tmp_path / "t.xml"
    text = _xml().replace("</TrackMate>", '<Settings><ImageData pixelwidth="-1" '
                          'pixelheight="1" voxeldepth="1"/></Settings></TrackMate>')
    path.write_text(text)
    with pytest.raises(FormatError, match=r"t\.xml: <ImageData.*> 0"):
        read_trackmate(path)


# ---------------------------------------------------------------------------- lineage
def test_node_with_three_children_in_every_track_format(tmp_path):
    g = _graph(children=3)
    csv = write_annotations(g, tmp_path / "a.csv")
    with pytest.raises(GraphError, match=r"a\.csv: spots \[1\] have more than two.*lineage=False"):
        read_annotations(csv)
    assert read_annotations(csv, lineage=False).num_edges == 3
    geff = write_geff(g, tmp_path / "a.geff")
    assert read_geff(geff).num_edges == 3  # celltrack wrote it as a non-forest (candidates)
    assert read_tracks(geff).num_edges == 3
    with pytest.raises(GraphError, match="more than two children"):
        read_geff(geff, lineage=True)
    with pytest.raises(GraphError, match="lineage=False"):
        read_tracks(csv)
    assert read_tracks(csv, lineage=False).num_edges == 3


def test_two_parents_in_json(tmp_path):
    spots = ((1, 0), (2, 0), (3, 1))
    doc = {"spots": [{"id": i, "t": t, "y": float(i), "x": 1.0} for i, t in spots],
           "links": [{"source": 1, "target": 3}, {"source": 2, "target": 3}]}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    with pytest.raises(GraphError, match=r"a\.json: spots \[3\] have more than one parent"):
        read_annotations(tmp_path / "a.json")


def test_ctc_track_with_three_daughters(tmp_path):
    (tmp_path / "res_track.txt").write_text("1 0 0 0\n2 1 1 1\n3 1 1 1\n4 1 1 1\n")
    m0 = np.zeros((8, 8), np.uint16)
    m0[1, 1] = 1
    m1 = np.zeros((8, 8), np.uint16)
    m1[1, 1], m1[3, 3], m1[5, 5] = 2, 3, 4
    tifffile.imwrite(tmp_path / "mask000.tif", m0)
    tifffile.imwrite(tmp_path / "mask001.tif", m1)
    with pytest.raises(GraphError, match=r"res_track\.txt: tracks \[1\].*lineage=False"):
        read_ctc(tmp_path)
    assert read_ctc(tmp_path, lineage=False).num_edges == 3


# ---------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("cov", ["nan,0,0,1,0,1", "inf,0,0,1,0,1", "-1,0,0,1,0,1",
                                 "1,2,0,1,0,1"])
def test_bad_covariances_in_csv(tmp_path, cov):
    path = tmp_path / "s.csv"
    path.write_text(f"id,t,y,x,cov_zz,cov_zy,cov_zx,cov_yy,cov_yx,cov_xx\n1,0,1,1,{cov}\n")
    with pytest.raises(FormatError, match=r"s\.csv, line 2"):
        read_annotations(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -4.0])
def test_bad_covariances_in_geff_and_json(tmp_path, bad):
    g = _graph()
    cov = np.stack([np.eye(3)] * 3)
    cov[1, 0, 0] = bad
    nodes = {**g.nodes, "covariance": cov}
    bad_graph = TrackGraph(nodes, dict(g.edges))
    path = write_geff(bad_graph, tmp_path / "c.geff")
    with pytest.raises(FormatError, match=r"c\.geff: nodes \[2\].*positive definite"):
        read_geff(path)
    doc = {"spots": [{"id": 1, "t": 0, "y": 1, "x": 1,
                      "covariance": [[bad, 0, 0], [0, 1, 0], [0, 0, 1]]}]}
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"c\.json, item #0"):
        read_annotations(tmp_path / "c.json")


@pytest.mark.parametrize("vs", [(-1, 1, 1), ("a", 1, 1), "abc", [1, [2], 3], None])
def test_voxel_sizes_negative_or_not_numbers(vs):
    with pytest.raises(InvalidInputError, match="voxel_size"):
        check_voxel_size(vs)


def test_negative_or_text_voxel_size_in_zarr_metadata(tmp_path):
    path = write_image(np.zeros((1, 1, 4, 4), np.uint8), tmp_path / "m.zarr",
                       voxel_size=(1, 1, 1))
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [1, -1, 1, 1]
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(FormatError, match=r"m\.zarr: the OME-Zarr scale.*voxel_size="):
        read_image(path)
    assert read_image(path, voxel_size=(1, 2, 2)).voxel_size.tolist() == [1, 2, 2]
    attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] = "big"
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(FormatError, match=r"coordinateTransformations\[0\]\.scale"):
        read_image(path)


# ---------------------------------------------------------------------------- hangs
def test_ctc_track_file_claiming_a_billion_frames_is_fast(tmp_path):
    (tmp_path / "res_track.txt").write_text("1 0 1000000000 0")  # 17 bytes
    tifffile.imwrite(tmp_path / "mask000.tif", np.ones((4, 4), np.uint16))
    start = time.perf_counter()
    with pytest.raises(FormatError, match=r"frames \[1, 2, .*1000000000 in all"):
        read_ctc(tmp_path)
    assert time.perf_counter() - start < 1.0


def test_yaml_alias_bomb_fails_fast(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 500
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb\.yaml.*expands to more than"):
        load_config(path, PipelineConfig)
    assert time.perf_counter() - start < 1.0


# ---------------------------------------------------------------------------- raw exceptions
@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf"])
def test_config_inf_nan_values(tmp_path, value):
    key = next(name for name, f in PipelineConfig.model_fields.items()
               if f.annotation is float) if any(
        f.annotation is float for f in PipelineConfig.model_fields.values()) else None
    path = tmp_path / "c.yaml"
    if key is None:
        from celltrack.config import EvaluationConfig

        path.write_text(f"max_distance_um: {value}\n")
        with pytest.raises(ConfigError, match=r"c\.yaml.*max_distance_um"):
            load_config(path, EvaluationConfig)
    else:
        path.write_text(f"{key}: {value}\n")
        with pytest.raises(ConfigError, match=key):
            load_config(path, PipelineConfig)


def test_config_base_refuses_inf_nan_in_every_float_field():
    from celltrack.config import Config

    assert Config.model_config.get("allow_inf_nan") is False


@pytest.mark.parametrize("suffix, text", [
    (".yaml", "[" * 400 + "]" * 400), (".json", "[" * 100000 + "]" * 100000),
    (".toml", "a = " + "[" * 5000 + "]" * 5000),
])
def test_deeply_nested_configs(tmp_path, suffix, text):
    path = tmp_path / f"deep{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"deep\."):
        load_config(path, PipelineConfig)


def test_non_utf8_config_and_annotations(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"seed: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*not UTF-8.*save it as UTF-8"):
        load_config(tmp_path / "c.yaml", PipelineConfig)
    (tmp_path / "s.csv").write_bytes(b"id,t,y,x\n1,0,\xff,1\n")
    with pytest.raises(FormatError, match=r"s\.csv: not UTF-8"):
        read_annotations(tmp_path / "s.csv")
    (tmp_path / "res_track.txt").write_bytes(b"1 0 0 \xff\n")
    with pytest.raises(FormatError, match=r"res_track\.txt.*not text"):
        read_ctc(tmp_path)


def test_corrupt_zarray_and_zero_chunks(tmp_path):
    path = write_image(np.zeros((2, 1, 4, 4), np.uint8), tmp_path / "p.zarr",
                       voxel_size=(1, 1, 1), ome=False)
    meta = json.loads((path / ".zarray").read_text())
    (path / ".zarray").write_text(json.dumps({**meta, "chunks": [0, 1, 4, 4]}))
    with pytest.raises(FormatError, match=r"p\.zarr.*chunk.*>= 1"):
        read_image(path)
    (path / ".zarray").write_text("{not json")
    with pytest.raises(FormatError, match=r"p\.zarr: unreadable Zarr"):
        read_image(path)


@pytest.mark.parametrize("multiscales, where", [
    ("oops", "multiscales'"), ([], "multiscales'"), ([1], r"multiscales\[0\]'"),
    ([{"datasets": [{"path": 3}]}], r"datasets\[0\]\.path"),
    ([{"datasets": [{"path": "0"}], "axes": [{"name": "q"}]}], r"axes\[0\]\.name"),
])
def test_corrupt_ome_multiscales(tmp_path, multiscales, where):
    path = write_image(np.zeros((1, 1, 4, 4), np.uint8), tmp_path / "o.zarr",
                       voxel_size=(1, 1, 1))
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["multiscales"] = multiscales
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(FormatError, match=rf"o\.zarr: OME-Zarr metadata '.*{where}.*(key|axes)="):
        read_image(path)


@pytest.mark.parametrize("body, match", [
    ("id,t,y,x,score\n1,0,1,1,high\n", "line 2: column 'score' needs a number"),
    ("id,t,y,x\n1,0,1,\"" + "x" * 200_000 + "\"\n", "line 2: malformed CSV.*per cell"),
    ("t,y,x,parent_id\n0,1,1,\n", r"columns \['id'\] are missing"),
    ("id,t,y,x,parent_id\n1,0,1,1,\n2,1,1,1,one\n", "line 3: column 'parent_id'"),
    ("id,t,y,x,\n1,0,1,1,5\n", "column 5 has no name"),
])
def test_csv_problems(tmp_path, body, match):
    path = tmp_path / "s.csv"
    path.write_text(body)
    with pytest.raises(FormatError, match=rf"s\.csv.*{match}"):
        read_annotations(path)


def test_csv_trailing_comma_is_fine(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("id,t,y,x,\n1,0,1,1,\n")
    assert read_annotations(path).num_nodes == 1


@pytest.mark.parametrize("doc, match", [
    ({"spots": [], "attrs": [1, 2]}, "'attrs' must be an object"),
    ({"spots": [], "links": "x"}, "'links' must be a list"),
    ({"spots": [{"id": 1, "t": 0, "y": 1, "x": 1, "covariance": "big"}]}, "3x3 list"),
    ([1, 2], "expected an object"),
])
def test_json_problems(tmp_path, doc, match):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=rf"a\.json.*{match}"):
        read_annotations(path)


def test_deeply_nested_json_annotations(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"spots": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(FormatError, match=r"a\.json: JSON nested too deeply"):
        read_annotations(path)


@pytest.mark.parametrize("name", ["a/b", "", ".zattrs", "__x", "a\x00b", " pad"])
def test_column_names_that_are_not_store_keys(tmp_path, name):
    g = _graph()
    g.set_node_column(name, np.zeros(3))
    with pytest.raises(InvalidInputError, match=r"cannot be a GEFF/Zarr key.*rename"):
        write_geff(g, tmp_path / "k.geff")
    assert not (tmp_path / "k.geff").exists()


def test_geff_ids_beyond_int64(tmp_path):
    import zarr

    path = write_geff(_graph(), tmp_path / "g.geff")
    ids = zarr.open_array(str(path / "nodes" / "ids"), mode="r+")
    ids[0] = np.uint64(2**63 + 5)
    with pytest.raises(FormatError, match=r"g\.geff: GEFF node ids .* int64"):
        read_geff(path)


# ---------------------------------------------------------------------------- writers
def test_writers_refuse_to_replace_without_overwrite(tmp_path):
    g = _graph()
    movie = np.zeros((1, 1, 4, 4), np.uint8)
    write_image(movie, tmp_path / "m.zarr", voxel_size=(1, 1, 1))
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_image(movie, tmp_path / "m.zarr", voxel_size=(1, 1, 1))
    write_image(movie + 1, tmp_path / "m.zarr", voxel_size=(1, 1, 1), overwrite=True)
    assert read_image(tmp_path / "m.zarr")[0].max() == 1
    for suffix in (".csv", ".json"):
        write_annotations(g, tmp_path / f"a{suffix}")
        with pytest.raises(OutputExistsError):
            write_annotations(g, tmp_path / f"a{suffix}")
        write_annotations(g, tmp_path / f"a{suffix}", overwrite=True)
    (tmp_path / "b_links.csv").write_text("keep me")
    with pytest.raises(OutputExistsError, match=r"b_links\.csv"):
        write_annotations(g, tmp_path / "b.csv")
    assert (tmp_path / "b_links.csv").read_text() == "keep me"
    write_geff(g, tmp_path / "g.geff")
    with pytest.raises(OutputExistsError):
        write_geff(g, tmp_path / "g.geff")
    ctc = write_ctc(g, tmp_path / "ctc", shape=(2, 1, 16, 16), voxel_size=(1, 1, 1), radius=1.0)
    with pytest.raises(OutputExistsError):
        write_ctc(g, ctc, shape=(2, 1, 16, 16), voxel_size=(1, 1, 1), radius=1.0)
    for fmt, target in (("geff", "g.geff"), ("csv", "a.csv"), ("json", "a.json")):
        with pytest.raises(OutputExistsError):
            write_tracks(g, tmp_path / target, fmt)


def test_negative_tiff_spacing_is_a_metadata_error(tmp_path):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 1, 4, 4), np.uint8), imagej=True,
                     resolution=(2.0, 2.0), metadata={"axes": "TZCYX", "spacing": -1.5,
                                                      "unit": "um"})
    with pytest.raises(FormatError, match=r"m\.tif: the resolution / spacing.*voxel_size="):
        read_image(path)
    assert read_image(path, voxel_size=(1, 1, 1)).shape == (2, 3, 4, 4)


def test_truncated_blosc_chunks_are_errors_not_garbage(tmp_path):
    rng = np.random.default_rng(0)
    movie = rng.integers(0, 60000, (2, 1, 8, 8)).astype(np.uint16)  # incompressible
    path = write_image(movie, tmp_path / "m.zarr", voxel_size=(1, 1, 1))
    chunk = path / "0" / "1.0.0.0"
    chunk.write_bytes(chunk.read_bytes()[:48])
    series = read_image(path)
    assert np.array_equal(series[0], movie[0])
    with pytest.raises(FormatError, match=r"m\.zarr: frame 1: chunk 1\.0\.0\.0 holds 48 bytes"):
        series[1]
    geff = write_geff(_graph(), tmp_path / "g.geff")
    values = geff / "nodes" / "props" / "y" / "values" / "0"
    values.write_bytes(values.read_bytes()[:20])
    with pytest.raises(FormatError, match=r"g\.geff: array nodes/props/y/values: chunk 0"):
        read_geff(geff)


def test_ctc_values_beyond_int64(tmp_path):
    (tmp_path / "res_track.txt").write_text(f"1 0 0 {2**63}\n")
    with pytest.raises(FormatError, match=r"res_track\.txt, line 1: parent P="):
        read_ctc(tmp_path)
    (tmp_path / "res_track.txt").write_text(f"1 0 {2**63} 0\n")
    with pytest.raises(FormatError, match=r"res_track\.txt, line 1: frames"):
        read_ctc(tmp_path)


# ---------------------------------------------------------------------------- security
_SPOT = '<Spot ID="1" FRAME="0" POSITION_X="1" POSITION_Y="1" name="{}"/>'


def test_xml_entity_bomb_and_external_entities_are_refused(tmp_path):
    ents = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    for name, dtd, ref in (("bomb", ents, "&j;"),
                           ("xxe", '<!ENTITY e SYSTEM "file:///etc/passwd">', "&e;")):
        path = tmp_path / f"{name}.xml"
        path.write_text(f'<?xml version="1.0"?><!DOCTYPE r [{dtd}]><TrackMate><Model>'
                        f"<AllSpots><SpotsInFrame>{_SPOT.format(ref)}</SpotsInFrame></AllSpots>"
                        "</Model></TrackMate>")
        start = time.perf_counter()
        with pytest.raises(FormatError, match=rf"{name}\.xml: not well-formed XML"):
            read_trackmate(path)
        assert time.perf_counter() - start < 1.0


def test_geff_metadata_declaring_terabytes_is_refused_before_allocating(tmp_path):
    path = write_geff(_graph(), tmp_path / "g.geff")
    meta_file = path / "nodes" / "props" / "y" / "values" / ".zarray"
    meta = json.loads(meta_file.read_text())
    meta["shape"], meta["chunks"] = [10**12], [10**12]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(FormatError, match=r"g\.geff: the GEFF arrays declare \d+ bytes"):
        read_geff(path)
