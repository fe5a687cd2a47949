"""The whole pipeline block by block on a movie written as Zarr, killed once and resumed.

The movie is the synthetic default embryo (20 frames of 24 × 96 × 96 voxels, uint16) tiled
``k × k`` times in y and x, so its ground truth is known; ``--gib`` sets its uncompressed
size (the issue's target is ``--gib 20``; on the 2-core CPU machine that takes hours, see
the printed time per 10⁹ voxels). Detection and flow train on one copy of the embryo
(``train_images``: 10 annotated nuclei, 20 links; the uninterrupted run reuses these
networks), then ``celltrack.Pipeline`` with
``blockwise:`` set predicts, extracts spots, builds candidates and solves the ILP block by
block. The first run is killed (SIGKILL) once a share of the prediction blocks is done; the
rerun resumes from the work folder, and an uninterrupted run in another folder must give
the same tracks. Prints a table and writes ``benchmarks/results/larger_than_memory.json``:
time per 10⁹ voxels (prediction and spots) and per 10⁵ nodes (candidates and ILP), peak
memory of the driver and of the prediction workers, DET / TRA against the tiled ground
truth, and whether the resumed tracks equal the uninterrupted ones.

Usage::

    python benchmarks/bench_larger_than_memory.py --gib 0.25     # about 10 min on 2 cores
    python benchmarks/bench_larger_than_memory.py --gib 20       # the issue's size
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import print_table, write_json

TILE_SHAPE = (24, 96, 96)  # the synthetic default embryo's frame (z, y, x)
BLOCK_YX = (192, 192)  # core of a prediction block in y, x (voxels); z: the whole frame


def write_movie(root: Path, gib: float) -> dict:
    """Tile the default embryo k × k times into ``root/movie.zarr``; GT to ``root/gt.geff``."""
    import zarr

    from celltrack.graph import TrackGraph
    from celltrack.graph.trackgraph import concat
    from celltrack.io import write_geff
    from celltrack.synth import SynthConfig, make_embryo, sample_annotations

    data = make_embryo(SynthConfig())
    small = np.asarray(data.image, dtype=np.uint16)
    t, z, y, x = small.shape
    k = max(1, math.ceil(math.sqrt(gib * 2**30 / small.nbytes)))
    movie = zarr.open_array(
        str(root / "movie.zarr"), mode="w", shape=(t, z, y * k, x * k), dtype="uint16",
        chunks=(1, z, y, x),
    )
    for frame in range(t):
        movie[frame] = np.tile(small[frame], (1, k, k))
    vs = np.asarray(data.voxel_size, float)
    copies = []
    for i in range(k):
        for j in range(k):
            nodes = {c: np.asarray(data.gt.nodes[c]) for c in data.gt.node_columns}
            nodes["y"] = nodes["y"] + i * y * vs[1]
            nodes["x"] = nodes["x"] + j * x * vs[2]
            edges = {c: np.asarray(data.gt.edges[c]) for c in data.gt.edge_columns}
            copies.append(TrackGraph(nodes, edges))
    write_geff(concat(copies, offset_ids=True), root / "gt.geff", overwrite=True)
    np.save(root / "train.npy", small)
    ann = sample_annotations(data.gt, n_nuclei=10, n_links=20, rng=0)
    write_geff(ann, root / "annotations.geff", overwrite=True)
    return {"copies": k * k, "shape": list(movie.shape), "voxel_size_um": vs.tolist(),
            "gib": float(np.prod(movie.shape)) * 2 / 2**30,
            "match_distance_um": float(data.config.radius_um)}


def config(workdir: Path, workers: int, method: str = "elephant"):
    """The demo's CPU settings (``method``: its models) with every stage block-wise on
    ``workers`` processes."""
    from celltrack.config.nn import BlockwisePredictConfig
    from celltrack.config.pipeline import PipelineBlockwiseConfig
    from celltrack.demo import demo_config

    cfg = demo_config(workdir, quick=False, method=method)
    blockwise = PipelineBlockwiseConfig(
        block_size=(5, None, 500.0, 500.0),
        context=(2, None, 60.0, 60.0),
        executor="processes",
        n_workers=workers,
        progress=False,
        predict=BlockwisePredictConfig(
            block_shape=(TILE_SHAPE[0], *BLOCK_YX), group_norm="block", dtype="float16",
            n_workers=workers, num_threads=1,
        ),
    )
    output = cfg.output.model_copy(update={"figures": False, "formats": ("geff",)})
    return cfg.model_copy(update={"blockwise": blockwise, "output": output, "progress": False})


def run_pipeline(root: Path, workdir: Path, workers: int, method: str) -> dict:
    """One Pipeline run (in this process); its summary is written to workdir/summary.json."""
    import resource

    from celltrack.eval import evaluate
    from celltrack.io import read_geff
    from celltrack.pipeline import Pipeline

    meta = json.loads((root / "meta.json").read_text())
    vs = meta["voxel_size_um"]
    start = time.perf_counter()
    result = Pipeline(config(workdir, workers, method), workdir).run(
        str(root / "movie.zarr"),
        read_geff(root / "annotations.geff"),
        voxel_size=vs,
        train_images=np.load(root / "train.npy"),
        train_voxel_size=vs,
    )
    wall = time.perf_counter() - start
    gt = read_geff(root / "gt.geff")
    scores = evaluate(gt, result.tracks, max_distance=meta["match_distance_um"])
    prediction = result.spots.attrs["blockwise"]["prediction"]
    summary = {
        "wall_s": wall,
        "stage_s": {k: round(v, 1) for k, v in result.timings.items()},
        "nodes": result.tracks.num_nodes,
        "edges": result.tracks.num_edges,
        "spots": result.spots.num_nodes,
        "DET": scores.det,
        "TRA": scores.tra,
        "prediction_blocks": prediction.get("blocks"),
        "prediction_done_before": prediction.get("done_before"),
        "worker_peak_rss_mib": prediction.get("worker_peak_rss_bytes", 0) / 2**20,
        "driver_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def run_killed(root: Path, workdir: Path, workers: int, share: float, method: str) -> float:
    """Start a run in a subprocess and SIGKILL it once ``share`` of the blocks are done."""
    meta = json.loads((root / "meta.json").read_text())
    t, z, y, x = meta["shape"]
    core = (TILE_SHAPE[0], *BLOCK_YX)
    total = t * math.prod(math.ceil(s / c) for s, c in zip((z, y, x), core))
    cmd = [sys.executable, __file__, "--one", str(root), str(workdir), str(workers), method]
    proc = subprocess.Popen(cmd, start_new_session=True)
    start = time.perf_counter()
    while proc.poll() is None:
        done = len(list(workdir.glob("blocks/detect-*/prediction.zarr/_blocks/*")))
        if done >= share * total:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return time.perf_counter() - start
        time.sleep(1.0)
    raise SystemExit("the run finished before it could be killed: use a larger --gib")


def _bytes_on_disk(path: Path) -> int:
    """Bytes the files under ``path`` occupy on disk (allocated blocks, not sizes)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


