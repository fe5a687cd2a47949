"""The ``celltrack`` command line: a thin layer over the library.

Commands: ``demo``, ``track CONFIG`` (``--image`` / ``--train-image`` / ``--annotations`` /
``--axes`` / ``--voxel-size`` / ``--preset`` replace the config's keys: train on one movie,
track another), ``config init`` (writes ``preset: auto``: CPU-sized networks on a machine
without CUDA; ``--cpu`` = ``--preset cpu``), ``evaluate GT PRED``, ``export IN OUT``.
Bad input (missing files, bad configs, bad data) prints one clear ``error:`` line and
exits with status 2; nothing is half-written and nothing existing is replaced without
``--force``. Tracks are read and written by :func:`celltrack.io.read_tracks`
and :func:`celltrack.io.write_tracks`; ``config init`` does not import torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from celltrack._version import __version__
from celltrack.errors import CelltrackError

if TYPE_CHECKING:
    from celltrack.config.pipeline import PipelineConfig

__all__ = ["build_parser", "cli_message", "main"]


#: Python spellings in library messages → what a CLI user changes, per command. Library
#: errors name keyword arguments; the CLI names the config key or the flag instead.
_CONFIG_WORDS: tuple[tuple[str, str], ...] = (
    (r"[Pp]ass overwrite=True \(CLI: --force\)", "the pipeline replaces only its own outputs"),
    (r"\(?pass voxel_size=\(z, y, x\)( in)? µm\)?", "set data.voxel_size_um: [z, y, x] (µm)"),
    (r"voxel_size=\(z, y, x\)( in µm)?", "data.voxel_size_um: [z, y, x] (µm)"),
    (r"(pass|give) axes=( \(e\.g\. axes='TZYX'\))?", "set data.axes (e.g. data.axes: TZYX)"),
    (r"pass axes=", "set data.axes"),
    (r"units='voxel'", "annotations in voxels"),
    (r"use_motion='never'", "use_motion: never"),
)
_FLAG_WORDS: tuple[tuple[str, str], ...] = (
    (r"[Pp]ass overwrite=True \(CLI: --force\)", "Pass --force"),
    (r"overwrite=True", "--force"),
    (r"\(?pass voxel_size=\(z, y, x\)( in)? µm\)?", "pass --voxel-size Z Y X (µm)"),
    (r"voxel_size=\(z, y, x\)( in µm)?", "--voxel-size Z Y X (µm)"),
    (r"shape=\(T, Z, Y, X\)( in voxels)?", "--shape T Z Y X (voxels)"),
    (r"pass format= \(one of", "pass --format (one of"),
    (r"format='ctc'", "--format ctc"),
)


def cli_message(message: str, words: Sequence[tuple[str, str]]) -> str:
    """``message`` with Python keyword advice replaced by config keys or flags.

    Parameters
    ----------
    message : str
        A library error message.
    words : sequence of (pattern, replacement)
        Regular expressions and what a CLI user should read instead.
    """
    for pattern, replacement in words:
        message = re.sub(pattern, replacement, message)
    return message


_T = TypeVar("_T")


def _cleaning_up(out: Path, run: Callable[[], _T]) -> _T:
    """Run ``run``; if it fails, remove ``out`` again when it was created empty by the run.

    Only folders that hold no file are removed: a failed run never deletes data.
    """
    existed = out.exists()
    try:
        return run()
    except BaseException:
        if not existed and out.is_dir() and not any(p.is_file() for p in out.rglob("*")):
            for folder in sorted(out.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                folder.rmdir()
            out.rmdir()
        raise


def _cmd_demo(args: argparse.Namespace) -> int:
    from celltrack.demo import run_demo

    def run() -> int:
        report = run_demo(
            args.out,
            seed=args.seed,
            n_frames=args.frames,
            quick=args.quick,
            method=args.method,
            progress=not args.quiet,
        )
        print(report.table())
        if args.quick:
            print(
                "\n--quick is a smoke test (tiny embryo, a few training steps): its scores "
                "say nothing about the method; run without --quick for the real demo"
            )
        print(f"\noutputs and figures in {Path(args.out).resolve()}")
        return 0

    return _cleaning_up(Path(args.out), run)


def _import_plugins(modules: Sequence[str]) -> None:
    """Import modules that register linkers of their own (``register_linker``)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise CelltrackError(
                f"cannot import plugin module '{name}' ({exc}); check the name and that it is "
                "on PYTHONPATH"
            ) from None


#: ``celltrack track`` flags that replace a ``data`` key of the config (flag → key).
_DATA_FLAGS = {
    "image": "image",
    "train_image": "train_image",
    "annotations": "annotations",
    "axes": "axes",
}


