import contextlib
import io

import numpy as np
import pytest
import tifffile

from celltrack.errors import FormatError, ShapeError
from celltrack.eval import evaluate_ctc, match_masks
from celltrack.eval._synthetic import perturb
from celltrack.graph import TrackGraph
from celltrack.io.ctc import read_ctc, write_ctc
from celltrack.synth import SynthConfig, make_embryo

KEYS = ("NS", "FN", "FP", "ED", "EA", "EC")


def _merge_pairs(pred: TrackGraph, rng: np.random.Generator, n_pairs: int) -> TrackGraph:
    """Replace close pairs of nodes in one frame by a single node at their midpoint."""
    keep = np.ones(pred.num_nodes, bool)
    pos = pred.positions.copy()
    src, tgt = (np.asarray(pred.edges[c]) for c in ("source", "target"))
    remap = {}
    done = 0
    for t in rng.permutation(pred.frames).tolist():
        rows = np.flatnonzero((pred.t == t) & keep)
        if rows.size < 2:
            continue
        d = np.linalg.norm(pos[rows, None] - pos[None, rows], axis=-1) + np.eye(rows.size) * 1e9
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] > 12:
            continue
        a, b = rows[i], rows[j]
        pos[a] = (pos[a] + pos[b]) / 2
        keep[b] = False
        remap[int(pred.ids[b])] = int(pred.ids[a])
        done += 1
        if done == n_pairs:
            break
    # edges of the removed node move to the merged one (first come, one parent kept)
    s = np.array([remap.get(v, v) for v in src.tolist()], np.int64)
    g = np.array([remap.get(v, v) for v in tgt.tolist()], np.int64)
    kept, has_parent = [], set()
    for a, b in zip(s.tolist(), g.tolist()):
        if b not in has_parent:
            kept.append((a, b))
            has_parent.add(b)
    e = np.array(kept, np.int64).reshape(-1, 2)
    nodes = {c: np.asarray(pred.nodes[c])[keep] for c in ("id", "t")}
    nodes.update(z=pos[keep, 0], y=pos[keep, 1], x=pos[keep, 2])
    return TrackGraph(nodes, {"source": e[:, 0], "target": e[:, 1]})


def _inside(graph: TrackGraph, shape, voxel_size) -> TrackGraph:
    nodes = dict(graph.nodes)
    for c, n, v in zip("zyx", shape[1:], voxel_size):
        nodes[c] = np.clip(np.asarray(nodes[c]), 0, (n - 1) * v)
    return TrackGraph(nodes, dict(graph.edges))


def _write_case(tmp_path, seed):
    data = make_embryo(SynthConfig.tiny(seed=seed, n_frames=8))
    gt = data.gt
    pred = perturb(gt, jitter_um=0.8, p_miss=0.08, p_extra=0.08, p_drop_edge=0.06,
                   p_swap=0.08, p_false_div=0.06, p_miss_div=0.3, p_shift_div=0.3,
                   seed=seed + 50)
    pred = _merge_pairs(pred, np.random.default_rng(seed), 3)
    pred = _inside(pred, data.shape, data.voxel_size)
    gt_dir = tmp_path / f"s{seed}" / "01_GT"
    res_dir = tmp_path / f"s{seed}" / "01_RES"
    write_ctc(gt, gt_dir / "TRA", shape=data.shape, voxel_size=data.voxel_size, radius=2.0,
              kind="gt")
    write_ctc(pred, res_dir, shape=data.shape, voxel_size=data.voxel_size, radius=6.0,
              kind="res")
    return gt_dir, res_dir


def _ctcmetrics(gt_dir, res_dir):
    from ctc_metrics.scripts.evaluate import evaluate_sequence

    with contextlib.redirect_stdout(io.StringIO()):
        return evaluate_sequence(
            str(res_dir), str(gt_dir), metrics=["DET", "TRA", "LNK"], threads=1
        )


def test_agrees_with_py_ctcmetrics(tmp_path):
    pytest.importorskip("ctc_metrics")
    seen = dict.fromkeys(KEYS, 0)
    for seed in (1, 2, 3):
        gt_dir, res_dir = _write_case(tmp_path, seed)
        ours = evaluate_ctc(gt_dir, res_dir)
        ref = _ctcmetrics(gt_dir, res_dir)
        a = ours.aogm
        mine = dict(zip(KEYS, (a.ns, a.fn_nodes, a.fp_nodes, a.ed, a.ea, a.ec)))
        for k in KEYS:
            assert mine[k] == ref[f"AOGM_{k}"], (seed, k)
            seen[k] += mine[k]
        assert ours.det == pytest.approx(ref["DET"], abs=1e-12)
        assert ours.tra == pytest.approx(ref["TRA"], abs=1e-12)
        assert ours.lnk == pytest.approx(ref["LNK"], abs=1e-12)
        assert a.aogm == pytest.approx(ref["AOGM"]) and a.aogm0 == pytest.approx(ref["AOGM_0"])
    # every error type occurred in the cases
    assert all(v > 0 for v in seen.values()), seen
    # the TRA subfolder may be given directly
    assert evaluate_ctc(gt_dir / "TRA", res_dir).tra == ours.tra


