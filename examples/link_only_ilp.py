"""Link detections into lineages with the tree ILP only: no deep learning, no torch.

Usage::

    python examples/link_only_ilp.py --detections spots.csv [--out DIR] [--max-distance 8]
    python examples/link_only_ilp.py --demo [--out DIR] [--tiny]

``spots.csv`` holds one detection per row: ``id, t, z, y, x`` (µm) and optionally
``score`` (detection confidence in [0, 1]), ``tag`` (``tp``/``fn`` pins a spot in,
``fp``/``tn`` pins it out) and covariance columns; approved links in ``spots_links.csv``
are pinned (see :func:`celltrack.io.annotations.read_annotations`). ``--demo`` writes
such a file from a synthetic embryo: true nuclei with 0.5 µm position noise, 5 % missed,
5 % false detections with low scores.

Steps: read → candidate graph (every parent within ``--max-distance`` µm in the previous
frame) → CP-SAT tree ILP (track starts, divisions and edge lengths priced; see
:class:`celltrack.solve.ILPConfig`) → GEFF output, and with ``--demo`` scores of the ILP
and of the greedy baseline against the truth.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from celltrack.graph import TrackGraph
from celltrack.graph.candidates import CandidateConfig, build_candidates, pins_from_tags
from celltrack.io.annotations import read_annotations, write_annotations
from celltrack.io.geff_io import write_geff
from celltrack.solve import GreedyConfig, ILPConfig, make_linker


def demo_detections(tiny: bool, seed: int = 0) -> tuple[TrackGraph, TrackGraph]:
    """Noisy detections (with scores) of a synthetic embryo, and its true lineage."""
    from celltrack.synth import SynthConfig, make_embryo

    cfg = SynthConfig.tiny(n_frames=4, seed=seed) if tiny else SynthConfig(n_frames=20, seed=seed)
    gt = make_embryo(cfg).gt
    rng = np.random.default_rng(seed)
    keep = rng.random(gt.num_nodes) > 0.05
    true = gt.subgraph(nodes=keep)
    pos = true.positions + rng.normal(0.0, 0.5, (true.num_nodes, 3))
    n_false = max(1, int(0.05 * true.num_nodes))
    lo, hi = gt.positions.min(axis=0), gt.positions.max(axis=0)
    false_pos = rng.uniform(lo, hi, (n_false, 3))
    t = np.concatenate([true.t, rng.integers(0, cfg.n_frames, n_false)])
    score = np.concatenate([rng.uniform(0.6, 1.0, true.num_nodes), rng.uniform(0.0, 0.5, n_false)])
    detections = TrackGraph.from_positions(
        t, np.concatenate([pos, false_pos]), ids=np.arange(t.size), score=score
    )
    return detections, gt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=Path, help="detections (.csv / .json / .xml)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: temp)")
    parser.add_argument("--max-distance", type=float, default=8.0,
                        help="candidate search radius (µm)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="ILP time limit (s)")
    parser.add_argument(
        "--border", type=float, default=0.0,
        help="nodes this close (µm) to the field-of-view border start/end tracks for free; "
        "keep it small when nuclei rarely leave the field of view",
    )
    parser.add_argument("--demo", action="store_true", help="synthetic detections")
    parser.add_argument("--tiny", action="store_true", help="tiny demo (seconds)")
    args = parser.parse_args(argv)
    if not args.demo and args.detections is None:
        parser.error("give --detections or --demo")
    out = args.out or Path(tempfile.mkdtemp(prefix="celltrack-link-only-"))
    out.mkdir(parents=True, exist_ok=True)

    gt = None
    if args.demo:
        detections, gt = demo_detections(args.tiny)
        args.detections = write_annotations(detections, out / "detections.csv")
        print(f"demo detections written to {args.detections}")
    spots = read_annotations(args.detections)
    print(f"read {spots}")

    start = time.perf_counter()
    candidates = build_candidates(spots, CandidateConfig(max_distance_um=args.max_distance))
    if "tag" in candidates.nodes or "approved" in candidates.edges:
        candidates = pins_from_tags(candidates)  # reviewed spots / approved links are pinned
    built = time.perf_counter() - start
    print(f"candidate graph: {candidates.num_nodes} nodes, {candidates.num_edges} edges "
          f"({built:.2f} s)")

    # the tiny demo volume is all border: charge track starts everywhere there
    border = 0.0 if args.tiny else args.border
    linkers = {
        "ilp": ILPConfig(time_limit_s=args.time_limit, border_distance_um=border),
        "greedy": GreedyConfig(max_cost=args.max_distance),
    }
    results = {}
    for name, config in linkers.items():
        result = make_linker(config).link(candidates)
        results[name] = result
        objective = "" if result.objective is None else f", objective {result.objective:.3f}"
        print(f"{name}: {result.status.value}{objective}, {result.graph.num_nodes} nodes, "
              f"{result.graph.num_edges} links, {sum(result.timings.values()):.2f} s")
    path = write_geff(results["ilp"].graph, out / "tracks.geff", overwrite=True)
    print(f"wrote {path}")

    if gt is not None:
        from celltrack.eval import evaluate

        for name, result in results.items():
            s = evaluate(gt, result.graph, max_distance=3.0)
            div = s.divisions
            f1 = "n/a" if div is None or div.f1 is None else f"{div.f1:.3f}"
            print(f"{name:6s} vs truth: DET {s.det:.3f}  TRA {s.tra:.3f}  LNK {s.lnk:.3f}  "
                  f"division F1 {f1}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
