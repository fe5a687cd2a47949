"""``celltrack demo``: the whole method on the embedded synthetic embryo, in minutes on a CPU.

Generates the synthetic default, draws sparse annotations the way a person would (10
nuclei in one frame plus a few validated links), trains detection (prior + annotations)
and backward flow, detects nuclei in every frame, links the spots with all three linkers
through the link stage (:func:`celltrack.solve.stage.link_stage`: approved links pinned),
and prints a side-by-side score table with the time of every stage (a linker's time
includes building its graph).
Outputs (GEFF, CTC, CSV) and figures go to the output folder.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.config.indicator import IndicatorConfig
from celltrack.config.movement import MovementConfig
from celltrack.errors import InvalidInputError
from celltrack.eval import TrackingScores
from celltrack.io.atomic import atomic_write_text
from celltrack.io.geff_io import write_geff
from celltrack.pipeline import OutputConfig, Pipeline, PipelineConfig
from celltrack.solve import FlowNNConfig, GreedyConfig, ILPConfig
from celltrack.solve.stage import field_of_view, link_stage
from celltrack.synth import SynthConfig, make_embryo, sample_annotations

__all__ = ["DemoReport", "run_demo"]

log = logging.getLogger(__name__)

#: ILP costs for the synthetic embryo's scale (nuclei ≈ 4 µm, steps of 1–3 µm per frame):
#: the defaults were tuned on ASTEC, whose motion is larger, so edges are priced ≈ 3× higher
#: here. Chosen on synthetic seed 0's candidate graph (Linajea error sum 159 vs greedy's 296).
DEMO_ILP = ILPConfig(
    node_offset=-2.0, edge_weight=0.2, appear_cost=1.5, disappear_cost=1.5, split_cost=0.0
)

#: Linkers compared by the demo, in table order.
DEMO_LINKERS = {"greedy": GreedyConfig(), "flow_nn": FlowNNConfig(), "ilp": DEMO_ILP}


@dataclass
class DemoReport:
    """What the demo measured.

    Attributes
    ----------
    scores : dict of str to TrackingScores
        Scores per linker against the synthetic ground truth.
    link_seconds : dict of str to float
        Linking time per linker (s).
    stage_seconds : dict of str to float
        Time per pipeline stage (s).
    outputs : dict of str to Path
        Files written.
    """

    scores: dict[str, TrackingScores]
    link_seconds: dict[str, float]
    stage_seconds: dict[str, float]
    outputs: dict[str, Path] = field(default_factory=dict)

    def table(self) -> str:
        """Side-by-side score table (one column per linker)."""
        names = list(self.scores)
        rows: list[tuple[str, list[str]]] = [
            ("DET", [f"{self.scores[n].det:.3f}" for n in names]),
            ("TRA", [f"{self.scores[n].tra:.3f}" for n in names]),
            ("LNK", [f"{self.scores[n].lnk:.3f}" for n in names]),
            ("division F1", [_division_f1(self.scores[n]) for n in names]),
            ("error-free tracks (L=5)", [_error_free(self.scores[n], 5) for n in names]),
            ("error-free tracks (L=10)", [_error_free(self.scores[n], 10) for n in names]),
            ("linking time (s)", [f"{self.link_seconds[n]:.2f}" for n in names]),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [" " * width + "  " + "  ".join(f"{n:>9}" for n in names)]
        lines += [
            f"{label:<{width}}  " + "  ".join(f"{v:>9}" for v in vals) for label, vals in rows
        ]
        lines.append("")
        lines.append(
            "time per stage (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in self.stage_seconds.items())
        )
        return "\n".join(lines)


def _division_f1(scores: TrackingScores) -> str:
    div = scores.divisions
    return "n/a" if div is None or not np.isfinite(div.f1) else f"{div.f1:.3f}"


def _error_free(scores: TrackingScores, length: int) -> str:
    lin = scores.linajea
    if lin is None:
        return "n/a"
    lengths = np.asarray(lin.segment_lengths)
    fractions = np.asarray(lin.error_free_fraction)
    hit = np.flatnonzero(lengths == length)
    if hit.size == 0 or not np.isfinite(fractions[hit[0]]):
        return "n/a"
    return f"{fractions[hit[0]]:.3f}"


#: The demo's methods: the models each trains (the linkers are the same).
DEMO_METHODS = ("elephant", "linajea")


def demo_config(out: Path, quick: bool, method: str = "elephant") -> PipelineConfig:
    """The demo's pipeline settings: CPU presets, all output formats.

    ``method`` 'elephant' trains ELEPHANT's ellipsoid detector and backward flow,
    'linajea' Linajea's cell indicator and movement vectors, from the same annotations.
    """
    output = OutputConfig(directory=str(out), formats=("geff", "ctc", "csv"))
    if method == "linajea":
        return one_torch_thread(linajea_demo_config(output, quick))
    if method != "elephant":
        raise InvalidInputError(f"method must be one of {', '.join(DEMO_METHODS)}; got {method!r}")
    return one_torch_thread(_elephant_demo_config(output, quick))


def one_torch_thread(cfg: PipelineConfig) -> PipelineConfig:
    """``cfg`` with every network trained and run on one torch thread.

    The demo's scores then do not depend on how busy the machine is: torch's sums are
    reduced in another order with another thread count, which moves division F1 by up to
    ±0.1 (and the time barely changes on 2 cores, where the second thread is often busy).
    """
    sections = {}
    for name in ("detection", "motion"):
        section = getattr(cfg, name)
        parts = {
            part: getattr(section, part).model_copy(update={"num_threads": 1})
            for part in ("train", "predict")
            if hasattr(getattr(section, part, None), "num_threads")
        }
        sections[name] = section.model_copy(update=parts)
    return cfg.model_copy(update=sections)


def _elephant_demo_config(output: OutputConfig, quick: bool) -> PipelineConfig:
    """ELEPHANT's models with the demo's CPU recipe."""
    cfg = PipelineConfig.cpu(linker=DEMO_ILP, output=output)
    train = cfg.detection.train.model_copy(update={"epochs": 30})
    # the CPU recipe of the detection benchmark: voxels darker than 15 % of the frame's
    # intensity range are background; without it the sparse labels leave the background
    # unlabelled and the network fires on it (thousands of false detections)
    labels = cfg.detection.labels.model_copy(update={"background_threshold": 0.15})
    cfg = cfg.model_copy(
        update={"detection": cfg.detection.model_copy(update={"train": train, "labels": labels})}
    )
    if quick:  # for tests: fewer training steps
        det = cfg.detection
        det = det.model_copy(
            update={"train": det.train.model_copy(update={"epochs": 1, "prior_crops": 2})}
        )
        flow = cfg.motion.model_copy(
            update={"train": cfg.motion.train.model_copy(update={"epochs": 2})}
        )
        cfg = cfg.model_copy(update={"detection": det, "motion": flow})
    return cfg


def linajea_demo_config(output: OutputConfig, quick: bool) -> PipelineConfig:
    """Linajea's models on the demo: the cell indicator and movement vectors (CPU presets)."""
    detection, motion = IndicatorConfig.cpu(), MovementConfig.cpu()
    if quick:  # for tests: a few training steps
        detection = detection.model_copy(
            update={"train": detection.train.model_copy(update={"epochs": 2})}
        )
        motion = motion.model_copy(
            update={"train": motion.train.model_copy(update={"epochs": 2, "crops_per_frame": 8})}
        )
    return PipelineConfig(
        detection=detection, motion=motion, linker=DEMO_ILP, output=output, preset="cpu"
    )


