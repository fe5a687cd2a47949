"""The demo's models and linkers on several seeds of the synthetic embryo (held-out seeds).

Run ``python benchmarks/bench_demo_seeds.py --seeds 0 1 2``. For every seed it draws the
demo's annotations (10 nuclei, 20 approved links), trains the demo's detection and flow
models through :class:`celltrack.pipeline.Pipeline` (the demo's config, one torch thread by
default so that runs compare), links with the three demo linkers and prints DET, TRA and
division F1 per linker, plus the means over seeds. Writes
``benchmarks/results/demo_seeds.json``.

It uses only the API the demo has had since before the real-image work, so the same script
run against an older checkout (``PYTHONPATH=/path/to/old/checkout python
benchmarks/bench_demo_seeds.py``) gives the before/after comparison the README quotes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import print_table, write_json

from celltrack.demo import DEMO_LINKERS, demo_config
from celltrack.pipeline import Pipeline
from celltrack.solve.stage import field_of_view, link_stage
from celltrack.synth import SynthConfig, make_embryo, sample_annotations


def run_seed(seed: int, work: Path) -> list[dict]:
    """One row per linker for one seed."""
    data = make_embryo(SynthConfig(seed=seed))
    ann = sample_annotations(data.gt, n_nuclei=10, n_links=20, rng=seed)
    cfg = demo_config(work, False).model_copy(update={"progress": False})
    pipeline = Pipeline(cfg, work)
    images, vs = pipeline.movie(data.image, data.voxel_size)
    start = time.perf_counter()
    spots = pipeline.spots_for(images, vs, ann)
    candidates = cfg.candidates.model_copy(
        update={"field_of_view_um": field_of_view(images.shape, vs)}
    )
    rows = []
    for name, linker in DEMO_LINKERS.items():
        result = link_stage(spots, ann, candidates=candidates, linker=linker)
        scores = pipeline.evaluate(data.gt, result.graph)
        div = scores.divisions
        rows.append(
            {
                "seed": seed,
                "linker": name,
                "DET": scores.det,
                "TRA": scores.tra,
                "div_F1": float("nan") if div is None else div.f1,
                "spots": int(spots.num_nodes),
                "wall_s": time.perf_counter() - start,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            rows.extend(run_seed(seed, Path(tmp)))
        print_table([r for r in rows if r["seed"] == seed], f"seed {seed}")
    means = [
        {
            "linker": name,
            **{
                key: float(np.nanmean([r[key] for r in rows if r["linker"] == name]))
                for key in ("DET", "TRA", "div_F1")
            },
        }
        for name in DEMO_LINKERS
    ]
    print_table(means, f"means over seeds {args.seeds}")
    write_json("demo_seeds", {"rows": rows, "means": means, "threads": args.threads})


if __name__ == "__main__":
    main()
