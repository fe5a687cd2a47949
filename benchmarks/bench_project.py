"""Human-in-the-loop benchmark: latency of one interactive cycle on this CPU.

One cycle is what a person does between two looks at a frame in ELEPHANT's live mode:
add 3 annotations (3 separate ``add_spot`` calls, each saved atomically) → one
incremental detection update (``config.detection.train.incremental_steps`` steps of the
CPU preset, :meth:`DetectionConfig.cpu`) → re-predict that frame (detection +
ELEPHANT's tag re-check + atomic save).

Set-up (not timed): a project on a synthetic embryo, 3 ground-truth nuclei annotated in
frame 0, the self-supervised prior and a first incremental update. Then ``--cycles``
cycles run on frame 0, each adding 3 more ground-truth nuclei; the table gives the median
seconds of each part and of the whole cycle, plus the detection recall / precision of the
frame after the last cycle (spots within 3 µm of a true nucleus, one-to-one).

Usage: ``python benchmarks/bench_project.py [--sizes tiny default] [--cycles 3]
[--steps N] [--threads 1]``. Writes ``benchmarks/results/project.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, print_table, write_json

from celltrack.eval import match_nodes
from celltrack.graph.tags import LINKABLE, tags_of
from celltrack.project import Project, ProjectConfig
from celltrack.synth import SynthConfig, make_embryo

SIZES = {
    "tiny": lambda: SynthConfig.tiny(n_frames=2),
    "default": lambda: SynthConfig(n_frames=2),
    "large": lambda: SynthConfig(n_frames=2, shape=(32, 256, 256), n_nuclei=120, max_nuclei=200),
}


def run_size(name: str, cycles: int, steps: int | None) -> dict:
    data = make_embryo(SIZES[name]())
    gt0 = data.gt.subgraph(nodes=data.gt.t == 0)
    order = np.random.default_rng(0).permutation(gt0.num_nodes)
    pos = gt0.positions[order]
    cov = np.asarray(gt0.nodes["covariance"])[order]
    base = ProjectConfig()
    steps = steps or base.detection.train.incremental_steps
    det = base.detection.model_copy(
        update={"train": base.detection.train.model_copy(update={"incremental_steps": steps})}
    )
    cfg = base.model_copy(update={"detection": det})
    with tempfile.TemporaryDirectory() as tmp:
        project = Project.create(Path(tmp) / "p", data.image, voxel_size=data.voxel_size,
                                 config=cfg)
        start = time.perf_counter()
        project.add_spots(0, pos[:3], covariance=cov[:3])
        project.train_detection(frame=0)
        setup = time.perf_counter() - start
        parts: dict[str, list[float]] = {
            "add3": [], "update": [], "predict": [], "cycle": [], "cycle_cpu": []
        }
        k = 3
        for _ in range(cycles):
            if k + 3 > pos.shape[0]:
                break
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(k, k + 3):
                project.add_spot(0, pos[i], covariance=cov[i])
            t1 = time.perf_counter()
            project.train_detection(frame=0)
            t2 = time.perf_counter()
            project.predict(0)
            t3, c3 = time.perf_counter(), time.process_time()
            k += 3
            parts["add3"].append(t1 - t0)
            parts["update"].append(t2 - t1)
            parts["predict"].append(t3 - t2)
            parts["cycle"].append(t3 - t0)
            parts["cycle_cpu"].append(c3 - c0)  # CPU seconds: what a quiet machine would take
        spots = project.spots(0)
        nuclei = spots.subgraph(
            nodes=np.isin(tags_of(spots), LINKABLE)
        )
        matching = match_nodes(gt0, nuclei, 3.0)
        n_match = matching.num_matches
    return {
        "size": name,
        "volume_zyx": list(data.image.shape[1:]),
        "nuclei": int(gt0.num_nodes),
        "steps": steps,
        "setup_s": setup,
        **{f"{k}_s": statistics.median(v) for k, v in parts.items() if v},
        "s_per_step": statistics.median(parts["update"]) / steps if parts["update"] else None,
        "cycles": len(parts["cycle"]),
        "recall": n_match / max(gt0.num_nodes, 1),
        "precision": n_match / max(nuclei.num_nodes, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "default"], choices=sorted(SIZES))
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None,
                        help="incremental steps per update (default: the CPU preset's)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (1 is fastest on a shared, oversubscribed CPU)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows = [run_size(name, args.cycles, args.steps) for name in args.sizes]
    print_table(rows, "One interactive cycle: add 3 annotations -> incremental update -> "
                "re-predict the frame (median seconds)")
    write_json(
        "project",
        {
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            # the machine is shared: the 1-minute load average tells how busy it was
            "load_avg_1min": [load_before, os.getloadavg()[0]],
            "peak_rss_mb": peak_rss_mb(),
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