def run_demo(
    out: str | Path = "demo-out",
    *,
    seed: int = 0,
    n_frames: int | None = None,
    quick: bool = False,
    method: str = "elephant",
    progress: bool = True,
) -> DemoReport:
    """Run the demo and return its report (also printed by the CLI).

    Parameters
    ----------
    out : str or Path
        Output folder (created).
    seed : int
        Seed of the synthetic embryo and of the sampled annotations.
    n_frames : int, optional
        Frames of the synthetic movie (default: the synthetic default's).
    quick : bool
        Tiny embryo and few training steps (seconds): a smoke test for the software, whose
        scores mean nothing (the CLI says so).
    method : {'elephant', 'linajea'}
        The models trained from the annotations: ELEPHANT's ellipsoid detector and
        backward flow, or Linajea's cell indicator and movement vectors.
    progress : bool
        Show progress bars.
    """
    out = Path(out)
    start = time.perf_counter()
    synth = SynthConfig.tiny(seed=seed) if quick else SynthConfig(seed=seed)
    if n_frames is not None:
        synth = synth.model_copy(update={"n_frames": int(n_frames)})
    data = make_embryo(synth)
    stage_seconds = {"synthesize": time.perf_counter() - start}
    annotations = sample_annotations(
        data.gt, n_nuclei=5 if quick else 10, n_links=6 if quick else 20, rng=seed
    )
    cfg = demo_config(out, quick, method).model_copy(update={"progress": progress})
    pipeline = Pipeline(cfg, out)
    images, voxel_size = pipeline.movie(data.image, data.voxel_size)
    spots = pipeline.spots_for(images, voxel_size, annotations)
    stage_seconds.update(pipeline.timings)
    candidates = cfg.candidates.model_copy(
        update={"field_of_view_um": field_of_view(images.shape, voxel_size)}
    )

    scores: dict[str, TrackingScores] = {}
    link_seconds: dict[str, float] = {}
    results = {}
    for name, linker_cfg in DEMO_LINKERS.items():
        pipeline._say(f"== link: linker kind {name} (scored against the synthetic truth)")
        t0 = time.perf_counter()
        result = link_stage(spots, annotations, candidates=candidates, linker=linker_cfg)
        link_seconds[name] = time.perf_counter() - t0
        pipeline._say(f"   {name}: {result.status.value} in {link_seconds[name]:.1f} s")
        results[name] = result
        write_geff(result.graph, out / f"tracks_{name}.geff", overwrite=True)
        scores[name] = pipeline.evaluate(data.gt, result.graph)
    best = results["ilp"]
    outputs = pipeline.export(best.graph, tuple(images.shape), voxel_size)
    outputs.update(pipeline.figures(images, voxel_size, best.graph))
    outputs.update(_score_figures(scores, out))
    report = DemoReport(scores, link_seconds, stage_seconds, outputs)
    summary = {
        name: {**s.to_dict(), "link_seconds": link_seconds[name]} for name, s in scores.items()
    }
    summary["stage_seconds"] = stage_seconds
    atomic_write_text(out / "demo_scores.json", json.dumps(summary, indent=2, default=_jsonable))
    atomic_write_text(out / "demo_table.txt", report.table() + "\n")
    return report


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _score_figures(scores: dict[str, TrackingScores], out: Path) -> dict[str, Path]:
    from celltrack.eval.plots import plot_error_counts, plot_error_free_segments
    from celltrack.viz import save_figure

    return {
        "figure_error_free": save_figure(
            plot_error_free_segments(scores), out / "figures/error_free_tracks.png"
        ),
        "figure_errors": save_figure(plot_error_counts(scores), out / "figures/errors.png"),
    }
