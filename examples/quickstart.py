"""Quickstart: human-in-the-loop tracking of a synthetic embryo, ELEPHANT style.

Usage::

    python examples/quickstart.py [--out DIR] [--frames 8] [--rounds 2] [--tiny]

What it does (a simulated person stands in for you; with real data you would click):

1. make a synthetic 3D+t embryo (movie + true lineage) and start a :class:`Project`;
2. annotate 5 nuclei in frame 0 (tag ``fn``) and train the detector (prior + update);
3. proofreading rounds on frame 0: predict, accept the right spots (``tp``), reject the
   wrong ones (``fp``), add the missed nuclei (``fn``), update the detector;
4. predict every frame, link with ELEPHANT's flow-corrected nearest neighbour, approve a
   few correct links, train the flow model on them and link again with the flow;
5. score the tracks against the truth (CTC DET/TRA/LNK, divisions) and export GEFF.

The project folder ``DIR/embryo.ctproj`` can be reopened with ``Project.open``: every
edit was saved as it happened. ``--tiny`` (a 3-frame embryo, one round, short training:
about 20 s of CPU) still reaches DET ≥ 0.8; the default takes a few minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from celltrack.eval import evaluate
from celltrack.graph import TrackGraph
from celltrack.project import Project, ProjectConfig
from celltrack.synth import SynthConfig, make_embryo, sample_annotations

MATCH_UM = 3.0  # a spot within this distance of a true nucleus counts as that nucleus


def tiny_config() -> ProjectConfig:
    """The CPU presets with a short prior and 30-step updates (≈ 20 s of CPU in all).

    Still a real result: on the tiny embryo it finds ≥ 80 % of the nuclei in every frame
    (DET ≥ 0.8, checked by ``tests/test_examples.py``). The flow model gets a token
    training (2 epochs): the tiny embryo barely moves, so linking does not need it.
    """
    base = ProjectConfig()
    det = base.detection.model_copy(
        update={
            "train": base.detection.train.model_copy(
                update={"incremental_steps": 30, "prior_crops": 4}
            )
        }
    )
    flow = base.motion.model_copy(
        update={"train": base.motion.train.model_copy(
            update={"epochs": 2, "crops_per_frame": 2, "batch_size": 2, "crop_shape": (8, 32, 32)}
        )}
    )
    return base.model_copy(update={"detection": det, "motion": flow})


def simulated_proofreading(project: Project, gt: TrackGraph, t: int) -> dict[str, int]:
    """Accept spots on true nuclei, reject the others, add the nuclei nobody found."""
    spots = project.spots(t)
    truth = gt.subgraph(nodes=gt.t == t)
    tags = np.asarray(spots.nodes["tag"])
    todo = spots.subgraph(nodes=tags == "unlabeled")
    dist, _ = cKDTree(truth.positions).query(todo.positions) if todo.num_nodes else ([], [])
    good = np.asarray(dist) < MATCH_UM
    with project.batch():  # one save for the whole round
        if good.any():
            project.proofread(todo.ids[good], "accept")
        if (~good).any():
            project.proofread(todo.ids[~good], "reject")
        nuclei = spots.subgraph(nodes=tags != "fp")
        found = (
            cKDTree(nuclei.positions).query(truth.positions)[0] < MATCH_UM
            if nuclei.num_nodes
            else np.zeros(truth.num_nodes, bool)
        )
        missed = truth.subgraph(nodes=~found)
        if missed.num_nodes:
            project.add_spots(t, missed.positions, covariance=missed.nodes["covariance"])
    return {"accepted": int(good.sum()), "rejected": int((~good).sum()),
            "added": int(missed.num_nodes)}


def correct_links(project: Project, gt: TrackGraph, limit: int) -> list[tuple[int, int]]:
    """Up to ``limit`` links of the project that join the right nuclei (checked by a person)."""
    g = project.annotations
    if g.num_edges == 0:
        return []
    # the true nucleus of every spot (or -1)
    truth_id = np.full(g.num_nodes, -1)
    for t in np.unique(g.t):
        rows = np.flatnonzero(g.t == t)
        truth = gt.subgraph(nodes=gt.t == t)
        dist, idx = cKDTree(truth.positions).query(g.positions[rows])
        truth_id[rows] = np.where(dist < MATCH_UM, truth.ids[idx], -1)
    src, tgt = g.edge_index()
    true_parent = dict(zip(gt.edges["target"].tolist(), gt.edges["source"].tolist()))
    ok = [
        i for i in range(g.num_edges)
        if truth_id[tgt[i]] >= 0 and true_parent.get(int(truth_id[tgt[i]])) == truth_id[src[i]]
    ]
    return [(int(g.edges["source"][i]), int(g.edges["target"][i])) for i in ok[:limit]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: temp)")
    parser.add_argument("--frames", type=int, default=8, help="frames of the synthetic movie")
    parser.add_argument("--rounds", type=int, default=2, help="proofreading rounds on frame 0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tiny", action="store_true", help="3-frame embryo, short training (≈ 20 s CPU)"
    )
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="celltrack-quickstart-"))
    start = time.perf_counter()

    # 1. data and project
    if args.tiny:
        synth, config, rounds = SynthConfig.tiny(n_frames=3, seed=args.seed), tiny_config(), 1
    else:
        synth, config, rounds = SynthConfig(n_frames=args.frames, seed=args.seed), None, args.rounds
    data = make_embryo(synth)
    print(f"data: {data}")
    project = Project.create(out / "embryo.ctproj", data.image, voxel_size=data.voxel_size,
                             config=config, overwrite=True)

    # 2. a person annotates 5 nuclei in frame 0 (hand-made spots are tagged 'fn')
    clicks = sample_annotations(data.gt, n_nuclei=5, frames=[0], rng=args.seed, tag="fn")
    project.add_annotations(clicks)
    info = project.train_detection(frame=0)
    print(f"first update: {info['steps']} steps, loss {info['loss']:.3f}, "
          f"{info['seconds']:.1f} s")

    # 3. proofreading rounds: predict -> accept / reject / add -> update
    for r in range(rounds):
        project.predict(0)
        decisions = simulated_proofreading(project, data.gt, 0)
        info = project.train_detection(frame=0)
        print(f"round {r + 1}: {decisions}, update {info['seconds']:.1f} s, "
              f"tags {project.tag_counts(0)}")

    # 4. predict every frame, link, approve correct links, train the flow, link again
    for t in range(1, data.image.shape[0]):
        project.predict(t)
    project.link("flow_nn")
    approved = correct_links(project, data.gt, limit=10)
    if approved:
        project.approve_links(approved)
        info = project.train_flow()
        print(f"flow model: {info['links']} approved links, {info['seconds']:.1f} s")
    result = project.link("flow_nn")
    print(f"linking: {result.status.value}, {result.graph.num_nodes} spots, "
          f"{result.graph.num_edges} links")

    # 5. score and export
    scores = evaluate(data.gt, project.tracks, max_distance=MATCH_UM)
    print(scores.table())
    print(f"DET {scores.det:.3f} (share of true nuclei found, 1 = all), TRA {scores.tra:.3f}")
    if scores.det < 0.8:
        print(f"WARNING: DET {scores.det:.3f} < 0.8: the detector did not learn enough; "
              "run more --rounds or without --tiny")
    path = project.export(out / "tracks.geff", overwrite=True)  # like create(overwrite=True)
    print(f"wrote {path}; project folder {project.folder} "
          f"({time.perf_counter() - start:.1f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
