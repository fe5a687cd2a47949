"""The whole method as one object: images + annotations → detection → motion → link stage
→ outputs → scores.

:class:`PipelineConfig` (:mod:`celltrack.config.pipeline`, importable without torch) nests
every stage's config. :class:`Pipeline` runs the stages one by one or all together
(:meth:`Pipeline.run`); each stage saves its result in the work folder with a fingerprint
of everything it depends on, so a later run reuses what is still valid and redoes only
what changed. ``provenance.json`` records the config, the celltrack version and, per
stage, its fingerprint, time and whether it was reused.

The networks may train on another movie than the one tracked (``data.train_image``,
``Pipeline.run(train_images=...)``): detection and motion train on it with the
annotations, then detection, motion prediction and linking run on the tracked movie (the
annotations, which belong to the training movie, are neither merged into its spots nor
pinned in its links).

Each model stage follows its section's ``kind`` (:mod:`celltrack.model_kinds`):
``detection.kind`` is ELEPHANT's ``ellipsoid`` U-Net, the ``classical`` detector (no
training) or Linajea's cell ``indicator`` (spots with a ``score`` the ILP can price);
``motion.kind`` is ELEPHANT's backward ``flow`` or Linajea's ``movement_vectors``, and
``motion.joint`` trains one network for the indicator and the movement vectors
(stage ``train_joint``). Either motion model writes the spots' ``parent_z/y/x``, which the
candidate graph searches around. ``preset`` sizes the networks for the machine
(:meth:`PipelineConfig.with_preset`): without CUDA, 'auto' gives every detection/motion
key not set explicitly the CPU presets' value.

The cache never hands back a result of another configuration: a stage's stamp is removed
before the stage starts writing, so an interrupted run leaves no stamp pointing at a
half-written artifact; a model in training checkpoints to a file named by its own
fingerprint (e.g. ``models/.flow-<fingerprint>.partial.pt``), and a rerun of the same
configuration resumes from there. The movie's fingerprint hashes every frame (read one at
a time).

Movies enter through :func:`celltrack.io.as_movie`, tracks are read and written through
:func:`celltrack.io.read_tracks` / :func:`celltrack.io.write_tracks`, and linking goes
through the link stage (:mod:`celltrack.solve.stage`), like every other entry point.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from celltrack._version import __version__
from celltrack.config import Config, load_config
from celltrack.config.pipeline import (
    DataConfig,
    EvaluationConfig,
    OutputConfig,
    PipelineBlockwiseConfig,
    PipelineConfig,
)
from celltrack.errors import ConfigError, InvalidInputError
from celltrack.eval import TrackingScores, evaluate
from celltrack.graph import TrackGraph
from celltrack.graph.tags import approved_mask, reviewed_mask
from celltrack.io import ImageSeries
from celltrack.io.atomic import atomic_write_text
from celltrack.io.geff_io import read_geff, write_geff
from celltrack.model_kinds import (
    detect_spots,
    detector_name,
    is_joint,
    load_detector,
    load_motion_model,
    motion_name,
    predict_parent_positions,
    train_detector,
    train_joint_model,
    train_motion_model,
)
from celltrack.progress import RemainingTime, set_stage_listener
from celltrack.solve.base import LinkResult
from celltrack.solve.stage import (
    field_of_view,
    learn_costs,
    link_graph,
    links_spots,
    resolve_linker,
    solve_links,
)

__all__ = [
    "DataConfig",
    "EvaluationConfig",
    "OutputConfig",
    "Pipeline",
    "PipelineConfig",
    "PipelineResult",
]

log = logging.getLogger(__name__)


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
        All detections (with ``parent_z/y/x`` when a motion model ran).
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


#: Read-out sections of the model configs, and the fields in them that training also
#: reads: the rest only changes prediction and spot extraction, so it is left out of
#: the training fingerprint (changing a tile shape or a threshold does not retrain).
_READOUT_SECTIONS: dict[str, tuple[str, ...]] = {
    "predict": ("median_correction",),
    "spots": (),
    "nms": ("window_um",),
}


def _training_view(cfg: Config) -> dict[str, Any]:
    """``cfg`` without its read-out-only settings (see :data:`_READOUT_SECTIONS`)."""
    view = {"type": type(cfg).__qualname__, **cfg.model_dump(mode="json")}
    for section, kept in _READOUT_SECTIONS.items():
        if isinstance(view.get(section), dict):
            view[section] = {k: v for k, v in view[section].items() if k in kept}
    return view


def _readout_view(cfg: Config) -> dict[str, Any]:
    """The read-out sections of ``cfg``: what the prediction stages add to the model's."""
    dump = cfg.model_dump(mode="json")
    return {section: dump[section] for section in _READOUT_SECTIONS if section in dump}


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
            h.update(type(part).__qualname__.encode())
            h.update(part.model_dump_json().encode())
        else:
            h.update(json.dumps(part, default=str, sort_keys=True).encode())
    return h.hexdigest()[:16]


#: Bytes of a movie read at once by :func:`image_digest` (frames larger than this are read
#: by z slabs).
_DIGEST_SLAB_BYTES = 256 * 2**20


