"""Tiled prediction efficiency: frame voxels per second relative to the network's raw speed.

efficiency = (frame voxels / seconds of a tiled prediction of the frame)
           / (tile voxels / seconds of one forward pass over one configured tile)

for the CPU detection preset (``DetectionConfig.cpu()``: U-Net 8-16-32-64, tile
32 × 128 × 128 = a budget of 524 288 voxels, overlap 4 × 16 × 16), with the tiles of
``tile_mode="fixed"`` (before: the configured tile, clipped) and ``"auto"`` (after: the
fewest equal tiles within the budget, sizes rounded to the U-Net's divisor) side by side,
on one torch thread. Prints a table and writes ``benchmarks/results/tiling.json``.

Run: ``python benchmarks/bench_tiling.py [--repeat 2]`` (about a minute on one core).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, timed, write_json

from celltrack.config.detection import DetectionConfig
from celltrack.detect.model import build_model
from celltrack.nn.tiling import _tiles, predict_tiled, tile_for

CASES = [
    ("2D 256x256", (1, 256, 256)),
    ("3D 24x96x96", (24, 96, 96)),
    ("3D 32x256x256", (32, 256, 256)),
]


def _tiles_used(shape: tuple[int, ...], tile: list[int], overlap: list[int]) -> tuple[int, int]:
    ov = [min(int(o), max(t - 1, 0)) for o, t in zip(overlap, tile)]
    tiles = list(_tiles(shape, tile, ov))
    return len(tiles), sum(int(np.prod([s.stop - s.start for s in sl])) for sl, _ in tiles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = DetectionConfig.cpu()
    rows = []
    for name, shape in CASES:
        two_d = shape[0] == 1
        model = build_model(cfg.model, (1.0, 1.0, 1.0), two_d=two_d, seed=0).eval()
        div = model.unet.divisor
        rng = np.random.default_rng(0)
        volume = rng.random((1, *shape), dtype=np.float32)
        raw_tile = tile_for(shape, cfg.predict.tile_shape, cfg.predict.overlap, "fixed", div)

        def run(x: torch.Tensor, model: torch.nn.Module = model) -> torch.Tensor:
            return torch.softmax(model(x), dim=1)

        with torch.inference_mode():
            x = torch.from_numpy(rng.random((1, 1, *raw_tile), dtype=np.float32))
            run(x)  # warm-up
            raw_s, _ = timed(lambda x=x: run(x), repeat=args.repeat)
        raw_vps = float(np.prod(raw_tile)) / raw_s
        row: dict = {
            "case": name,
            "raw_tile": "x".join(map(str, raw_tile)),
            "raw_Mvox_s": raw_vps / 1e6,
        }
        for mode in ("fixed", "auto"):
            tile = tile_for(shape, cfg.predict.tile_shape, cfg.predict.overlap, mode, div)
            n_tiles, processed = _tiles_used(shape, tile, list(cfg.predict.overlap))
            seconds, _ = timed(
                lambda mode=mode, run=run, volume=volume, div=div: predict_tiled(
                    run,
                    volume,
                    3,
                    tile_shape=cfg.predict.tile_shape,
                    overlap=cfg.predict.overlap,
                    batch_size=cfg.predict.batch_size,
                    tile_mode=mode,
                    divisor=div,
                ),
                repeat=args.repeat,
            )
            vps = float(np.prod(shape)) / seconds
            row[f"{mode}_tile"] = "x".join(map(str, tile))
            row[f"{mode}_tiles"] = n_tiles
            row[f"{mode}_voxel_ratio"] = processed / float(np.prod(shape))
            row[f"{mode}_s"] = seconds
            row[f"{mode}_efficiency"] = vps / raw_vps
        rows.append(row)
    print_table(rows, "tiled prediction efficiency (1 torch thread; before = fixed, after = auto)")
    write_json("tiling", {"threads": 1, "preset": "DetectionConfig.cpu()", "rows": rows})


if __name__ == "__main__":
    main()
