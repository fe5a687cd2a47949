"""Block-wise prediction: worker peak memory against block size, and speed (voxels/s).

A 2D+t movie of 2 × 1 × 768 × 768 uint16 frames stored as Zarr is predicted with the CPU
detection preset (``DetectionConfig.cpu()``: U-Net 8-16-32-64, halo 64 voxels) by
:func:`celltrack.scale.predict_blockwise` on one spawned worker process with one torch
thread, for several block cores; the one-block run is the whole-frame pass. Reported per
run: blocks, the worker's peak RSS (MiB, includes ~300 MiB of torch and celltrack), the
seconds of each phase, and voxels per second overall. ``group_norm='frame'`` (exact,
one partial pass per GroupNorm layer) and ``'block'`` (one pass) are both shown. The
worker is started (and imports torch) once before the runs, so the seconds exclude that.
Prints a table and writes ``benchmarks/results/blockwise_predict.json``.

Run: ``python benchmarks/bench_blockwise_predict.py`` (2–3 minutes on one core).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json

from celltrack.config.detection import DetectionConfig
from celltrack.config.nn import BlockwisePredictConfig
from celltrack.detect.model import build_model
from celltrack.io.images import read_image, write_image
from celltrack.scale import predict_blockwise, receptive_halo

SHAPE = (2, 1, 768, 768)
# smallest first: one persistent worker's peak RSS only grows from run to run
RUNS = [
    ("192, block GN", (1, 192, 192), "block"),
    ("192", (1, 192, 192), "frame"),
    ("384", (1, 384, 384), "frame"),
    ("whole frame", (1, 768, 768), "frame"),
]


def _baseline(_: object) -> int:
    """In the worker: import what a block task needs, return the peak RSS so far (bytes)."""
    import resource

    import torch  # noqa: F401

    import celltrack.detect.model
    import celltrack.scale.predict  # noqa: F401

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    model = build_model(DetectionConfig.cpu().model, (1.0, 1.0, 1.0), two_d=True, seed=0)
    rng = np.random.default_rng(0)
    movie = (rng.gamma(2.0, 200.0, SHAPE)).astype(np.uint16)
    rows = []
    from celltrack.solve.blockwise.executors import make_executor

    executor = make_executor("processes", 1, start_method="spawn")
    baseline = max(executor.imap_unordered(_baseline, [0]))  # started and imported once
    with tempfile.TemporaryDirectory() as tmp:
        src = write_image(movie, Path(tmp) / "movie.zarr", voxel_size=(1.0, 1.0, 1.0))
        series = read_image(src)
        results = []
        for name, block, gn in RUNS:
            cfg = BlockwisePredictConfig(
                block_shape=block, group_norm=gn, n_workers=1, num_threads=1
            )
            result = predict_blockwise(
                model, series, Path(tmp) / f"out_{len(rows)}", cfg, executor=executor
            )
            results.append((name, result.array[:]))
            s = result.stats
            voxels = float(np.prod(SHAPE))
            rows.append(
                {
                    "block": name,
                    "blocks": s["blocks"],
                    "read_voxels_per_block": int(
                        np.prod(
                            [
                                min(b + 2 * h, f)
                                for b, h, f in zip(
                                    result.grid.block_shape, result.grid.halo, SHAPE[1:]
                                )
                            ]
                        )
                    ),
                    "worker_peak_MiB": s["worker_peak_rss_bytes"] / 2**20,
                    "above_imports_MiB": (s["worker_peak_rss_bytes"] - baseline) / 2**20,
                    "intensity_s": s["intensity_s"],
                    "groupnorm_s": s["groupnorm_s"],
                    "predict_s": s["predict_s"],
                    "total_s": s["seconds"],
                    "Mvox_per_s": voxels / s["seconds"] / 1e6,
                }
            )
        whole = results[-1][1]
        for row, (_, values) in zip(rows, results):
            row["max_diff_vs_whole"] = float(np.abs(values - whole).max())
    executor.close()
    print_table(
        rows,
        f"block-wise detection prediction of {SHAPE} (1 worker, 1 thread, halo "
        f"{receptive_halo(model)})",
    )
    write_json(
        "blockwise_predict", {"movie": list(SHAPE), "preset": "DetectionConfig.cpu()", "rows": rows}
    )


if __name__ == "__main__":
    main()