def image_digest(images: Any) -> str:
    """Fingerprint of a movie's shape, dtype and every voxel of every frame.

    Frames are read and hashed one at a time, or by z slabs of at most 256 MiB when they
    are larger, so memory stays bounded.

    Parameters
    ----------
    images : ImageSeries or array_like, shape (T, Z, Y, X)

    Returns
    -------
    str
        16 hexadecimal digits.
    """
    from celltrack.io.images import read_block

    h = hashlib.sha256()
    shape = tuple(int(s) for s in images.shape)
    h.update(str(shape).encode())
    plane = int(np.prod(shape[2:])) * np.dtype(getattr(images, "dtype", np.float64)).itemsize
    slab = max(1, _DIGEST_SLAB_BYTES // max(plane, 1))  # z slices read at once
    for t in range(shape[0]):
        if not isinstance(images, ImageSeries) or slab >= shape[1]:
            frame = np.ascontiguousarray(np.asarray(images[t]))
            h.update(frame.dtype.str.encode())
            h.update(frame.tobytes())
            continue
        for z in range(0, shape[1], slab):  # the same bytes in the same order, by z slabs
            rows = (slice(z, min(z + slab, shape[1])), slice(0, shape[2]), slice(0, shape[3]))
            part = read_block(images, t, rows)
            if z == 0:
                h.update(part.dtype.str.encode())
            h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()[:16]


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (imports torch; what ``preset: auto`` asks)."""
    import torch

    return bool(torch.cuda.is_available())


def _reviewed(annotations: TrackGraph | None) -> TrackGraph | None:
    """Annotations a person reviewed (never 'unlabeled')."""
    if annotations is None or "tag" not in annotations.node_columns:
        return annotations
    return annotations.subgraph(nodes=reviewed_mask(annotations.nodes["tag"]))


def _approved_links(annotations: TrackGraph | None) -> int:
    if annotations is None:
        return 0
    return int(approved_mask(annotations).sum())


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
    >>> ann = sample_annotations(data.gt, n_nuclei=5, n_links=5, rng=0)
    >>> result = Pipeline(PipelineConfig.cpu(), "out").run(  # doctest: +SKIP
    ...     data.image, ann, voxel_size=data.voxel_size, ground_truth=data.gt)
    """

    def __init__(self, config: PipelineConfig | str | Path, workdir: str | Path | None = None):
        if isinstance(config, (str, Path)):
            config = load_config(config, PipelineConfig)
        if not isinstance(config, PipelineConfig):
            raise ConfigError(f"Pipeline needs a PipelineConfig, got {type(config).__name__}")
        if config.blockwise is not None and not isinstance(
            config.blockwise, PipelineBlockwiseConfig
        ):  # a solver-only BlockwiseConfig put in by model_copy (which does not validate)
            blockwise = PipelineBlockwiseConfig.model_validate(config.blockwise.model_dump())
            config = config.model_copy(update={"blockwise": blockwise})
        self.requested_config = config
        self.config = self._fit_to_machine(config)
        self.workdir = Path(workdir if workdir is not None else config.output.directory)
        self.timings: dict[str, float] = {}
        self.histories: dict[str, list[float]] = {}
        #: per model, the training records (mode, step, loss) for the loss figure
        self.training_records: dict[str, list[dict[str, Any]]] = {}
        self._stages: dict[str, dict[str, Any]] = {}
        self._movie_digests: list[tuple[Any, str]] = []
        self.spots: TrackGraph | None = None
        #: True after :meth:`spots_for` trained on another movie than the tracked one
        self.separate_training = False
        self._resources_said = False

    # ------------------------------------------------------------------ bookkeeping
    def _fit_to_machine(self, config: PipelineConfig) -> PipelineConfig:
        """``config`` with its preset applied (CUDA is asked only for ``preset: auto``)."""
        if config.preset == "auto":
            cuda = cuda_available()
        else:
            cuda = False  # 'cpu' and 'default' do not depend on the machine
        fitted = config.with_preset(cuda)
        if config.preset == "auto" and fitted is not config:
            message = (
                "no GPU: detection and motion use the CPU presets (preset: auto; set preset: "
                "default to keep the GPU-sized networks)"
            )
            log.info(message)
            if config.progress:
                from tqdm.auto import tqdm

                tqdm.write(message, file=sys.stderr)
        return fitted

    def _say(self, message: str) -> None:
        """One progress line on stderr (when ``config.progress``) and in the log."""
        log.info(message)
        if self.config.progress:
            from tqdm.auto import tqdm

            tqdm.write(message, file=sys.stderr)  # between, not through, the progress bars

    def _begin(self, stage: str, what: str) -> None:
        """Say that ``stage`` starts; until it ends, say how long it will take if it is long."""
        self._say(f"== {stage}: {what}")
        set_stage_listener(RemainingTime(self._say, stage))

    def _end_listening(self) -> None:
        """The stage ended: stop estimating its remaining time."""
        set_stage_listener(None)

    def _say_resources(self) -> None:
        """Which device and how many CPU threads the networks use (once per pipeline)."""
        if self._resources_said:
            return
        self._resources_said = True
        from celltrack.nn.threads import available_cores, choose_threads

        det, flow = self.config.detection, self.config.motion
        threads = choose_threads(det.train.num_threads)
        how = (
            "chosen from the free cores; set detection.train.num_threads to change"
            if det.train.num_threads is None
            else "detection.train.num_threads"
        )
        self._say(
            f"   device: detection.train.device={det.train.device}, "
            f"motion.train.device={flow.train.device}; {threads} torch CPU thread(s) of "
            f"{available_cores()} core(s) ({how}); detection U-Net {det.model.preset}, "
            f"crops {'×'.join(map(str, det.train.crop_shape))} (preset: {self.config.preset})"
        )

    def _path(self, name: str) -> Path:
        return self.workdir / name

    def _stamp_path(self, artifact: str) -> Path:
        return self._path(artifact + ".stamp.json")

    def _cached(self, artifact: str, fingerprint: str) -> bool:
        stamp = self._stamp_path(artifact)
        if not (self._path(artifact).exists() and stamp.is_file()):
            return False
        return json.loads(stamp.read_text()).get("fingerprint") == fingerprint

    def _stamped_records(self, artifact: str) -> list[dict[str, Any]]:
        """The training records (mode, step, loss) in a model's stamp (may be empty)."""
        stamp = json.loads(self._stamp_path(artifact).read_text())
        return list(stamp.get("records", []))

    def _model_stage(
        self,
        stage: str,
        name: str,
        fingerprint: str,
        load: Callable[[Path], Any],
        train: Callable[[Path, Path], tuple[Any, Any]],
    ) -> Any:
        """A training stage: reuse ``models/<name>.pt`` while its stamp matches, else train.

        ``load(path)`` reads the saved model; ``train(partial, final)`` trains with the
        resumable checkpoint ``partial`` (:meth:`_partial`), leaves the model at ``final``
        and returns ``(model, TrainingHistory)``. The training records (mode, step, loss)
        go into the stamp, so a reused model keeps its loss curve.
        """
        artifact = f"models/{name}.pt"
        start = time.perf_counter()
        reused = self._cached(artifact, fingerprint)
        if reused:
            model = load(self._path(artifact))
            records = self._stamped_records(artifact)
        else:
            self._invalidate(artifact)
            model, history = train(self._partial(name, fingerprint), self._path(artifact))
            records = [{"mode": r.mode, "step": r.step, "loss": float(r.loss)} for r in history]
        self.training_records[name] = records
        self.histories[name] = [r["loss"] for r in records]
        self._stamp(
            stage,
            artifact,
            fingerprint,
            time.perf_counter() - start,
            reused,
            losses=self.histories[name],
            records=records,
        )
        return model

    def _invalidate(self, artifact: str) -> None:
        """Remove an artifact's stamp before the stage starts overwriting the artifact."""
        self._stamp_path(artifact).unlink(missing_ok=True)

    def _stamp(
        self,
        stage: str,
        artifact: str,
        fingerprint: str,
        seconds: float,
        reused: bool,
        losses: list[float] | None = None,
        records: list[dict[str, Any]] | None = None,
    ):
        """Record a finished stage; a new artifact gets its stamp (and training losses)."""
        self._end_listening()
        if not reused:
            payload: dict[str, Any] = {"fingerprint": fingerprint}
            if losses is not None:
                payload["loss"] = losses
            if records is not None:
                payload["records"] = records
            atomic_write_text(self._stamp_path(artifact), json.dumps(payload))
        self.timings[stage] = seconds
        self._stages[stage] = {"fingerprint": fingerprint, "seconds": seconds, "reused": reused}
        if reused:
            self._say(
                f"   {stage}: reused from the cache ({self._path(artifact)}, fingerprint "
                f"{fingerprint}); delete it to recompute"
            )
        else:
            self._say(f"   {stage}: done in {seconds:.1f} s")
        self._write_provenance()

    def _write_provenance(self) -> None:
        payload = {
            "celltrack_version": __version__,
            "config": self.config.model_dump(mode="json"),
            "stages": self._stages,
        }
        atomic_write_text(self._path("provenance.json"), json.dumps(payload, indent=2))

    def _image_digest(self, images: Any) -> str:
        """:func:`image_digest`, computed once per movie object (the last two kept)."""
        for movie, digest in self._movie_digests:
            if movie is images:
                return digest
        digest = image_digest(images)
        self._movie_digests = [*self._movie_digests[-1:], (images, digest)]
        return digest

    def _partial(self, name: str, fingerprint: str) -> Path:
        """Checkpoint of a model in training, named by its fingerprint (for resuming)."""
        path = self._path(f"models/.{name}-{fingerprint}.partial.pt")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------------ inputs
    def movie(self, images: Any, voxel_size: Any = None) -> tuple[ImageSeries, np.ndarray]:
        """The movie as an ImageSeries (T, Z, Y, X) and its voxel size (z, y, x) µm.

        Parameters
        ----------
        images : array_like, path or ImageSeries
            See :func:`celltrack.io.as_movie` (a 3-D array is 2D+t).
        voxel_size : sequence of 3 float, optional
            Default: the movie's metadata, then ``config.data.voxel_size_um``.
        """
        from celltrack.io import as_movie

        is_file = isinstance(images, (str, Path))
        if voxel_size is None and not isinstance(images, ImageSeries):
            voxel_size = self.config.data.voxel_size_um
        if voxel_size is None and not (is_file or isinstance(images, ImageSeries)):
            raise InvalidInputError(
                "the voxel size is required with an array movie: set data.voxel_size_um to three "
                "numbers [z, y, x] in µm (Python: voxel_size=(z, y, x))"
            )
        axes = self.config.data.axes if is_file else None
        movie = as_movie(images, axes=axes, voxel_size=voxel_size)
        return movie, np.asarray(movie.voxel_size, dtype=np.float64)

    def training_movie(
        self, images: ImageSeries, train_images: Any = None, voxel_size: Any = None
    ) -> tuple[ImageSeries, np.ndarray, bool]:
        """The movie the networks train on: ``train_images``, else ``data.train_image``.

        Parameters
        ----------
        images : ImageSeries
            The tracked movie (from :meth:`movie`).
        train_images : array_like, path or ImageSeries, optional
            Overrides ``config.data.train_image``.
        voxel_size : sequence of 3 float, optional
            Of an array ``train_images`` (default: ``data.voxel_size_um``, then the tracked
            movie's).

        Returns
        -------
        train : ImageSeries
            ``images`` itself when no other movie is named.
        voxel_size : ndarray, shape (3,)
            Its voxel size (z, y, x) µm.
        separate : bool
            True when it is another movie than ``images`` (other frames, shape or voxels).

        Raises
        ------
        InvalidInputError
            When one movie is 2D+t and the other 3D+t (a network is one or the other).
        """
        if train_images is None:
            train_images = self.config.data.train_image
        tracked_vs = np.asarray(images.voxel_size, dtype=np.float64)
        if train_images is None:
            return images, tracked_vs, False
        if voxel_size is None and not isinstance(train_images, (ImageSeries, str, Path)):
            voxel_size = self.config.data.voxel_size_um or tuple(tracked_vs)
        train, train_vs = self.movie(train_images, voxel_size)
        if (int(train.shape[1]) == 1) != (int(images.shape[1]) == 1):
            kinds = {True: "2D+t (Z = 1)", False: "3D+t"}
            raise InvalidInputError(
                f"the training movie (data.train_image) is {kinds[int(train.shape[1]) == 1]} "
                f"with shape {tuple(train.shape)} but the tracked movie (data.image) is "
                f"{kinds[int(images.shape[1]) == 1]} with shape {tuple(images.shape)}: a network "
                "is either 2D or 3D; train on a movie of the same kind"
            )
        separate = tuple(train.shape) != tuple(images.shape) or not np.allclose(
            train_vs, tracked_vs
        )
        if not separate:
            separate = self._image_digest(train) != self._image_digest(images)
        if separate and not np.allclose(train_vs, tracked_vs, rtol=0.05):
            log.warning(
                "the training movie's voxel size %s µm differs from the tracked movie's %s µm: "
                "the networks see voxels, so nuclei look bigger or smaller to them",
                tuple(train_vs),
                tuple(tracked_vs),
            )
        return train, train_vs, separate

    def load_inputs(self) -> tuple[ImageSeries, np.ndarray, TrackGraph | None, TrackGraph | None]:
        """Open the movie, annotations and ground truth named in ``config.data``.

        Returns
        -------
        images : ImageSeries, voxel_size : ndarray (3,), annotations, ground_truth
        """
        from celltrack.io import as_movie, read_tracks

        data = self.config.data
        if data.image is None:
            raise InvalidInputError(
                "data.image is not set in the config: set data.image to the movie (TIFF, folder of "
                "TIFFs, Zarr); from Python, Pipeline.run(images, ...) takes arrays too"
            )
        images = as_movie(data.image, axes=data.axes, voxel_size=data.voxel_size_um)
        voxel_size = np.asarray(images.voxel_size, dtype=np.float64)
        annotations = None
        if data.annotations and data.annotation_units == "voxel":
            from celltrack.io.annotations import read_annotations

            if Path(data.annotations).suffix.lower() not in (".csv", ".json"):
                raise InvalidInputError(
                    f"data.annotation_units: voxel applies to CSV/JSON annotations, got "
                    f"{data.annotations!r}; other formats carry their own units (remove the key)"
                )
            annotations = read_annotations(data.annotations, voxel_size=voxel_size, units="voxel")
        elif data.annotations:
            annotations = read_tracks(data.annotations)
        gt = read_tracks(data.ground_truth, voxel_size=voxel_size) if data.ground_truth else None
        return images, voxel_size, annotations, gt

    # ------------------------------------------------------------------ stages
    def train_detection(self, images: Any, voxel_size: Any, annotations: TrackGraph | None):
        """Train the detection model of ``detection.kind`` from the reviewed annotations.

        ``ellipsoid``: prior training, then batch training from the annotations (the prior
        alone without any); ``indicator``: Linajea's cell indicator from the annotated
        points. Saves ``models/detection.pt`` (``models/indicator.pt``); reused when
        images, annotations and the detection config are unchanged. Training checkpoints
        to a file named by the stage's fingerprint, and a rerun of the same configuration
        after an interruption resumes from it.
        """
        cfg = self.config.detection
        what = {
            "indicator": "cell-indicator network (Linajea) from your annotated points",
            "ellipsoid": "detection network (prior, then your annotations)",
        }[cfg.kind]
        self._begin("train_detection", what)
        self._say_resources()
        fp = _digest(
            "detection", _training_view(cfg), self._image_digest(images), annotations,
            list(voxel_size),
        )

        def train(partial: Path, final: Path) -> tuple[Any, Any]:
            model, history = train_detector(
                images, _reviewed(annotations), voxel_size, cfg, checkpoint=partial,
                progress=self.config.progress,
            )
            os.replace(partial, final)
            return model, history

        return self._model_stage(
            "train_detection",
            detector_name(cfg),
            fp,
            lambda path: load_detector(path, cfg),
            train,
        )

    def detect(
        self, images: Any, voxel_size: Any, model: Any, annotations: TrackGraph | None
    ) -> TrackGraph:
        """Detect nuclei in every frame; reviewed annotations are kept (tags re-checked).

        With ``detection.kind: classical`` ``model`` is ignored (pass None): the classical
        detector (:func:`celltrack.detect.classical.detect_classical`) needs no training.
        With ``indicator`` the spots are the maxima of the cell indicator, with their
        ``score``. Pass ``annotations=None`` when they belong to another movie.
        """
        cfg = self.config.detection
        classical = cfg.kind == "classical"
        how = {
            "classical": " (classical: threshold + watershed, no training)",
            "indicator": " (maxima of the cell indicator)",
        }.get(cfg.kind, "")
        self._begin("detect", f"nuclei in {int(images.shape[0])} frames{how}")
        if classical:
            upstream = _digest("classical", cfg, list(np.asarray(voxel_size, float)))
        else:
            upstream = self._model_fingerprint("train_detection")
        fp = _digest(
            "detect", upstream, _readout_view(cfg), self._image_digest(images), annotations
        )

        blockwise = self.config.blockwise
        if blockwise is not None and classical:
            self._say(
                "   detection.kind: classical runs frame by frame (block-wise prediction "
                "covers the networks)"
            )

        def compute() -> TrackGraph:
            if blockwise is not None and not classical:
                from celltrack.scale.detect import (
                    PREDICTION_STORE,
                    detect_blockwise,
                    detect_indicator_blockwise,
                )

                store = self._path(f"blocks/detect-{fp}")
                run = detect_indicator_blockwise if cfg.kind == "indicator" else detect_blockwise
                spots = run(
                    model,
                    images,
                    cfg,
                    store,
                    predict=self._block_prediction(),
                    voxel_size=voxel_size,
                    annotations=_reviewed(annotations),
                    executor=blockwise.executor,
                    progress=self.config.progress,
                )
                shutil.rmtree(store / PREDICTION_STORE, ignore_errors=True)
                return spots
            return detect_spots(
                model,
                images,
                cfg,
                voxel_size=voxel_size,
                annotations=_reviewed(annotations),
                progress=self.config.progress,
            )

        return self._graph_stage("detect", "spots.geff", fp, compute)

    def _block_prediction(self) -> Any:
        """``blockwise.predict`` with the block executor's workers and start method."""
        blockwise = self.config.blockwise
        assert blockwise is not None
        update: dict[str, Any] = {}
        if blockwise.predict.n_workers is None and blockwise.n_workers is not None:
            update["n_workers"] = blockwise.n_workers
        if blockwise.start_method is not None:
            update["start_method"] = blockwise.start_method
        return blockwise.predict.model_copy(update=update)

    def _model_fingerprint(self, stage: str) -> str:
        """The fingerprint of the model a training stage (or the joint one) produced."""
        if stage not in self._stages and "train_joint" in self._stages:
            stage = "train_joint"
        return self._stages[stage]["fingerprint"]

    def wants_motion(self, annotations: TrackGraph | None) -> bool:
        """Whether the motion stage runs (see ``config.use_motion``; always when joint)."""
        if is_joint(self.config.motion):
            return True
        mode = self.config.use_motion
        if mode != "auto":
            return mode == "always"
        return _approved_links(annotations) >= self.config.min_motion_links

    def _links_of(self, annotations: TrackGraph | None, what: str) -> TrackGraph:
        """The approved annotation links, or an error that says what needs them."""
        if _approved_links(annotations) == 0:
            raise InvalidInputError(
                f"{what} needs approved links (edge column 'approved'); annotate a few "
                "links or set use_motion: never in the config"
            )
        return annotations.subgraph(edges=approved_mask(annotations))

    def train_motion(self, images: Any, voxel_size: Any, annotations: TrackGraph | None):
        """Train the motion model of ``motion.kind`` from approved links.

        ``flow``: ELEPHANT's backward flow (``models/flow.pt``); ``movement_vectors``:
        Linajea's movement vectors from a window of frames (``models/movement.pt``). An
        interrupted run of the same configuration resumes from its checkpoint. (The joint
        model trains in :meth:`train_joint`.)
        """
        cfg = self.config.motion
        kind = "movement-vector" if cfg.kind == "movement_vectors" else "backward-flow"
        links = self._links_of(annotations, f"{kind} training")
        self._begin("train_motion", f"{kind} network from {_approved_links(annotations)} links")
        self._say_resources()
        fp = _digest(
            "motion", _training_view(cfg), self._image_digest(images), annotations,
            list(voxel_size),
        )

        def train(partial: Path, final: Path) -> tuple[Any, Any]:
            model, history = train_motion_model(
                images, links, voxel_size, cfg, checkpoint=partial,
                progress=self.config.progress,
            )
            os.replace(partial, final)
            return model, history

        return self._model_stage(
            "train_motion", motion_name(cfg), fp, lambda p: load_motion_model(p, cfg), train
        )

    def train_joint(self, images: Any, voxel_size: Any, annotations: TrackGraph | None):
        """Train Linajea's joint network (cell indicator + movement vectors, ``models/joint.pt``).

        Used for detection and motion both when ``motion.joint`` is true.
        """
        det, motion = self.config.detection, self.config.motion
        reviewed = _reviewed(annotations)
        if reviewed is None or reviewed.num_nodes == 0:
            raise InvalidInputError(
                "motion.joint trains the cell indicator and the movement vectors from "
                "annotated points and links, but there are no reviewed annotations: set "
                "data.annotations, or motion.joint: false"
            )
        self._links_of(annotations, "the joint indicator + movement network")
        self._begin(
            "train_joint",
            f"joint indicator + movement network from {reviewed.num_nodes} points and "
            f"{_approved_links(annotations)} links",
        )
        self._say_resources()
        fp = _digest(
            "joint", _training_view(det), _training_view(motion), self._image_digest(images),
            annotations, list(voxel_size),
        )

        def train(partial: Path, final: Path) -> tuple[Any, Any]:
            model, history = train_joint_model(
                images, annotations, voxel_size, det, motion, checkpoint=partial,
                progress=self.config.progress,
            )
            os.replace(partial, final)
            return model, history

        return self._model_stage(
            "train_joint", "joint", fp, lambda p: load_motion_model(p, motion), train
        )

    def predict_parents(self, images: Any, voxel_size: Any, spots: TrackGraph, model: Any):
        """Add ``parent_z/y/x`` (µm) to every spot from the motion model's prediction."""
        self._begin("predict_motion", "parent positions of every spot")
        fp = _digest(
            "parents",
            self._model_fingerprint("train_motion"),
            _readout_view(self.config.motion),
            self._stages["detect"]["fingerprint"],
        )

        blockwise = self.config.blockwise

        def compute() -> TrackGraph:
            if blockwise is not None:
                from celltrack.scale.detect import predict_parents_blockwise

                store = self._path(f"blocks/motion-{fp}")
                out = predict_parents_blockwise(
                    model,
                    images,
                    spots,
                    self.config.motion,
                    store,
                    predict=self._block_prediction(),
                    voxel_size=voxel_size,
                    executor=blockwise.executor,
                    progress=self.config.progress,
                )
                shutil.rmtree(store, ignore_errors=True)
                return out
            return predict_parent_positions(
                model, images, spots, voxel_size, self.config.motion,
                progress=self.config.progress,
            )

        return self._graph_stage("predict_motion", "spots_motion.geff", fp, compute)

    def link_graph(
        self,
        spots: TrackGraph,
        annotations: TrackGraph | None = None,
        *,
        field_of_view_um: tuple[tuple[float, float], ...] | None = None,
        upstream: str = "",
    ) -> TrackGraph:
        """The graph the linker solves (:func:`celltrack.solve.stage.link_graph`), cached.

        Candidate graph (or, for spot linkers, the spots) with the approved annotation links
        whose ends are spots, and pins from tags and approved links. ``field_of_view_um``
        ((z_lo, z_hi), (y_lo, y_hi), (x_lo, x_hi)) is used when the candidate config names
        none (the pipeline passes the movie's extent); ``upstream`` is the fingerprint of
        the stage that made ``spots`` (default: the spots themselves).
        """
        cfg = self.config.candidates
        if cfg.field_of_view_um is None and field_of_view_um is not None:
            cfg = cfg.model_copy(update={"field_of_view_um": tuple(field_of_view_um)})
        linker = resolve_linker(self.config.linker)
        self._begin("candidates", "the graph the linker chooses from")
        fp = _digest("candidates", cfg, links_spots(linker), upstream or spots, annotations)
        return self._graph_stage(
            "candidates",
            "candidates.geff",
            fp,
            lambda: link_graph(
                spots,
                annotations,
                candidates=cfg,
                linker=linker,
                progress=self.config.progress,
                build=self._block_candidates(),
            ),
        )

    def _block_candidates(self) -> Callable[..., TrackGraph] | None:
        """Block-wise candidate search on the block executor (None: in this process)."""
        blockwise = self.config.blockwise
        if blockwise is None:
            return None
        from celltrack.scale.candidates import build_candidates_blockwise

        return functools.partial(
            build_candidates_blockwise, executor=blockwise.executor, n_workers=blockwise.n_workers
        )

    def learned_linker(self, graph: TrackGraph, annotations: TrackGraph | None) -> Any:
        """The configured linker; with ``linker.learn: true`` (ILP), its costs learned first.

        Costs are learned from the approved annotation links on ``graph``
        (:func:`celltrack.solve.stage.learn_costs`) and saved as ``linker_learned.yaml``
        (reused while graph, annotations and linker config are unchanged).
        """
        linker = self.config.linker
        if not getattr(linker, "learn", False):
            return linker
        from celltrack.config import load_config, save_config
        from celltrack.solve import ILPConfig

        artifact = "linker_learned.yaml"
        fp = _digest("learn", linker, graph, annotations)
        start = time.perf_counter()
        self._begin("learn costs", "structured SVM on the approved links")
        if self._cached(artifact, fp):
            learned = load_config(self._path(artifact), ILPConfig)
            self._stamp("learn_costs", artifact, fp, time.perf_counter() - start, True)
            return learned
        if annotations is None:
            if self.separate_training:
                raise InvalidInputError(
                    "linker.learn learns costs from approved links on the tracked movie, but "
                    "the annotations are on the training movie (data.train_image): set "
                    "linker.learn: false, or annotate the tracked movie"
                )
            raise InvalidInputError(
                "linker.learn is true but there are no annotations: set data.annotations "
                "(with approved links) or linker.learn: false"
            )
        self._invalidate(artifact)
        result = learn_costs(graph, annotations, linker)
        save_config(result.config, self._path(artifact))
        self._stamp("learn_costs", artifact, fp, time.perf_counter() - start, False)
        self._stages["learn_costs"].update(
            {"weights": result.weights, "loss": [float(v) for v in result.loss_history]}
        )
        self._write_provenance()
        return result.config

    def link(self, graph: TrackGraph, annotations: TrackGraph | None = None) -> LinkResult:
        """Link the graph of :meth:`link_graph` with the configured linker (block-wise if set).

        With ``linker.learn: true`` the ILP's costs are learned from ``annotations``' approved
        links first (:meth:`learned_linker`). Block-wise results go to ``blockwise.store`` or
        ``blocks/<fingerprint>`` in the work folder, so an interrupted run of the same
        problem resumes.
        """
        linker = self.learned_linker(graph, annotations)
        self._begin(
            "link",
            f"linker kind: {getattr(self.config.linker, 'kind', '?')}"
            + (" (block-wise)" if self.config.blockwise is not None else ""),
        )
        start = time.perf_counter()
        blockwise = self.config.blockwise
        store = None
        if blockwise is not None:
            key = _digest("blocks", graph, linker, blockwise)
            store = blockwise.store or self._path(f"blocks/{key}")
        result = solve_links(
            graph,
            linker,
            blockwise=blockwise,
            store=store,
            progress=self.config.progress,
        )
        if not result.ok:
            log.warning("linker finished with status %s: no tracks", result.status.value)
        write_geff(result.graph, self._path("tracks.geff"), overwrite=True)
        self.timings["link"] = time.perf_counter() - start
        self._end_listening()
        self._say(f"   link: {result.status.value} in {self.timings['link']:.1f} s")
        self._stages["link"] = {"seconds": self.timings["link"], "status": result.status.value}
        self._write_provenance()
        return result

    def export(
        self, tracks: TrackGraph, shape: tuple[int, ...], voxel_size: Any
    ) -> dict[str, Path]:
        """Write the tracks in every configured format.

        GEFF and CTC go through :func:`celltrack.io.write_tracks`; ``tracks.csv`` is the
        track table napari's Tracks layer and TrackMate users expect
        (:func:`celltrack.io.track_table.write_track_table`: ``track_id, t, z, y, x,
        parent_track_id, id, parent_id, lineage_id, …``, sorted by track then time). The
        files are the pipeline's own (``tracks.geff``, ``tracks.csv``, ``ctc/01_RES``) and
        are replaced on every run. Returns the paths by format.
        """
        from celltrack.io import write_tracks

        names = {"geff": "tracks.geff", "csv": "tracks.csv", "ctc": "ctc/01_RES"}
        out: dict[str, Path] = {}
        for fmt in self.config.output.formats:
            out[fmt] = write_tracks(
                tracks,
                self._path(names[fmt]),
                fmt,
                overwrite=True,
                shape=tuple(int(s) for s in shape),
                voxel_size=voxel_size,
                radius_um=self.config.output.ctc_radius_um,
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
        self._invalidate(artifact)
        graph = compute()
        write_geff(graph, self._path(artifact), overwrite=True)
        self._stamp(stage, artifact, fp, time.perf_counter() - start, False)
        return graph

    # ------------------------------------------------------------------ all stages
    def spots_for(
        self,
        images: Any,
        voxel_size: np.ndarray,
        annotations: TrackGraph | None,
        *,
        train_images: Any = None,
        train_voxel_size: Any = None,
    ) -> TrackGraph:
        """Detection training and inference, then motion (when wanted): the spots to link.

        The networks train on :meth:`training_movie` (``train_images``, else
        ``data.train_image``, else ``images``) with ``annotations``; detection and motion
        prediction run on ``images``. When the training movie is another movie, the
        annotations are not merged into the spots (they belong to the other movie) and
        :attr:`separate_training` is True. With ``detection.kind: classical`` detection
        is not trained. The spots are also kept in :attr:`spots`.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        train, train_vs, self.separate_training = self.training_movie(
            images, train_images, train_voxel_size
        )
        if self.separate_training:
            self._say(
                f"   training on another movie {tuple(train.shape)} than the tracked one "
                f"{tuple(images.shape)} (data.train_image): the annotations train the networks "
                "and are not merged into the tracked movie's spots or links"
            )
        tracked_ann = None if self.separate_training else annotations
        model = joint = None
        for stage in ("train_detection", "train_joint", "train_motion", "predict_motion"):
            self._stages.pop(stage, None)
        if is_joint(self.config.motion):
            model = joint = self.train_joint(train, train_vs, annotations)
        elif self.config.detection.kind == "classical":
            self._say("   detection.kind: classical needs no training (no detection network)")
        else:
            model = self.train_detection(train, train_vs, annotations)
        spots = self.detect(images, voxel_size, model, tracked_ann)
        if self.wants_motion(annotations):
            motion_model = joint or self.train_motion(train, train_vs, annotations)
            spots = self.predict_parents(images, voxel_size, spots, motion_model)
        self.spots = spots
        return spots

    def _spots_fingerprint(self) -> str:
        stage = "predict_motion" if "predict_motion" in self._stages else "detect"
        return self._stages[stage]["fingerprint"]

    def candidates_for(
        self,
        images: Any,
        voxel_size: np.ndarray,
        annotations: TrackGraph | None,
        *,
        train_images: Any = None,
        train_voxel_size: Any = None,
    ) -> TrackGraph:
        """:meth:`spots_for`, then :meth:`link_graph` over the movie's field of view.

        The annotations' pins and approved links enter the graph only when they are on the
        tracked movie (not with a separate training movie).
        """
        spots = self.spots_for(
            images,
            voxel_size,
            annotations,
            train_images=train_images,
            train_voxel_size=train_voxel_size,
        )
        return self.link_graph(
            spots,
            self._tracked_annotations(annotations),
            field_of_view_um=field_of_view(images.shape, voxel_size),
            upstream=self._spots_fingerprint(),
        )

    def _tracked_annotations(self, annotations: TrackGraph | None) -> TrackGraph | None:
        """The annotations when they are on the tracked movie, else None."""
        return None if self.separate_training else annotations

    def run(
        self,
        images: Any = None,
        annotations: TrackGraph | None = None,
        *,
        voxel_size: Any = None,
        ground_truth: TrackGraph | None = None,
        train_images: Any = None,
        train_voxel_size: Any = None,
    ) -> PipelineResult:
        """Run every stage; arguments override the inputs named in ``config.data``.

        Parameters
        ----------
        images : array_like (T, Z, Y, X) or (T, Y, X), path or ImageSeries, optional
            The movie to track (default: read ``config.data.image``); see
            :func:`celltrack.io.as_movie`.
        annotations : TrackGraph, optional
            Sparse annotations with tags and ``approved`` links, on the training movie.
        voxel_size : sequence of 3 float, optional
            (z, y, x) µm; required with an array movie unless ``data.voxel_size_um`` is set.
        ground_truth : TrackGraph, optional
            Of the tracked movie; scored against when given.
        train_images : array_like, path or ImageSeries, optional
            The movie the annotations are on, when the networks should train on another
            movie than the one tracked (default: ``config.data.train_image``, else
            ``images``). Detection and motion train on it; prediction and linking run on
            ``images``.
        train_voxel_size : sequence of 3 float, optional
            (z, y, x) µm of an array ``train_images`` (default: ``data.voxel_size_um``,
            then ``voxel_size``).
        """
        if images is None:
            images, voxel_size, file_ann, file_gt = self.load_inputs()
            annotations = annotations if annotations is not None else file_ann
            ground_truth = ground_truth if ground_truth is not None else file_gt
        images, voxel_size = self.movie(images, voxel_size)
        graph = self.candidates_for(
            images,
            voxel_size,
            annotations,
            train_images=train_images,
            train_voxel_size=train_voxel_size,
        )
        result = self.link(graph, self._tracked_annotations(annotations))
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
            curves = {
                name: self.training_records.get(name) or losses
                for name, losses in self.histories.items()
            }
            out["figure_losses"] = save_figure(
                plot_loss_curves(curves), self._path("figures/losses.png")
            )
        return out
