"""Train a detector on your own movie (TIFF) and sparse annotations (CSV), then track.

Usage::

    python examples/train_own_data.py --images movie.tif --annotations spots.csv \\
        --voxel-size 2.0 0.5 0.5 --out results/ [--epochs 10] [--axes TZYX]
    python examples/train_own_data.py --demo --out results/ [--tiny]

The annotation CSV has one row per nucleus: ``id, t, z, y, x`` in µm (``--units voxel``
for voxel coordinates) and optionally ``radius`` or covariance columns and ``tag`` (see
:func:`celltrack.io.annotations.read_annotations`); links go in ``spots_links.csv``
(``source, target``). ``--demo`` first writes such a pair of files from a synthetic
embryo, so you can see the expected format (``DEMO/movie.tif``, ``DEMO/spots.csv``).

Steps (plain stage API, no project folder): read the movie lazily and the annotations →
self-supervised prior → batch training over every annotated frame (checkpoint after each
epoch, atomic) → detection in every frame → candidate graph → linking → GEFF and Cell
Tracking Challenge outputs. With ``--demo`` the result is scored against the truth;
``--demo --tiny`` (3 frames, 40 training steps, ≈ 20 s of CPU) still finds ≥ 80 % of the
nuclei (DET ≥ 0.8) and warns when a run does not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def write_demo(folder: Path, tiny: bool, seed: int = 0):
    """A synthetic movie as TIFF and sparse annotations as CSV; returns the true lineage."""
    import tifffile

    from celltrack.io.annotations import write_annotations
    from celltrack.synth import SynthConfig, make_embryo, sample_annotations

    cfg = SynthConfig.tiny(n_frames=3, seed=seed) if tiny else SynthConfig(n_frames=10, seed=seed)
    data = make_embryo(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(
        folder / "movie.tif", data.image, imagej=True,
        resolution=(1 / data.voxel_size[2], 1 / data.voxel_size[1]),
        metadata={"axes": "TZYX", "spacing": float(data.voxel_size[0]), "unit": "um"},
    )
    frames = [0, 1] if tiny else [0, 4, 8]
    ann = sample_annotations(data.gt, n_nuclei=6, frames=frames, n_links=4, rng=seed)
    write_annotations(ann, folder / "spots.csv")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="movie: TIFF file, TIFF folder or Zarr")
    parser.add_argument("--annotations", type=Path, help="annotated spots (.csv / .json / .xml)")
    parser.add_argument("--voxel-size", type=float, nargs=3, metavar=("Z", "Y", "X"),
                        help="voxel size in µm (default: from the file's metadata)")
    parser.add_argument("--axes", default=None, help="axes of the TIFF, e.g. TZYX or TYX")
    parser.add_argument("--units", choices=("um", "voxel"), default="um")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: temp)")
    parser.add_argument("--epochs", type=int, default=10, help="batch training epochs")
    parser.add_argument("--demo", action="store_true", help="make a synthetic TIFF + CSV first")
    parser.add_argument(
        "--tiny", action="store_true", help="3-frame demo, short training (≈ 20 s CPU)"
    )
    args = parser.parse_args(argv)
    if not args.demo and (args.images is None or args.annotations is None):
        parser.error("give --images and --annotations, or --demo")

    # torch is imported only here, after the arguments are checked
    from celltrack.detect import DetectionConfig, detect, train_detection
    from celltrack.graph.candidates import CandidateConfig
    from celltrack.io import as_movie, write_tracks
    from celltrack.io.annotations import read_annotations
    from celltrack.solve.stage import link_stage

    out = args.out or Path(tempfile.mkdtemp(prefix="celltrack-own-data-"))
    out.mkdir(parents=True, exist_ok=True)
    data = None
    if args.demo:
        data = write_demo(out / "demo", args.tiny)
        args.images, args.annotations = out / "demo" / "movie.tif", out / "demo" / "spots.csv"
        print(f"demo data written to {out / 'demo'}: {data}")
    start = time.perf_counter()

    movie = as_movie(args.images, voxel_size=args.voxel_size, axes=args.axes)
    vs = movie.voxel_size
    annotations = read_annotations(args.annotations, voxel_size=vs, units=args.units)
    print(f"movie {movie.shape} (T, Z, Y, X), voxel size {vs.tolist()} µm; {annotations}")

    cfg = DetectionConfig.cpu()
    train = {"epochs": args.epochs}
    if args.tiny:
        # a short prior and 40 optimisation steps: still DET ≥ 0.8 on the tiny demo
        train = {"epochs": 8, "prior_crops": 4}
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=train)})
    if args.demo:  # the synthetic movie's background is dark: label it from intensity
        cfg = cfg.model_copy(
            update={"labels": cfg.labels.model_copy(update={"background_threshold": 0.15})}
        )
    # an interrupted run resumes from the checkpoint; at the end it holds the finished model
    trained = train_detection(movie, annotations, vs, cfg, checkpoint=out / "detection.pt",
                              resume=True)
    losses = trained.history["loss"]
    print(f"trained {len(losses)} steps, last loss {losses[-1]:.3f} -> {out / 'detection.pt'}")

    spots = detect(trained.model, movie, cfg=cfg, annotations=annotations)
    print(f"detected {spots.num_nodes} spots in {movie.shape[0]} frames")

    # the link stage: approved annotation links are kept and pinned
    result = link_stage(spots, annotations, candidates=CandidateConfig(max_distance_um=8.0),
                        linker="greedy")
    tracks = result.graph
    print(f"linked: {tracks.num_edges} links, status {result.status.value}")

    write_tracks(tracks, out / "tracks.geff", overwrite=True)
    write_tracks(tracks, out / "01_RES", "ctc", overwrite=True, shape=movie.shape, voxel_size=vs)
    print(f"wrote {out / 'tracks.geff'} and {out / '01_RES'} "
          f"({time.perf_counter() - start:.1f} s)")
    if data is not None:
        from celltrack.eval import evaluate

        scores = evaluate(data.gt, tracks, max_distance=3.0)
        print(f"against the truth: DET {scores.det:.3f}, TRA {scores.tra:.3f}, "
              f"LNK {scores.lnk:.3f}")
        if scores.det < 0.8:
            print(f"WARNING: DET {scores.det:.3f} < 0.8: the detector did not learn enough; "
                  "train longer (--epochs) or annotate more nuclei")
    return 0


if __name__ == "__main__":
    sys.exit(main())