class DiskPeak:
    """Peak growth of the used space of ``path``'s file system while the block runs.

    Samples ``shutil.disk_usage`` every ``every_s`` seconds in a thread: the stores the
    pipeline writes and prunes (predictions, fields, spots, graphs) on top of the movie.
    """

    def __init__(self, path: Path, every_s: float = 1.0) -> None:
        self.path, self.every_s = path, every_s
        self.base = self.peak = shutil.disk_usage(path).used
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, shutil.disk_usage(self.path).used)

    def __enter__(self) -> DiskPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, shutil.disk_usage(self.path).used)

    @property
    def growth(self) -> int:
        """Largest growth of the used space over the start (bytes)."""
        return self.peak - self.base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=0.25, help="uncompressed movie size")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-at", type=float, default=0.4, help="share of blocks done")
    parser.add_argument(
        "--method", choices=("elephant", "linajea"), default="elephant",
        help="the demo's models: ELEPHANT's ellipsoid U-Net and flow, or Linajea's cell "
        "indicator and movement vectors",
    )
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        root, workdir, workers, method = args.one
        run_pipeline(Path(root), Path(workdir), int(workers), method)
        return
    with tempfile.TemporaryDirectory(prefix="ct-large-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        meta = write_movie(root, args.gib)
        (root / "meta.json").write_text(json.dumps(meta))
        write_s = time.perf_counter() - t0
        killed_after = run_killed(root, root / "resumed", args.workers, args.kill_at, args.method)
        resumed = run_pipeline(root, root / "resumed", args.workers, args.method)
        # the uninterrupted run reuses the trained networks (training is not what is compared)
        shutil.copytree(root / "resumed" / "models", root / "fresh" / "models")
        with DiskPeak(root) as disk:
            fresh = run_pipeline(root, root / "fresh", args.workers, args.method)
        movie_bytes = _bytes_on_disk(root / "movie.zarr")
        from celltrack.io import read_geff

        same = read_geff(root / "resumed" / "tracks.geff").equals(
            read_geff(root / "fresh" / "tracks.geff"), columns=False
        )
    voxels = float(np.prod(meta["shape"]))
    stage = fresh["stage_s"]
    rows = [{
        "method": args.method,
        "movie": "x".join(map(str, meta["shape"])),
        "GiB": round(meta["gib"], 2),
        "write_s": round(write_s, 1),
        "detect_s_per_1e9_voxels": stage.get("detect", 0) / voxels * 1e9,
        "motion_s_per_1e9_voxels": stage.get("predict_motion", 0) / voxels * 1e9,
        "link_s_per_1e5_nodes": (stage.get("candidates", 0) + stage.get("link", 0))
        / max(fresh["nodes"], 1) * 1e5,
        "worker_peak_MiB": round(max(fresh["worker_peak_rss_mib"], resumed["worker_peak_rss_mib"])),
        "driver_peak_MiB": round(max(fresh["driver_peak_rss_mib"], resumed["driver_peak_rss_mib"])),
        "DET": round(fresh["DET"], 3),
        "TRA": round(fresh["TRA"], 3),
        "killed_after_s": round(killed_after, 1),
        "resumed_blocks_kept": resumed["prediction_done_before"],
        "resumed_equals_fresh": same,
        # the compressed movie and the largest extra disk the run's stores took at once,
        # per GiB of uncompressed movie
        "movie_disk_GiB_per_GiB": round(movie_bytes / 2**30 / meta["gib"], 3),
        "peak_store_disk_GiB_per_GiB": round(disk.growth / 2**30 / meta["gib"], 3),
    }]
    print_table(rows, "Whole pipeline block-wise (2 GiB per worker is the cap to meet)")
    name = "larger_than_memory" + ("" if args.method == "elephant" else f"_{args.method}")
    write_json(name, {"movie": meta, "rows": rows, "resumed": resumed, "fresh": fresh,
                      "movie_bytes_on_disk": movie_bytes, "peak_store_bytes": disk.growth})


if __name__ == "__main__":
    main()