def test_perfect_result_scores_one(tmp_path):
    data = make_embryo(SynthConfig.tiny(seed=4, n_frames=5))
    write_ctc(data.gt, tmp_path / "GT" / "TRA", shape=data.shape, voxel_size=data.voxel_size,
              radius=2.0, kind="gt")
    write_ctc(data.gt, tmp_path / "RES", shape=data.shape, voxel_size=data.voxel_size,
              kind="res")
    s = evaluate_ctc(tmp_path / "GT", tmp_path / "RES")
    assert (s.det, s.tra, s.lnk) == (1.0, 1.0, 1.0)
    assert s.num_gt_nodes == data.gt.num_nodes and s.num_gt_edges == data.gt.num_edges
    # the same folders read as graphs by celltrack.io give the same nodes and links
    for folder, n_edges in ((tmp_path / "GT", s.num_gt_edges), (tmp_path / "RES",
                                                                 s.num_pred_edges)):
        graph = read_ctc(folder, voxel_size=data.voxel_size)
        assert (graph.num_nodes, graph.num_edges) == (data.gt.num_nodes, n_edges)
    assert s.to_dict()["parameters"]["source"] == "ctc"


def test_mask_matching_rule():
    ref = np.zeros((1, 4, 8), np.uint16)
    ref[0, 0, 0:4] = 1  # marker 1: 4 voxels
    ref[0, 2, 0:4] = 2  # marker 2: 4 voxels
    ref[0, 3, 5:7] = 3  # marker 3: 2 voxels
    comp = np.zeros_like(ref)
    comp[0, 0, 0:2] = 7  # exactly half of marker 1: no match
    comp[0, 2, 0:3] = 8  # 3/4 of marker 2: match
    comp[0, 3, 4:8] = 8  # all of marker 3 as well: object 8 matches two markers
    rl, cl, mr, mc = match_masks(ref, comp)
    assert rl.tolist() == [1, 2, 3] and cl.tolist() == [7, 8]
    assert sorted(zip(mr.tolist(), mc.tolist())) == [(2, 8), (3, 8)]
    with pytest.raises(ShapeError):
        match_masks(ref, comp[:, :3])


def _tiny_folders(tmp_path):
    gt = TrackGraph({"id": [1, 2], "t": [0, 1], "z": [0, 0], "y": [4, 4], "x": [4, 5]},
                    {"source": [1], "target": [2]})
    kw = {"shape": (2, 1, 10, 10), "voxel_size": (1, 1, 1), "radius": 1.5}
    write_ctc(gt, tmp_path / "GT" / "TRA", kind="gt", **kw)
    write_ctc(gt, tmp_path / "RES", kind="res", **kw)
    return tmp_path / "GT", tmp_path / "RES"


def test_bad_folders_raise(tmp_path):
    gt_dir, res_dir = _tiny_folders(tmp_path)
    assert evaluate_ctc(gt_dir, res_dir).tra == 1.0
    with pytest.raises(FormatError, match="does not exist"):
        evaluate_ctc(tmp_path / "nope", res_dir)
    with pytest.raises(FormatError, match=r"man_track\.txt"):
        evaluate_ctc(res_dir, res_dir)
    # a label painted in a mask but absent from res_track.txt
    mask = tifffile.imread(res_dir / "mask001.tif")
    bad = mask.copy()
    bad[0, 0] = 9
    tifffile.imwrite(res_dir / "mask001.tif", bad)
    with pytest.raises(FormatError, match=r"9 \(not in the track file\)"):
        evaluate_ctc(gt_dir, res_dir)
    tifffile.imwrite(res_dir / "mask001.tif", mask)
    # a parent that ends after its child begins
    (res_dir / "res_track.txt").write_text("1 0 1 0\n2 1 1 1\n")
    with pytest.raises(FormatError, match="not after its parent"):
        evaluate_ctc(gt_dir, res_dir)
    (res_dir / "res_track.txt").write_text("1 0 1 0\n")
    # mismatched contents: a result frame missing, then a wrong shape
    (res_dir / "mask001.tif").unlink()
    with pytest.raises(FormatError, match="different frames"):
        evaluate_ctc(gt_dir, res_dir)
    tifffile.imwrite(res_dir / "mask001.tif", mask[:, :5])
    with pytest.raises(ShapeError, match="shape"):
        evaluate_ctc(gt_dir, res_dir)
    (res_dir / "res_track.txt").write_text("1 0 x 0\n")
    with pytest.raises(FormatError, match="four integers"):
        evaluate_ctc(gt_dir, res_dir)


def test_folders_are_parsed_by_io_ctc_only():
    import celltrack.eval
    import celltrack.eval.ctc_folder as ctc_folder
    from celltrack.io import ctc_files

    assert celltrack.eval.read_track_file is ctc_files.read_track_file
    for name in ("find_track_file", "find_mask_files", "read_mask", "ctc_edges"):
        assert getattr(ctc_folder, name) is getattr(ctc_files, name)


def test_gt_track_files_are_validated_like_results(tmp_path):
    gt_dir, res_dir = _tiny_folders(tmp_path)
    (gt_dir / "TRA" / "man_track.txt").write_text("1 0 1 0\n1 0 1 0\n")
    with pytest.raises(FormatError, match=r"man_track\.txt, lines \[1, 2\].*more than once"):
        evaluate_ctc(gt_dir, res_dir)
