"""Generate the default synthetic embryo and write its movie and ground-truth lineage.

Usage::

    python examples/generate_synthetic.py --out out/ [--frames 20] [--seed 0] [--preset default]

Writes ``OUT/image.zarr`` (or ``OUT/image.tif`` when :mod:`celltrack.io.images` is not
available), the ground truth ``OUT/gt.geff`` (GEFF zarr store; ``OUT/gt_nodes.csv`` +
``OUT/gt_edges.csv`` when :mod:`celltrack.io.geff_io` is not available) and the generator
config ``OUT/synth_config.yaml``, then prints a short summary.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np

from celltrack.config import save_config
from celltrack.io.atomic import atomic_path, atomic_write_text
from celltrack.synth import SynthConfig, make_embryo

PRESETS = {
    "default": SynthConfig,
    "tiny": SynthConfig.tiny,
    "large_motion": SynthConfig.large_motion,
}


def _optional(module: str, name: str):
    """``module.name`` if that module exists and defines it, else None."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def write_movie(image: np.ndarray, voxel_size: np.ndarray, out: Path) -> Path:
    """Write the (T, Z, Y, X) movie with celltrack's writer, or a TIFF as a fallback."""
    write_image = _optional("celltrack.io.images", "write_image")
    if write_image is not None:
        path = out / "image.zarr"
        write_image(image, path, voxel_size=voxel_size, overwrite=True)
        return path
    import tifffile

    path = out / "image.tif"
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            image,
            imagej=True,
            resolution=(1.0 / voxel_size[2], 1.0 / voxel_size[1]),
            metadata={"axes": "TZYX", "spacing": float(voxel_size[0]), "unit": "um"},
        )
    return path


def write_truth(gt, out: Path) -> list[Path]:
    """Write the ground-truth graph as GEFF, or as two CSV files as a fallback."""
    write_geff = _optional("celltrack.io.geff_io", "write_geff")
    if write_geff is not None:
        return [write_geff(gt, out / "gt.geff", overwrite=True)]
    cov = gt.nodes["covariance"].reshape(-1, 9)
    node_table = np.column_stack(
        [gt.ids, gt.t, gt.positions, gt.nodes["radius"], cov]
    )
    header = "id,t,z_um,y_um,x_um,radius_um," + ",".join(
        f"cov_{a}{b}" for a in "zyx" for b in "zyx"
    )
    nodes_path, edges_path = out / "gt_nodes.csv", out / "gt_edges.csv"
    fmt = ["%d", "%d"] + ["%.6f"] * (node_table.shape[1] - 2)
    with atomic_path(nodes_path) as tmp:
        np.savetxt(tmp, node_table, delimiter=",", header=header, comments="", fmt=fmt)
    edge_lines = ["source,target"] + [
        f"{s},{t}" for s, t in zip(gt.edges["source"].tolist(), gt.edges["target"].tolist())
    ]
    atomic_write_text(edges_path, "\n".join(edge_lines) + "\n")
    return [nodes_path, edges_path]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--frames", type=int, default=None, help="number of frames T")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="default", help="SynthConfig preset"
    )
    args = parser.parse_args(argv)

    overrides: dict[str, int] = {"seed": args.seed}
    if args.frames is not None:
        overrides["n_frames"] = args.frames
    cfg = PRESETS[args.preset](**overrides)
    start = time.perf_counter()
    data = make_embryo(cfg, progress=True)
    elapsed = time.perf_counter() - start

    args.out.mkdir(parents=True, exist_ok=True)
    written = [write_movie(data.image, data.voxel_size, args.out)]
    written += write_truth(data.gt, args.out)
    written.append(save_config(cfg, args.out / "synth_config.yaml"))

    gt = data.gt
    per_frame = np.bincount(gt.t, minlength=cfg.n_frames)
    ends = np.count_nonzero((gt.out_degree() == 0) & (gt.t < cfg.n_frames - 1))
    print(f"generated in {elapsed:.2f} s: {data}")
    print(
        f"  nuclei per frame {per_frame.min()}..{per_frame.max()}, "
        f"{gt.divisions().size} divisions, {ends} tracks leave the field of view"
    )
    print(f"  intensity range {int(data.image.min())}..{int(data.image.max())} counts")
    for path in written:
        print(f"  wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
