"""Benchmark: block-wise spot extraction + candidate graph vs the whole-frame path.

A synthetic detection-probability Zarr ``(T, 3, Z, Y, X)`` float32 (default 3 × 3 × 48 ×
384 × 384, ~255 MB uncompressed; chunks of one channel × 16 × 64 × 64) is written frame
by frame: ~1500 rotated ellipsoidal nuclei per frame drifting between frames, centre
probability rising towards each centre. Then, each in a fresh Python process (clean
peak-memory numbers):

- ``whole``: ``extract_spots`` on each whole frame (``arr[t]`` loaded), ``collect_spots``,
  ``build_candidates``, ``write_geff``;
- ``blockwise``: :func:`celltrack.scale.spots.extract_spots_blockwise` on worker
  processes (blocks of 48 × 192 × 192 and 16 × 128 × 128 voxels, halo from the spot
  config), then :func:`celltrack.scale.candidates.build_candidates_blockwise` on the same
  workers, ``write_geff``.

Reported: wall seconds of spots, candidates and the GEFF write, peak RSS of the process
doing the work (whole) or of the driver and the largest worker (blockwise), the RSS a
process has after importing the detection code alone (``celltrack.detect`` imports
torch; both paths import it before the clock starts, and the workers are forked after
the driver did), and whether the two graphs are equal (``TrackGraph.equals``, atol 1e-9
µm; same ids, order and edges; largest position difference).

Usage::

    python benchmarks/bench_blockwise_spots.py                  # ~255 MB, 2 workers
    python benchmarks/bench_blockwise_spots.py --frames 2 --size 32 256 256   # quick
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, print_table, write_json

VOXEL_SIZE = (2.0, 0.5, 0.5)
CHUNKS = (16, 64, 64)
BLOCKS = ((48, 192, 192), (16, 128, 128))  # chunk-aligned, and a small one
SPOTS = {"threshold": 0.5, "r_min_um": 1.0, "r_max_um": 8.0, "suppression_distance_um": 3.0}
CANDIDATES = {"max_distance_um": 6.0, "max_gap_frames": 2}


def make_store(path: Path, frames: int, size: tuple[int, int, int], seed: int) -> float:
    """Write the synthetic probability Zarr frame by frame; return its size in MB."""
    import numpy as np
    import zarr

    rng = np.random.default_rng(seed)
    vs = np.asarray(VOXEL_SIZE)
    shape = np.asarray(size)
    extent = (shape - 1) * vs
    n = int(np.prod(extent) / 2300)  # ~20 % of the volume inside nuclei
    centres = rng.uniform(0, 1, (n, 3)) * extent
    radii = rng.uniform(3.0, 6.0, (n, 3))
    angles = rng.uniform(0, np.pi, n)
    arr = zarr.open_array(str(path), mode="w", shape=(frames, 3, *size),
                          chunks=(1, 1, *CHUNKS), dtype="f4")
    ratio = 0.4
    for t in range(frames):
        centre = np.zeros(size, np.float32)
        for c, r, a in zip(centres, radii, angles):
            lo = np.maximum(np.floor((c - r.max()) / vs).astype(int), 0)
            hi = np.minimum(np.ceil((c + r.max()) / vs).astype(int) + 1, shape)
            if np.any(hi <= lo):
                continue
            grid = np.stack(np.meshgrid(*[np.arange(a0, b0) * v for a0, b0, v in zip(lo, hi, vs)],
                                        indexing="ij"), -1) - c
            rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
            inv = rot @ np.diag(1.0 / r**2) @ rot.T
            m = np.einsum("...i,ij,...j->...", grid, inv, grid)
            value = np.clip(1.5 - m / (2 * ratio**2), 0, 1).astype(np.float32)
            box = tuple(slice(a0, b0) for a0, b0 in zip(lo, hi))
            np.maximum(centre[box], value, out=centre[box])
        centre += rng.uniform(0, 0.05, size).astype(np.float32)
        np.clip(centre, 0, 1, out=centre)
        arr[t, 0] = 1 - centre
        arr[t, 1] = 0
        arr[t, 2] = centre
        step = np.array([0.0, 1.0, -0.5]) + rng.normal(0, 0.3, centres.shape)
        centres = np.clip(centres + step, 0, extent)
        del centre
    return float(np.prod(arr.shape) * 4 / 1e6)


def run_whole(store: str, out: str) -> dict:
    import zarr

    from celltrack.config.detection import SpotConfig
    from celltrack.detect.api import collect_spots
    from celltrack.detect.spots import extract_spots
    from celltrack.graph.candidates import CandidateConfig, build_candidates
    from celltrack.io.geff_io import write_geff

    arr = zarr.open_array(store, mode="r")
    start = time.perf_counter()
    spots = collect_spots([extract_spots(arr[t], VOXEL_SIZE, SpotConfig(**SPOTS), t=t)
                           for t in range(arr.shape[0])])
    t_spots = time.perf_counter() - start
    start = time.perf_counter()
    graph = build_candidates(spots, CandidateConfig(**CANDIDATES))
    t_cand = time.perf_counter() - start
    start = time.perf_counter()
    write_geff(graph, out)
    t_geff = time.perf_counter() - start
    return {"spots_s": t_spots, "candidates_s": t_cand, "geff_s": t_geff,
            "peak_rss_mb": peak_rss_mb(),
            "spots": spots.num_nodes, "edges": graph.num_edges}


def _warm(_: int) -> float:
    """Worker warm-up: import the detection code (torch) once; return the seconds."""
    start = time.perf_counter()
    import importlib

    importlib.import_module("celltrack.detect.spots")
    importlib.import_module("celltrack.scale.spots")

    time.sleep(0.5)  # keep this worker busy so the next warm-up goes to another one
    return time.perf_counter() - start


def run_blockwise(store: str, out: str, workers: int, block: tuple[int, int, int]) -> dict:
    # the driver needs celltrack.detect too (suppress_duplicates, collect_spots), and
    # importing it imports torch: done before the clock starts, as in run_whole
    import celltrack.detect.api  # noqa: F401
    from celltrack.config.detection import SpotConfig
    from celltrack.graph.candidates import CandidateConfig
    from celltrack.io.geff_io import write_geff
    from celltrack.scale.candidates import build_candidates_blockwise
    from celltrack.scale.spots import extract_spots_blockwise
    from celltrack.solve.blockwise.executors import make_executor

    runner = make_executor("processes", workers)
    try:
        start = time.perf_counter()
        list(runner.imap_unordered(_warm, range(workers)))
        t_start = time.perf_counter() - start
        start = time.perf_counter()
        spots = extract_spots_blockwise(store, VOXEL_SIZE, SpotConfig(**SPOTS), block_shape=block,
                                        executor=runner)
        t_spots = time.perf_counter() - start
        start = time.perf_counter()
        graph = build_candidates_blockwise(spots, CandidateConfig(**CANDIDATES), executor=runner)
        t_cand = time.perf_counter() - start
        start = time.perf_counter()
        write_geff(graph, out)
        t_geff = time.perf_counter() - start
    finally:
        runner.close()
    info = spots.attrs["blockwise_spots"]
    return {"worker_start_s": t_start, "spots_s": t_spots, "candidates_s": t_cand,
            "geff_s": t_geff, "peak_rss_mb": peak_rss_mb(),
            "worker_peak_rss_mb": info["max_worker_peak_rss_mb"],
            "spots": spots.num_nodes, "edges": graph.num_edges, "tasks": info["tasks"],
            "grown": info["grown"], "halo": info["halo"], "grid": info["grid"]}


def _compare(a, b) -> dict:
    """Whole-frame graph ``a`` vs block-wise ``b``: equal, same ids/order/edges, max Δ."""
    same_ids = bool(a.num_nodes == b.num_nodes and (a.ids == b.ids).all())
    return {
        "equal": bool(a.equals(b, atol=1e-9)),
        "same_ids_and_order": same_ids,
        "same_edges_in_order": bool(
            a.num_edges == b.num_edges
            and (a.edges["source"] == b.edges["source"]).all()
            and (a.edges["target"] == b.edges["target"]).all()
        ),
        "max_position_difference_um": (
            float(abs(a.positions - b.positions).max()) if same_ids and a.num_nodes else None
        ),
    }


def in_subprocess(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--size", type=int, nargs=3, default=(48, 384, 384))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block", type=int, nargs=3, action="append", default=None,
                        help="block shape (z y x voxels); repeat for several (default "
                        f"{' and '.join(map(str, BLOCKS))})")
    parser.add_argument("--mode", choices=["whole", "blockwise", "baseline"], default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument("--store", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "whole":
        print(json.dumps(run_whole(args.store, args.out)))
        return
    if args.mode == "blockwise":
        print(json.dumps(run_blockwise(args.store, args.out, args.workers, tuple(args.block[0]))))
        return
    if args.mode == "baseline":
        _warm(0)  # imports celltrack.detect (torch) and celltrack.scale.spots
        print(json.dumps({"peak_rss_mb": peak_rss_mb()}))
        return

    from celltrack.io.geff_io import read_geff

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        store = tmp_path / "probabilities.zarr"
        start = time.perf_counter()
        megabytes = make_store(store, args.frames, tuple(args.size), args.seed)
        t_make = time.perf_counter() - start
        on_disk = sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / 1e6
        base = in_subprocess(["--mode", "baseline"])
        whole = in_subprocess(["--mode", "whole", "--store", str(store),
                               "--out", str(tmp_path / "whole.geff")])
        blocks = [tuple(b) for b in args.block] if args.block else list(BLOCKS)
        runs, checks = [], []
        a = read_geff(tmp_path / "whole.geff")
        for i, shape in enumerate(blocks):
            out = tmp_path / f"block{i}.geff"
            runs.append(in_subprocess(
                ["--mode", "blockwise", "--store", str(store), "--out", str(out),
                 "--workers", str(args.workers), "--block", *map(str, shape)]
            ))
            checks.append(_compare(a, read_geff(out)))

    rows = [
        {"path": "whole-frame", "block": "-", "tasks": "-", "spots_s": whole["spots_s"],
         "candidates_s": whole["candidates_s"], "geff_s": whole["geff_s"],
         "peak_rss_mb": whole["peak_rss_mb"],
         "worker_peak_rss_mb": "-", "spots": whole["spots"], "edges": whole["edges"],
         "equal": "-"},
    ]
    for shape, run, check in zip(blocks, runs, checks):
        rows.append({
            "path": f"block-wise, {args.workers} workers", "block": "x".join(map(str, shape)),
            "tasks": run["tasks"], "spots_s": run["spots_s"], "candidates_s": run["candidates_s"],
            "geff_s": run["geff_s"],
            "peak_rss_mb": run["peak_rss_mb"], "worker_peak_rss_mb": run["worker_peak_rss_mb"],
            "spots": run["spots"], "edges": run["edges"], "equal": check["equal"],
        })
    print_table(rows, f"spots + candidates, {args.frames} × 3 × {tuple(args.size)} float32 "
                      f"({megabytes:.0f} MB, {on_disk:.0f} MB on disk, chunks {CHUNKS}); "
                      f"import baseline {base['peak_rss_mb']:.0f} MB")
    for shape, run, check in zip(blocks, runs, checks):
        print(f"block {shape}: workers started in {run['worker_start_s']:.1f} s; {check}")
    write_json("blockwise_spots", {
        "shape": [args.frames, 3, *args.size],
        "voxel_size_um": list(VOXEL_SIZE),
        "chunks": [1, 1, *CHUNKS],
        "uncompressed_mb": megabytes,
        "on_disk_mb": on_disk,
        "make_store_s": t_make,
        "spot_config": SPOTS,
        "candidate_config": CANDIDATES,
        "import_baseline_rss_mb": base["peak_rss_mb"],
        "whole": whole,
        "blockwise": [
            {"block_shape": list(shape), **run, **check}
            for shape, run, check in zip(blocks, runs, checks)
        ],
    })


if __name__ == "__main__":
    main()
