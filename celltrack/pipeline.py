"""The whole method as one object: images + annotations → detection → flow → candidate
graph → linking → outputs → scores.

:class:`PipelineConfig` nests every stage's config. :class:`Pipeline` runs the stages one
by one or all together (:meth:`Pipeline.run`); each stage saves its result in the work
folder with a fingerprint of everything it depends on, so a later run reuses what is
still valid and redoes only what changed. ``provenance.json`` records the config, the
celltrack version and, per stage, its fingerprint, time and whether it was reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from celltrack._version import __version__
from celltrack.config import Config, load_config
from celltrack.detect import DetectionConfig
from celltrack.errors import ConfigError, InvalidInputError
from celltrack.eval import TrackingScores, evaluate
from celltrack.flow import FlowConfig
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph
from celltrack.graph.candidates import CandidateConfig, build_candidates, pins_from_tags
from celltrack.io.atomic import atomic_write_text
from celltrack.io.geff_io import read_geff, write_geff
from celltrack.solve import BlockwiseConfig, ILPConfig, LinkerConfig, LinkResult, make_linker

__all__ = [
    "DataConfig",
    "EvaluationConfig",
    "OutputConfig",
    "Pipeline",
    "PipelineConfig",
    "PipelineResult",
]

log = logging.getLogger(__name__)


class DataConfig(Config):
    """Where the inputs are (every path optional: arrays can be passed to :meth:`Pipeline.run`)."""

    image: str | None = Field(
        None,
        description="Movie: multi-page/ImageJ TIFF, folder of per-frame TIFFs, Zarr or OME-Zarr.",
    )
    voxel_size_um: tuple[float, float, float] | None = Field(
        None, description="Voxel size (z, y, x) in µm; overrides the image metadata."
    )
    annotations: str | None = Field(
        None, description="Sparse annotations: CSV, JSON, TrackMate/MaMuT XML or GEFF (µm)."
    )
    ground_truth: str | None = Field(
        None, description="Ground truth for scoring: GEFF, CTC folder, CSV or JSON (µm)."
    )


class OutputConfig(Config):
    """What the pipeline writes."""

    directory: str = Field("celltrack-out", description="Work and output folder.")
    formats: tuple[Literal["geff", "ctc", "csv"], ...] = Field(
        ("geff", "csv"), description="Formats of the final tracks: GEFF, CTC folder, CSV."
    )
    ctc_radius_um: float | None = Field(
        None,
        gt=0,
        description="Sphere radius (µm) painted in CTC masks; default: each spot's ellipsoid.",
    )
    figures: bool = Field(True, description="Write PNG figures (projection, lineages, losses).")


class EvaluationConfig(Config):
    """How tracks are scored against ground truth."""

    max_distance_um: float = Field(
        4.0, gt=0, description="Matching distance between GT and predicted nodes (µm)."
    )
    division_tolerance: int = Field(1, ge=0, description="Frames a division may be off by.")
    sparse_gt: bool = Field(False, description="Ground truth annotates only some cells.")


class PipelineConfig(Config):
    """Root configuration: one nested config per stage."""

    data: DataConfig = Field(default_factory=DataConfig, description="Inputs.")
    detection: DetectionConfig = Field(
        default_factory=DetectionConfig, description="Detection stage."
    )
    flow: FlowConfig = Field(default_factory=FlowConfig, description="Backward-flow stage.")
    use_flow: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Train and use backward flow: 'auto' when ≥ min_flow_links approved links.",
    )
    min_flow_links: int = Field(5, ge=1, description="Approved links needed for flow in 'auto'.")
    candidates: CandidateConfig = Field(
        default_factory=CandidateConfig, description="Candidate graph."
    )
    linker: LinkerConfig = Field(  # type: ignore[valid-type]
        default_factory=ILPConfig, description="Linker, chosen by 'kind': greedy, flow_nn, ilp."
    )
    blockwise: BlockwiseConfig | None = Field(
        None, description="Solve block-wise (large graphs); None solves globally."
    )
    output: OutputConfig = Field(default_factory=OutputConfig, description="Outputs.")
    evaluation: EvaluationConfig = Field(
        default_factory=EvaluationConfig, description="Scoring against ground truth."
    )
    progress: bool = Field(True, description="Show progress bars.")

    @classmethod
    def cpu(cls, **overrides: Any) -> PipelineConfig:
        """Small networks and crops for a laptop CPU (the demo's settings)."""
        return cls(**{"detection": DetectionConfig.cpu(), "flow": FlowConfig.cpu(), **overrides})


@dataclass
class PipelineResult:
    """Everything :meth:`Pipeline.run` produced.

    Attributes
    ----------
    tracks : TrackGraph
        The lineage forest (µm).
    link : LinkResult
        The linker's result (status, objective, timings).
    spots : TrackGraph
        All detections (with ``parent_z/y/x`` when flow ran).
    scores : TrackingScores or None
        Scores against ground truth, when given.
    outputs : dict of str to Path
        Written files by format.
    timings : dict of str to float
        Seconds per stage.
    histories : dict of str to list of float
        Training losses per model.
    """

    tracks: TrackGraph
    link: LinkResult
    spots: TrackGraph
    scores: TrackingScores | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    histories: dict[str, list[float]] = field(default_factory=dict)


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.shape, part.dtype.str)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, TrackGraph):
            for columns in (part.nodes, part.edges):
                for name in sorted(columns):
                    col = np.asarray(columns[name])
                    h.update(name.encode())
                    h.update(col.astype(str).tobytes() if col.dtype.kind in "OU" else col.tobytes())
        elif isinstance(part, Config):
            h.update(part.model_dump_json().encode())
        else:
            h.update(json.dumps(part, default=str, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _image_digest(images: Any) -> str:
    shape = tuple(int(s) for s in images.shape)
    first, last = np.asarray(images[0]), np.asarray(images[shape[0] - 1])
    return _digest(list(shape), first, last)


class Pipeline:
    """Run celltrack's stages with caching in a work folder.

    Parameters
    ----------
    config : PipelineConfig, str or Path
        The configuration, or a YAML/TOML/JSON file holding one.
    workdir : str or Path, optional
        Work and output folder (default ``config.output.directory``).

    Examples
    --------
    >>> from celltrack.synth import SynthConfig, make_embryo, sample_annotations
    >>> data = make_embryo(SynthConfig.tiny())
    >>> ann = sample_annotations(data.gt, n_nuclei=5, n_links=5, seed=0)
    >>> result = Pipeline(PipelineConfig.cpu(), "out").run(  # doctest: +SKIP
    ...     data.image, ann, voxel_size=data.voxel_size, ground_truth=data.gt)
    """

    def __init__(self, config: PipelineConfig | str | Path, workdir: str | Path | None = None):
        if isinstance(config, (str, Path)):
            config = load_config(config, PipelineConfig)
        if not isinstance(config, PipelineConfig):
            raise ConfigError(f"Pipeline needs a PipelineConfig, got {type(config).__name__}")
        self.config = config
        self.workdir = Path(workdir if workdir is not None else config.output.directory)
        self.timings: dict[str, float] = {}
        self.histories: dict[str, list[float]] = {}
        self._stages: dict[str, dict[str, Any]] = {}
        self.spots: TrackGraph | None = None

    # ------------------------------------------------------------------ bookkeeping
    def _path(self, name: str) -> Path:
        return self.workdir / name

    def _cached(self, artifact: str, fingerprint: str) -> bool:
        stamp = self._path(artifact + ".stamp.json")
        if not (self._path(artifact).exists() and stamp.is_file()):
            return False
        return json.loads(stamp.read_text()).get("fingerprint") == fingerprint

    def _stamp(self, stage: str, artifact: str, fingerprint: str, seconds: float, reused: bool):
        if not reused:
            atomic_write_text(
                self._path(artifact + ".stamp.json"), json.dumps({"fingerprint": fingerprint})
            )
        self.timings[stage] = seconds
        self._stages[stage] = {"fingerprint": fingerprint, "seconds": seconds, "reused": reused}
        self._write_provenance()

    def _write_provenance(self) -> None:
        payload = {
            "celltrack_version": __version__,
            "config": self.config.model_dump(mode="json"),
            "stages": self._stages,
        }
        atomic_write_text(self._path("provenance.json"), json.dumps(payload, indent=2))

    # ------------------------------------------------------------------ inputs
    def load_inputs(self) -> tuple[Any, np.ndarray, TrackGraph | None, TrackGraph | None]:
        """Open the movie, annotations and ground truth named in ``config.data``.

        Returns
        -------
        images : ImageSeries, voxel_size : ndarray (3,), annotations, ground_truth
        """
        from celltrack.io.images import read_image

        data = self.config.data
        if data.image is None:
            raise InvalidInputError(
                "config.data.image is not set: give the movie's path, or pass arrays to run()"
            )
        images = read_image(data.image, voxel_size=data.voxel_size_um)
        annotations = _read_graph(data.annotations) if data.annotations else None
        gt = _read_graph(data.ground_truth, images.voxel_size) if data.ground_truth else None
        return images, np.asarray(images.voxel_size), annotations, gt

    # ------------------------------------------------------------------ stages
    def train_detection(self, images: Any, voxel_size: Any, annotations: TrackGraph | None):
        """Prior training, then batch training from reviewed annotations (if any).

        Saves ``models/detection.pt``; reused when images, annotations and the
        detection config are unchanged.
        """
        from celltrack.detect import DetectionTrainer, build_model, load_model, save_model

        cfg = self.config.detection
        fp = _digest("detection", cfg, _image_digest(images), annotations, list(voxel_size))
        artifact = "models/detection.pt"
        start = time.perf_counter()
        if self._cached(artifact, fp):
            model, meta = load_model(self._path(artifact))
            self.histories["detection"] = list(meta.get("loss", []))
            self._stamp("train_detection", artifact, fp, time.perf_counter() - start, True)
            return model
        model = build_model(cfg.model, voxel_size)
        trainer = DetectionTrainer(model, cfg, voxel_size=voxel_size)
        trainer.prior(images, progress=self.config.progress)
        reviewed = _reviewed(annotations)
        if reviewed is not None and reviewed.num_nodes:
            trainer.batch(images, reviewed, progress=self.config.progress)
        losses = [float(v) for v in trainer.history["loss"]]
        self.histories["detection"] = losses
        save_model(self._path(artifact), model, meta={"loss": losses, "fingerprint": fp})
        self._stamp("train_detection", artifact, fp, time.perf_counter() - start, False)
        return model

    def detect(self, images: Any, voxel_size: Any, model: Any, annotations: TrackGraph | None):
        """Detect nuclei in every frame; reviewed annotations are kept (tags re-checked)."""
        from celltrack.detect import detect

        fp = _digest("detect", self._stages["train_detection"]["fingerprint"], annotations)
        return self._graph_stage(
            "detect",
            "spots.geff",
            fp,
            lambda: detect(
                model,
                images,
                cfg=self.config.detection,
                voxel_size=voxel_size,
                annotations=_reviewed(annotations),
                progress=self.config.progress,
            ),
        )

    def wants_flow(self, annotations: TrackGraph | None) -> bool:
        """Whether the flow stage runs (see ``config.use_flow``)."""
        mode = self.config.use_flow
        if mode != "auto":
            return mode == "always"
        return _approved_links(annotations) >= self.config.min_flow_links

    def train_flow(self, images: Any, voxel_size: Any, annotations: TrackGraph | None):
        """Train the backward-flow model from approved links (``models/flow.pt``)."""
        from celltrack.flow import load_flow_model, train_flow

        n_links = _approved_links(annotations)
        if annotations is None or n_links == 0:
            raise InvalidInputError(
                "flow training needs approved links (edge column 'approved'); annotate a few "
                "links or set use_flow='never'"
            )
        cfg = self.config.flow
        fp = _digest("flow", cfg, _image_digest(images), annotations, list(voxel_size))
        artifact = "models/flow.pt"
        start = time.perf_counter()
        if self._cached(artifact, fp):
            model = load_flow_model(self._path(artifact))
            self._stamp("train_flow", artifact, fp, time.perf_counter() - start, True)
            return model
        links = annotations.subgraph(edges=np.asarray(annotations.edges["approved"], bool))
        result = train_flow(
            images,
            links,
            voxel_size,
            cfg,
            checkpoint=self._path(artifact),
            resume=False,
            progress=self.config.progress,
        )
        self.histories["flow"] = [float(h["loss"]) for h in result.history]
        self._stamp("train_flow", artifact, fp, time.perf_counter() - start, False)
        return result.model

    def predict_parents(self, images: Any, voxel_size: Any, spots: TrackGraph, model: Any):
        """Add ``parent_z/y/x`` (µm) to every spot from the predicted backward flow."""
        from celltrack.flow import predict_parents

        fp = _digest(
            "parents",
            self._stages["train_flow"]["fingerprint"],
            self._stages["detect"]["fingerprint"],
        )
        return self._graph_stage(
            "predict_flow",
            "spots_flow.geff",
            fp,
            lambda: predict_parents(
                model, images, spots, voxel_size, self.config.flow, progress=self.config.progress
            ),
        )

    def build_candidates(
        self,
        spots: TrackGraph,
        upstream: str = "",
        field_of_view_um: tuple[tuple[float, float], ...] | None = None,
    ) -> TrackGraph:
        """Candidate graph from spots (pins from reviewed tags and approved links).

        ``field_of_view_um`` ((z_lo, z_hi), (y_lo, y_hi), (x_lo, x_hi)) is used when the
        candidate config names none (the pipeline passes the image's extent).
        """
        cfg = self.config.candidates
        if cfg.field_of_view_um is None and field_of_view_um is not None:
            cfg = cfg.model_copy(update={"field_of_view_um": tuple(field_of_view_um)})
        fp = _digest("candidates", cfg, upstream or spots)
        return self._graph_stage(
            "candidates",
            "candidates.geff",
            fp,
            lambda: pins_from_tags(build_candidates(spots, cfg)),
        )

    def link(self, candidates: TrackGraph) -> LinkResult:
        """Link the candidate graph with the configured linker (block-wise if configured)."""
        start = time.perf_counter()
        linker = make_linker(self.config.linker)
        if self.config.blockwise is not None:
            from celltrack.solve import solve_blockwise

            result = solve_blockwise(
                candidates,
                linker,
                self.config.blockwise,
                store=self._path("blocks"),
                progress=self.config.progress,
            )
        else:
            result = linker.link(candidates)
        if not result.ok:
            log.warning("linker finished with status %s: no tracks", result.status.value)
        write_geff(result.graph, self._path("tracks.geff"), overwrite=True)
        self.timings["link"] = time.perf_counter() - start
        self._stages["link"] = {"seconds": self.timings["link"], "status": result.status.value}
        self._write_provenance()
        return result

    def export(
        self, tracks: TrackGraph, shape: tuple[int, ...], voxel_size: Any
    ) -> dict[str, Path]:
        """Write the tracks in every configured format; returns paths by format."""
        from celltrack.io.annotations import write_annotations
        from celltrack.io.ctc import write_ctc

        out: dict[str, Path] = {}
        for fmt in self.config.output.formats:
            if fmt == "geff":
                out[fmt] = write_geff(tracks, self._path("tracks.geff"), overwrite=True)
            elif fmt == "csv":
                out[fmt] = write_annotations(tracks, self._path("tracks.csv"))
            else:
                out[fmt] = write_ctc(
                    tracks,
                    self._path("ctc/01_RES"),
                    shape=shape,
                    voxel_size=voxel_size,
                    radius=self.config.output.ctc_radius_um,
                )
        return out

    def evaluate(self, ground_truth: TrackGraph, tracks: TrackGraph) -> TrackingScores:
        """Score ``tracks`` against ``ground_truth`` and save ``scores.json``."""
        ev = self.config.evaluation
        scores = evaluate(
            ground_truth,
            tracks,
            max_distance=ev.max_distance_um,
            sparse_gt=ev.sparse_gt,
            division_tolerance=ev.division_tolerance,
        )
        atomic_write_text(self._path("scores.json"), json.dumps(scores.to_dict(), default=str))
        return scores

    def _graph_stage(self, stage: str, artifact: str, fp: str, compute) -> TrackGraph:
        start = time.perf_counter()
        if self._cached(artifact, fp):
            graph = read_geff(self._path(artifact))
            self._stamp(stage, artifact, fp, time.perf_counter() - start, True)
            return graph
        graph = compute()
        write_geff(graph, self._path(artifact), overwrite=True)
        self._stamp(stage, artifact, fp, time.perf_counter() - start, False)
        return graph

    # ------------------------------------------------------------------ all stages
    def check_images(self, images: Any, voxel_size: Any) -> tuple[Any, np.ndarray]:
        """Promote 2D+t to Z = 1 and resolve the voxel size (argument, metadata, config)."""
        if voxel_size is None:
            voxel_size = getattr(images, "voxel_size", None)
        if voxel_size is None:
            voxel_size = self.config.data.voxel_size_um
        if voxel_size is None:
            raise InvalidInputError("voxel_size (z, y, x) µm is required with an array movie")
        voxel_size = check_voxel_size(voxel_size)
        if len(images.shape) == 3:  # 2D+t array (T, Y, X) → Z = 1
            images = np.asarray(images)[:, None]
        elif len(images.shape) != 4:
            raise InvalidInputError(
                f"images must be (T, Z, Y, X) or (T, Y, X), got shape {tuple(images.shape)}"
            )
        return images, voxel_size

    def candidates_for(
        self, images: Any, voxel_size: np.ndarray, annotations: TrackGraph | None
    ) -> TrackGraph:
        """Detection training and inference, flow (when wanted), then the candidate graph.

        The final spots are kept in :attr:`spots`.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        model = self.train_detection(images, voxel_size, annotations)
        spots = self.detect(images, voxel_size, model, annotations)
        upstream = self._stages["detect"]["fingerprint"]
        if self.wants_flow(annotations):
            flow_model = self.train_flow(images, voxel_size, annotations)
            spots = self.predict_parents(images, voxel_size, spots, flow_model)
            upstream = self._stages["predict_flow"]["fingerprint"]
        if annotations is not None and "approved" in annotations.edge_columns:
            spots = _with_approved_links(spots, annotations)
            upstream = _digest(upstream, annotations)
        self.spots = spots
        extent = [(0.0, (n - 1) * v) for n, v in zip(images.shape[1:], voxel_size)]
        return self.build_candidates(spots, upstream, tuple(extent))

    def run(
        self,
        images: Any = None,
        annotations: TrackGraph | None = None,
        *,
        voxel_size: Any = None,
        ground_truth: TrackGraph | None = None,
    ) -> PipelineResult:
        """Run every stage; arguments override the inputs named in ``config.data``.

        Parameters
        ----------
        images : array_like (T, Z, Y, X), optional
            The movie (default: read ``config.data.image``).
        annotations : TrackGraph, optional
            Sparse annotations with tags and ``approved`` links.
        voxel_size : sequence of 3 float, optional
            (z, y, x) µm; required with an array movie.
        ground_truth : TrackGraph, optional
            Scored against when given.
        """
        if images is None:
            images, voxel_size, file_ann, file_gt = self.load_inputs()
            annotations = annotations if annotations is not None else file_ann
            ground_truth = ground_truth if ground_truth is not None else file_gt
        images, voxel_size = self.check_images(images, voxel_size)
        candidates = self.candidates_for(images, voxel_size, annotations)
        result = self.link(candidates)
        shape = tuple(int(s) for s in images.shape)
        outputs = self.export(result.graph, shape, voxel_size)
        scores = None
        if ground_truth is not None:
            scores = self.evaluate(ground_truth, result.graph)
        if self.config.output.figures:
            outputs.update(self.figures(images, voxel_size, result.graph))
        return PipelineResult(
            tracks=result.graph,
            link=result,
            spots=self.spots,
            scores=scores,
            outputs=outputs,
            timings=dict(self.timings),
            histories=dict(self.histories),
        )

    def figures(self, images: Any, voxel_size: Any, tracks: TrackGraph) -> dict[str, Path]:
        """Max projection with tracks, lineage trees and loss curves as PNG files."""
        from celltrack.viz import (
            plot_lineage_tree,
            plot_loss_curves,
            plot_tracks_projection,
            save_figure,
        )

        last = int(images.shape[0]) - 1
        view = plot_tracks_projection(np.asarray(images[last]), tracks, voxel_size, frame=last)
        out = {"figure_tracks": save_figure(view, self._path("figures/tracks.png"))}
        out["figure_lineages"] = save_figure(
            plot_lineage_tree(tracks), self._path("figures/lineages.png")
        )
        if self.histories:
            out["figure_losses"] = save_figure(
                plot_loss_curves(self.histories), self._path("figures/losses.png")
            )
        return out


def _reviewed(annotations: TrackGraph | None) -> TrackGraph | None:
    """Annotations a person reviewed (never 'unlabeled')."""
    if annotations is None or "tag" not in annotations.node_columns:
        return annotations
    return annotations.subgraph(nodes=annotations.nodes["tag"] != "unlabeled")


def _approved_links(annotations: TrackGraph | None) -> int:
    if annotations is None or "approved" not in annotations.edge_columns:
        return 0
    return int(np.asarray(annotations.edges["approved"], bool).sum())


def _with_approved_links(spots: TrackGraph, annotations: TrackGraph) -> TrackGraph:
    """Carry approved annotation links whose both ends survive detection into ``spots``."""
    approved = np.asarray(annotations.edges["approved"], bool)
    src = annotations.edges["source"][approved]
    tgt = annotations.edges["target"][approved]
    keep = spots.has_nodes(src) & spots.has_nodes(tgt)
    if not keep.any():
        return spots
    base = spots.subgraph(edges=np.zeros(spots.num_edges, bool))
    return base.add_edges(
        {"source": src[keep], "target": tgt[keep], "approved": np.ones(int(keep.sum()), bool)}
    )


def _read_graph(path: str, voxel_size: Any = None) -> TrackGraph:
    """Read a graph from GEFF, a CTC folder, CSV, JSON or TrackMate XML."""
    from celltrack.io.annotations import read_annotations
    from celltrack.io.ctc import read_ctc

    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"'{p}' does not exist")
    zarr_meta = ("zarr.json", ".zattrs", ".zgroup")
    if p.suffix == ".geff" or (p.is_dir() and any((p / m).exists() for m in zarr_meta)):
        return read_geff(p)
    if p.is_dir():
        return read_ctc(p, voxel_size=voxel_size if voxel_size is not None else (1.0, 1.0, 1.0))
    return read_annotations(p)