def _track_config(path: Path, args: argparse.Namespace) -> PipelineConfig:
    """The pipeline config in ``path`` with the keys the flags override."""
    from celltrack.config import config_from_dict, load_config
    from celltrack.config.pipeline import DataConfig, PipelineConfig

    config = load_config(path, PipelineConfig)
    overrides = {
        key: getattr(args, flag)
        for flag, key in _DATA_FLAGS.items()
        if getattr(args, flag, None) is not None
    }
    if args.voxel_size is not None:
        overrides["voxel_size_um"] = tuple(args.voxel_size)
    for flag in ("image", "train_image", "annotations"):
        value = overrides.get(flag)
        if value is not None and not Path(value).exists():
            raise CelltrackError(f"--{flag.replace('_', '-')} '{value}' does not exist")
    if args.preset is not None:
        config = config.model_copy(update={"preset": args.preset})
    if not overrides:
        return config
    data = config_from_dict({**config.data.model_dump(exclude_unset=True), **overrides}, DataConfig)
    return config.model_copy(update={"data": data})


def _cmd_track(args: argparse.Namespace) -> int:
    from celltrack.pipeline import Pipeline

    _import_plugins(args.plugin)
    config = Path(args.config)
    if not config.is_file():
        raise CelltrackError(
            f"config file '{config}' does not exist; write one with 'celltrack config init'"
        )
    pipeline = Pipeline(_track_config(config, args), args.out)
    result = _cleaning_up(pipeline.workdir, pipeline.run)
    print(
        f"status {result.link.status.value}: {result.tracks.num_nodes} nodes, "
        f"{result.tracks.num_edges} links, {result.tracks.divisions().size} divisions"
    )
    if result.scores is not None:
        print(result.scores)
    for name, path in result.outputs.items():
        print(f"{name}: {path}")
    return 0


def _cmd_config_init(args: argparse.Namespace) -> int:
    from celltrack.config.pipeline import PipelineConfig
    from celltrack.config.template import commented_yaml, short_yaml
    from celltrack.io.atomic import atomic_write_text

    path = Path(args.path)
    if path.exists() and not args.force:
        raise CelltrackError(f"'{path}' exists; pass --force to overwrite it")
    cfg = PipelineConfig(preset=args.preset or ("cpu" if args.cpu else "auto"))
    if args.full:  # the preset chooses detection and flow: shown commented out
        shown = PipelineConfig.cpu() if cfg.preset == "cpu" else PipelineConfig()
        text = commented_yaml(
            cfg,
            {"detection": shown.detection, "motion": shown.motion},
            preset=cfg.preset if cfg.preset != "auto" else "default (auto without CUDA: cpu)",
        )
    else:
        text = short_yaml(cfg)
    atomic_write_text(path, text)
    form = "every key" if args.full else "short form; --full writes every key"
    print(
        f"wrote {path} ({len(text.splitlines())} lines, {form}); edit data.image, data.axes, "
        "data.voxel_size_um and data.annotations, then run 'celltrack track "
        f"{path}'"
    )
    return 0


