"""Detection over a movie: predict every requested frame and collect the spots.

With annotations and ``cfg.spots.calibrate`` (the default), the spot settings come from
the annotations (:mod:`celltrack.detect.calibrate`): sizes and suppression distance from
the annotated radii, the centre threshold from the processed frames that have
annotations (predicted first), and a warning when the spots per frame are far from the
density the annotations imply.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celltrack._version import __version__
from celltrack.config.detection import DetectionConfig
from celltrack.detect.calibrate import (
    calibrate_spot_sizes,
    calibrate_threshold,
    check_density,
    expected_count,
)
from celltrack.detect.detector import check_detector, check_detector_input
from celltrack.detect.evidence import (
    DRAWN_NUCLEUS_TAGS,
    intensity_background,
    nucleus_statistics,
    pool_statistics,
)
from celltrack.detect.predict import predict_probabilities
from celltrack.detect.spots import extract_spots, suppress_duplicates
from celltrack.errors import InvalidInputError
from celltrack.geometry import check_voxel_size
from celltrack.graph import TrackGraph
from celltrack.graph.tags import LINKABLE, REVIEWED, TAG_DTYPE, Tag, tags_of
from celltrack.graph.trackgraph import concat
from celltrack.io import ImageSeries, as_movie
from celltrack.progress import progress_bar

__all__ = ["detect", "open_movie"]

logger = logging.getLogger(__name__)


def open_movie(
    images: Any, voxel_size: Sequence[float] | None, model: Any = None
) -> ImageSeries:
    """Open a movie through :func:`celltrack.io.as_movie` with detection's voxel-size rule.

    ``voxel_size`` if given; else the movie's own (an ImageSeries or a file with
    metadata); else, for arrays, the one the model was built for (``model.voxel_size``).

    Raises
    ------
    InvalidInputError
        If no voxel size can be found.
    """
    if voxel_size is None and not isinstance(images, (ImageSeries, str, Path)):
        voxel_size = getattr(model, "voxel_size", None)
        if voxel_size is None:
            raise InvalidInputError(
                "the movie is an array and the model has no voxel_size: pass "
                "voxel_size=(z, y, x) in µm"
            )
    return as_movie(images, voxel_size=None if voxel_size is None else check_voxel_size(voxel_size))


def detect(
    model: Any,
    images: Any,
    frames: int | Iterable[int] | None = None,
    cfg: DetectionConfig | None = None,
    *,
    voxel_size: Sequence[float] | None = None,
    annotations: TrackGraph | None = None,
    progress: bool = False,
) -> TrackGraph:
    """Detect nuclei in frames of a movie.

    Parameters
    ----------
    model : Detector
        Trained detection model: a :class:`~celltrack.detect.model.DetectionUNet` or any
        :class:`~celltrack.detect.detector.Detector`.
    images : array_like, path or ImageSeries
        The movie, opened by :func:`celltrack.io.as_movie`: a 4-D array is (T, Z, Y, X),
        a 3-D array (T, Y, X) 2D+t (give one volume as ``volume[None]``); numpy, zarr,
        dask or memmap frames are read one at a time.
    frames : int or iterable of int, optional
        Frames to process (default all).
    cfg : DetectionConfig, optional
        Prediction and spot settings.
    voxel_size : sequence of 3 float, optional
        Voxel size (z, y, x) µm; default the movie's own, else the one the model was
        built for.
    annotations : TrackGraph, optional
        Reviewed spots (tags tp, fn, fp, tn, tb, fb). In the processed frames they are
        kept, predictions closer than ``cfg.spots.suppression_distance_um`` to one are
        dropped, and their tags are re-checked as ELEPHANT does (fn → tp when the model
        finds it, tn → fp when it still fires there, ...). Annotation ids are kept and
        new spots get ids above them. With ``cfg.spots.calibrate`` they also set the
        spot sizes, the suppression distance and (from processed annotated frames with
        enough nuclei) the centre threshold, and predictions per frame far off the
        annotated density are warned about (:mod:`celltrack.detect.calibrate`).
    progress : bool
        Show a tqdm bar over frames.

    Returns
    -------
    TrackGraph
        Nodes only: ``t``, ``z, y, x`` (µm), ``covariance`` (µm²), ``score`` and ``tag``
        (``"unlabeled"`` for predictions). ``attrs`` holds ``voxel_size``, the config
        actually used (calibrated values included) and, when calibrated, ``calibration``
        (threshold, sizes, expected and found spots per frame).
    """
    cfg = cfg or DetectionConfig()
    model = check_detector(model)
    images = open_movie(images, voxel_size, model)
    vs = images.voxel_size
    frame_list = checked_frames(frames, images.shape[0])
    if annotations is not None and not isinstance(annotations, TrackGraph):
        raise InvalidInputError(
            f"annotations must be a TrackGraph, got {type(annotations).__name__}"
        )
    check_detector_input(model, (1, 1, *images.shape[1:]))

    two_d = images.shape[1] == 1
    calibration: dict[str, Any] = {}
    nuclei = None
    if annotations is not None and annotations.num_nodes and cfg.spots.calibrate:
        rows = np.isin(tags_of(annotations, default=Tag.TP), DRAWN_NUCLEUS_TAGS)
        if rows.any():
            nuclei = annotations.subgraph(nodes=rows)
    if nuclei is not None:
        spots_cfg = calibrate_spot_sizes(cfg.spots, nuclei, two_d=two_d)
        cfg = cfg.model_copy(update={"spots": spots_cfg})
    annotated: list[int] = []
    if nuclei is not None and annotations is not None:
        reviewed = np.isin(tags_of(annotations, default=Tag.TP), REVIEWED)
        with_marks = set(np.unique(annotations.t[reviewed]).tolist())
        annotated = [t for t in frame_list if t in with_marks]
    rest = [t for t in frame_list if t not in set(annotated)]

    bar = progress_bar(total=len(frame_list), desc="detect", disable=not progress, leave=False)
    by_frame: dict[int, TrackGraph] = {}
    centre_maps: dict[int, np.ndarray] = {}
    for t in annotated:  # calibration frames first: their centre maps choose the threshold
        centre_maps[t] = predict_probabilities(model, np.asarray(images[t]), cfg)[2]
        bar.update()
    if centre_maps and annotations is not None:
        cfg, calibration["threshold_calibrated"] = with_calibrated_threshold(
            cfg, centre_maps, images, annotations
        )
    for t, pc in centre_maps.items():
        by_frame[t] = extract_spots(pc, vs, cfg.spots, t=t)
    centre_maps.clear()
    for t in rest:
        prob = predict_probabilities(model, np.asarray(images[t]), cfg)
        by_frame[t] = extract_spots(prob, vs, cfg.spots, t=t)
        bar.update()
    bar.close()
    predictions = collect_spots([by_frame[t] for t in frame_list])
    if annotations is not None and annotations.num_nodes:
        predictions = _merge_annotations(predictions, annotations, frame_list, cfg, vs)
    if nuclei is not None:
        calibration.update(
            threshold=cfg.spots.threshold,
            r_min_um=cfg.spots.r_min_um,
            r_max_um=cfg.spots.r_max_um,
            suppression_distance_um=cfg.spots.suppression_distance_um,
        )
        calibration.update(_density(images, nuclei, predictions, frame_list, cfg, vs))
        predictions.attrs["calibration"] = calibration
    stamp_spots(predictions, vs, cfg)
    return predictions


def with_calibrated_threshold(
    cfg: DetectionConfig,
    centre_maps: dict[int, np.ndarray],
    images: ImageSeries,
    annotations: TrackGraph,
) -> tuple[DetectionConfig, bool]:
    """``cfg`` with the centre threshold calibrated on annotated frames, and whether it was.

    Parameters
    ----------
    cfg : DetectionConfig
        Detection settings (spot sizes already calibrated).
    centre_maps : dict of int to ndarray (Z, Y, X)
        Predicted centre probability of each annotated frame.
    images : ImageSeries
        The movie (the annotated frames' intensities set the automatic background).
    annotations : TrackGraph
        The reviewed spots.
    """
    vs = images.voxel_size
    backgrounds = {}
    if cfg.labels.auto_background == "intensity":
        for t in centre_maps:
            ev = intensity_background(
                np.asarray(images[t]), annotations.subgraph(nodes=annotations.t == t),
                vs, cfg.labels,
            )
            if ev is not None:
                backgrounds[t] = ev.background
    cal = calibrate_threshold(
        centre_maps, annotations, vs, cfg.spots, backgrounds=backgrounds,
        default_radius_um=cfg.labels.point_radius_um,
    )
    if cal.calibrated:
        cfg = cfg.model_copy(
            update={"spots": cfg.spots.model_copy(update={"threshold": cal.threshold})}
        )
    return cfg, cal.calibrated


def checked_frames(frames: int | Iterable[int] | None, n_frames: int) -> list[int]:
    """The frames to process as ints (default all), each checked to lie in the movie.

    Raises
    ------
    InvalidInputError
        If a frame is not an integer or lies outside ``0 .. n_frames - 1``.
    """
    if frames is None:
        return list(range(n_frames))
    items = [frames] if isinstance(frames, (int, np.integer)) else list(frames)
    try:
        frame_list = [int(f) for f in items]
    except (TypeError, ValueError):
        raise InvalidInputError(f"frames must be integers, got {items[:5]}") from None
    bad = [f for f in frame_list if not 0 <= f < n_frames]
    if bad:
        raise InvalidInputError(f"frames {bad[:5]} are outside the movie's 0..{n_frames - 1}")
    return frame_list


def collect_spots(per_frame: list[TrackGraph]) -> TrackGraph:
    """One graph of every frame's spots (ids offset), or an empty one with the spot columns."""
    spots = concat(per_frame, offset_ids=True) if per_frame else TrackGraph.empty()
    if spots.num_nodes:
        return spots
    return TrackGraph.from_positions(
        np.zeros(0, np.int64),
        np.zeros((0, 3)),
        covariance=np.zeros((0, 3, 3)),
        score=np.zeros(0),
        tag=np.zeros(0, dtype="<U9"),
    )


def stamp_spots(spots: TrackGraph, vs: Sequence[float], cfg: DetectionConfig) -> None:
    """Record the voxel size, the detection config used and the celltrack version."""
    spots.attrs["voxel_size"] = [float(v) for v in vs]
    spots.attrs["detection_config"] = cfg.model_dump(mode="json")
    spots.attrs["celltrack_version"] = __version__


def _density(
    images: ImageSeries,
    nuclei: TrackGraph,
    spots: TrackGraph,
    frames: list[int],
    cfg: DetectionConfig,
    vs: np.ndarray,
    *,
    max_frames: int = 4,
) -> dict[str, float]:
    """Expected vs found spots per frame (on up to ``max_frames`` processed frames); warns.

    The expected count of a frame is the foreground volume of the 'intensity' rule (with
    statistics pooled over up to ``max_frames`` annotated frames) divided by the mean
    annotated nucleus volume.
    """
    annotated = [int(t) for t in np.unique(nuclei.t) if 0 <= t < images.shape[0]]
    pick = np.linspace(0, len(annotated) - 1, min(max_frames, len(annotated))).round()
    stats = pool_statistics(
        [
            nucleus_statistics(
                np.asarray(images[annotated[int(i)]]),
                nuclei.subgraph(nodes=nuclei.t == annotated[int(i)]),
                vs,
                default_radius_um=cfg.labels.point_radius_um,
            )
            for i in np.unique(pick)
        ]
    )
    if stats is None or not frames:
        return {}
    spread = np.unique(np.linspace(0, len(frames) - 1, max_frames).round())
    chosen = [frames[int(i)] for i in spread]
    expected, found = [], []
    linkable = np.isin(tags_of(spots, default=Tag.UNLABELED), LINKABLE)
    for t in chosen:
        ev = intensity_background(
            np.asarray(images[t]), nuclei.subgraph(nodes=nuclei.t == t), vs, cfg.labels,
            statistics=stats,
        )
        if ev is None:
            return {}
        expected.append(expected_count(ev.foreground, vs, stats.volume_um3))
        found.append(int(np.sum(linkable & (spots.t == t))))
    exp, got = float(np.mean(expected)), float(np.mean(found))
    logger.info(
        "detection: %.1f spots per frame; the annotations imply about %.1f nuclei per frame",
        got,
        exp,
    )
    check_density(got, exp)
    return {"expected_per_frame": exp, "found_per_frame": got}


def _merge_annotations(
    predictions: TrackGraph,
    annotations: TrackGraph,
    frames: list[int],
    cfg: DetectionConfig,
    vs: np.ndarray,
) -> TrackGraph:
    """Annotations of the processed frames + predictions, duplicates suppressed, tags re-checked."""
    in_frames = np.isin(annotations.t, frames)
    ann = annotations.subgraph(nodes=in_frames)
    n = ann.num_nodes
    cols: dict[str, Any] = {
        "id": ann.ids,
        "t": ann.t,
        "z": ann.nodes["z"],
        "y": ann.nodes["y"],
        "x": ann.nodes["x"],
        "covariance": (
            np.asarray(ann.nodes["covariance"])
            if "covariance" in ann.nodes
            else np.broadcast_to(np.eye(3) * cfg.labels.point_radius_um**2, (n, 3, 3)).copy()
        ),
        "score": np.asarray(ann.nodes["score"]) if "score" in ann.nodes else np.ones(n),
        "tag": tags_of(ann, default=Tag.TP),
    }
    shift = int(annotations.ids.max()) + 1
    keys = ("t", "z", "y", "x", "covariance", "score")
    pred = {k: np.asarray(predictions.nodes[k]) for k in keys}
    merged = TrackGraph(
        {
            k: np.concatenate([np.asarray(cols[k]), pred[k] if k in pred else v])
            for k, v in (
                ("id", predictions.ids + shift),
                ("t", None),
                ("z", None),
                ("y", None),
                ("x", None),
                ("covariance", None),
                ("score", None),
                ("tag", np.full(predictions.num_nodes, Tag.UNLABELED.value, TAG_DTYPE)),
            )
        }
    )
    out = suppress_duplicates(merged, cfg.spots.suppression_distance_um, recheck_tags=True)
    outside = annotations.subgraph(nodes=~in_frames)
    if outside.num_nodes:
        out = concat([out, outside])
    return out