def _existing(*paths: str) -> list[Path]:
    out = [Path(p) for p in paths]
    for p in out:
        if not p.exists():
            raise CelltrackError(f"'{p}' does not exist")
    return out


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from celltrack.eval import evaluate, evaluate_ctc
    from celltrack.io import read_tracks

    gt, pred = _existing(args.gt, args.pred)
    if args.ctc:
        scores = evaluate_ctc(gt, pred)
    else:
        voxel = tuple(args.voxel_size) if args.voxel_size else None
        scores = evaluate(
            read_tracks(gt, voxel_size=voxel),
            read_tracks(pred, voxel_size=voxel),
            max_distance=args.max_distance,
            sparse_gt=args.sparse,
            division_tolerance=args.division_tolerance,
        )
    print(scores)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from celltrack.io import read_tracks, write_tracks

    (source,) = _existing(args.input)
    voxel = tuple(args.voxel_size) if args.voxel_size else None
    graph = read_tracks(source, voxel_size=voxel)
    out = write_tracks(
        graph,
        args.output,
        args.format,
        overwrite=args.force,
        shape=args.shape,
        voxel_size=voxel,
        radius_um=args.radius,
        ctc_layout=args.ctc_layout,
    )
    print(f"wrote {out} ({graph.num_nodes} nodes, {graph.num_edges} links)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``celltrack`` command."""
    parser = argparse.ArgumentParser(
        prog="celltrack",
        description="Cell lineages from 3D+t movies and sparse annotations.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--version", action="version", version=f"celltrack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole method on the synthetic embryo")
    demo.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and annotations")
    demo.add_argument("--frames", type=int, default=None, help="frames of the synthetic movie")
    demo.add_argument("--quick", action="store_true", help="tiny embryo, few training steps")
    demo.add_argument(
        "--method",
        choices=("elephant", "linajea"),
        default="elephant",
        help="models trained from the annotations: ELEPHANT's ellipsoid detector and backward "
        "flow (default), or Linajea's cell indicator and movement vectors",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)

    track = sub.add_parser("track", help="run the pipeline on your data from a config file")
    track.add_argument("config", help="YAML/TOML/JSON pipeline config (see 'config init')")
    track.add_argument("--out", default=None, help="output folder (default: config's)")
    track.add_argument("--image", default=None, metavar="PATH", help="movie to track (data.image)")
    track.add_argument(
        "--train-image",
        default=None,
        metavar="PATH",
        help="movie the annotations are on, to train on (data.train_image; default: --image)",
    )
    track.add_argument(
        "--annotations", default=None, metavar="PATH", help="annotations (data.annotations)"
    )
    track.add_argument("--axes", default=None, help="axes of the movie files, e.g. TYX (data.axes)")
    track.add_argument(
        "--voxel-size",
        type=float,
        nargs=3,
        metavar=("Z", "Y", "X"),
        help="voxel size in µm (data.voxel_size_um)",
    )
    track.add_argument(
        "--preset",
        choices=["auto", "default", "cpu"],
        default=None,
        help="network sizes (preset): auto = CPU presets without CUDA",
    )
    track.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (e.g. one that registers a linker of its own); repeatable",
    )
    track.set_defaults(func=_cmd_track)

    config = sub.add_parser("config", help="configuration files")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    init = config_sub.add_parser("init", help="write a short commented config (--full: every key)")
    init.add_argument("path", nargs="?", default="celltrack.yaml", help="where to write it")
    init.add_argument(
        "--preset",
        choices=["auto", "default", "cpu"],
        default=None,
        help="network sizes (default auto: the CPU presets on a machine without CUDA)",
    )
    init.add_argument("--cpu", action="store_true", help="same as --preset cpu")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.add_argument("--full", action="store_true", help="write every key with its description")
    init.set_defaults(func=_cmd_config_init)

    ev = sub.add_parser("evaluate", help="score predicted tracks against ground truth")
    ev.add_argument("gt", help="ground truth: GEFF, CSV/JSON, or a CTC folder")
    ev.add_argument("pred", help="prediction: GEFF, CSV/JSON, or a CTC folder")
    ev.add_argument("--ctc", action="store_true", help="CTC folders with masks (official rule)")
    ev.add_argument("--max-distance", type=float, default=4.0, help="matching distance (µm)")
    ev.add_argument("--division-tolerance", type=int, default=1, help="frames (default 1)")
    ev.add_argument("--sparse", action="store_true", help="ground truth is sparse")
    ev.add_argument(
        "--voxel-size",
        type=float,
        nargs=3,
        metavar=("Z", "Y", "X"),
        help="voxel size (µm) for CTC folders read as point graphs",
    )
    ev.set_defaults(func=_cmd_evaluate)

    ex = sub.add_parser(
        "export", help="convert tracks between GEFF, CTC, TrackMate XML, CSV and JSON"
    )
    ex.add_argument("input", help="GEFF, CSV/JSON, TrackMate XML or CTC folder")
    ex.add_argument(
        "output", help="destination (.geff, .xml, .csv, .json or a folder with --format ctc)"
    )
    # the formats of celltrack.io.tracks.WRITE_FORMATS (spelt out: the CLI imports lightly)
    ex.add_argument(
        "--format", choices=["geff", "ctc", "trackmate", "csv", "json"], default=None
    )
    ex.add_argument(
        "--shape",
        type=int,
        nargs=4,
        metavar=("T", "Z", "Y", "X"),
        help="movie shape (voxels) for CTC masks",
    )
    ex.add_argument(
        "--voxel-size", type=float, nargs=3, metavar=("Z", "Y", "X"), help="voxel size (µm)"
    )
    ex.add_argument(
        "--radius",
        type=float,
        default=None,
        help="sphere radius (µm) of CTC masks and TrackMate spots",
    )
    ex.add_argument(
        "--ctc-layout",
        choices=("res", "gt"),
        default="res",
        help="CTC folder layout: 'res' = a result (res_track.txt, maskTTT.tif), 'gt' = ground "
        "truth (man_track.txt, man_trackTTT.tif; write it to .../01_GT/TRA to evaluate against)",
    )
    ex.add_argument(
        "--force", action="store_true", help="replace an existing output (file or folder)"
    )
    ex.set_defaults(func=_cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``celltrack`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    words = _CONFIG_WORDS if args.command in ("track", "demo") else _FLAG_WORDS
    try:
        return int(args.func(args))
    except (CelltrackError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {cli_message(str(exc), words)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
