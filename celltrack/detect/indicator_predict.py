"""Predicting the cell indicator and reading nuclei off it (Linajea's detection path).

:func:`predict_indicator` runs the indicator U-Net over one frame tile by tile
(:func:`celltrack.nn.predict_tiled`, seamless blending) on the normalised frames of the
model's window (:func:`celltrack.nn.windows.frame_window`), with ``cfg.predict``'s
threads (:func:`celltrack.nn.threads.torch_threads`).

:func:`detect_indicator` does it for every requested frame, keeps the indicator's local
maxima above ``cfg.nms.threshold`` (:func:`celltrack.detect.nms.indicator_maxima`) as
spots (µm, spheres of ``cfg.nms.point_radius_um``, ``score`` = the indicator at the
maximum) and merges the reviewed annotations exactly as :func:`celltrack.detect.detect`
does: annotations kept, predictions on top of one dropped, tags re-checked (fn → tp when
the model finds it, tn → fp when it still fires there, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from celltrack.config.detection import DetectionConfig, LabelConfig, SpotConfig
from celltrack.config.indicator import IndicatorConfig, IndicatorNMSConfig
from celltrack.detect.api import (
    _merge_annotations,
    checked_frames,
    collect_spots,
    open_movie,
    stamp_spots,
)
from celltrack.detect.indicator_calibrate import (
    calibrate_indicator_threshold,
    calibrate_nms,
    indicator_backgrounds,
)
from celltrack.detect.indicator_model import check_indicator_model
from celltrack.detect.nms import indicator_maxima
from celltrack.errors import InvalidInputError
from celltrack.geometry import sphere_covariances
from celltrack.graph import TrackGraph
from celltrack.graph.tags import REVIEWED, Tag, tags_of
from celltrack.io import ImageSeries, as_movie
from celltrack.nn.linajea_unet import LinajeaUNet
from celltrack.nn.threads import torch_threads
from celltrack.nn.tiling import evaluating, network_divisor, predict_tiled
from celltrack.nn.windows import frame_window
from celltrack.progress import progress_bar

__all__ = [
    "calibrated_sizes",
    "calibrated_threshold",
    "detect_indicator",
    "indicator_spots",
    "predict_indicator",
    "spots_from_maxima",
]

logger = logging.getLogger(__name__)

def _movie(images: Any) -> ImageSeries:
    """The movie as an ImageSeries (prediction needs no voxel size: a placeholder for arrays)."""
    if isinstance(images, ImageSeries):
        return images
    if isinstance(images, str) or hasattr(images, "__fspath__"):
        return as_movie(images)
    return as_movie(images, voxel_size=(1.0, 1.0, 1.0))


def predict_indicator(
    model: LinajeaUNet,
    images: Any,
    t: int,
    cfg: IndicatorConfig | None = None,
    *,
    progress: bool = False,
) -> np.ndarray:
    """The cell indicator of frame ``t``, predicted tile by tile.

    Parameters
    ----------
    model : LinajeaUNet
        A model with an ``indicator`` head (:func:`build_indicator_model`, trained by
        :func:`train_indicator`); its window sets the input frames. Put in eval mode for
        the call.
    images : array_like, path or ImageSeries
        The raw movie (:func:`celltrack.io.as_movie`: 4-D (T, Z, Y, X), 3-D (T, Y, X)).
    t : int
        The frame.
    cfg : IndicatorConfig, optional
        ``normalize`` (must be the training's) and ``predict`` (tiles, overlap, device,
        threads, median correction).
    progress : bool
        Show a tqdm bar over tiles.

    Returns
    -------
    ndarray, shape (Z, Y, X), float32
        Indicator values in [0, 1].

    Raises
    ------
    InvalidInputError
        If the model has no indicator head or ``t`` is outside the movie.
    ShapeError
        If the model does not fit the frames (2D vs 3D).
    """
    cfg = cfg or IndicatorConfig()
    movie = _movie(images)
    model = check_indicator_model(model, movie.shape[1:])
    if not isinstance(t, (int, np.integer)) or not 0 <= int(t) < movie.shape[0]:
        raise InvalidInputError(f"frame {t!r} is outside the movie's 0..{movie.shape[0] - 1}")
    pc = cfg.predict
    x = frame_window(
        movie, int(t), model.window, cfg.normalize, median_correction=pc.median_correction
    )
    channel = model.channels("indicator")
    device = torch.device(pc.device)

    def run(batch: torch.Tensor) -> torch.Tensor:
        return model(batch)[:, channel]

    with torch_threads(pc.num_threads), evaluating(model, device):
        out = predict_tiled(
            run,
            x,
            1,
            tile_shape=pc.tile_shape,
            overlap=pc.overlap,
            batch_size=pc.batch_size,
            tile_mode=pc.tile_mode,
            divisor=network_divisor(model),
            device=device,
            progress=progress,
        )
    return out[0]


def indicator_spots(
    indicator: np.ndarray,
    voxel_size: Sequence[float],
    nms: IndicatorNMSConfig,
    *,
    t: int = 0,
) -> TrackGraph:
    """Spots at the indicator's maxima: (z, y, x) µm, sphere covariance, ``score``.

    Parameters
    ----------
    indicator : ndarray, shape (Z, Y, X)
        One frame's indicator.
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    nms : IndicatorNMSConfig
        Window, threshold and spot radius.
    t : int
        Frame of the spots.

    Returns
    -------
    TrackGraph
        Nodes ``t, z, y, x`` (µm), ``covariance`` (µm²), ``score`` (indicator value) and
        ``tag`` (``"unlabeled"``), by decreasing score.
    """
    vs = np.asarray(voxel_size, float)
    vox, scores = indicator_maxima(indicator, vs, nms.window_um, nms.threshold)
    return spots_from_maxima(vox, scores, vs, nms, t=t)


def spots_from_maxima(
    vox: np.ndarray,
    scores: np.ndarray,
    voxel_size: Sequence[float],
    nms: IndicatorNMSConfig,
    *,
    t: int = 0,
) -> TrackGraph:
    """The spot graph of one frame's indicator maxima (as :func:`indicator_spots` gives it).

    Parameters
    ----------
    vox : ndarray of int, shape (N, 3)
        Voxel indices (z, y, x) of the maxima, in the order the nodes get.
    scores : ndarray, shape (N,)
        Indicator values there (float32 as :func:`~celltrack.detect.nms.indicator_maxima`
        gives them).
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    nms : IndicatorNMSConfig
        ``point_radius_um`` sets the sphere covariances.
    t : int
        Frame of the spots.

    Returns
    -------
    TrackGraph
        Nodes ``t, z, y, x`` (µm = voxel index · voxel size), ``covariance`` (µm²),
        ``score`` and ``tag`` (``"unlabeled"``).
    """
    vs = np.asarray(voxel_size, float)
    vox = np.asarray(vox).reshape(-1, 3)
    n = len(scores)
    return TrackGraph.from_positions(
        np.full(n, int(t), np.int64),
        vox.astype(np.float64) * vs,
        covariance=sphere_covariances(n, nms.point_radius_um),
        score=np.asarray(scores).astype(np.float64),
        tag=np.full(n, "unlabeled", dtype="<U9"),
    )


def _merge_config(cfg: IndicatorConfig) -> DetectionConfig:
    """The detection settings :func:`celltrack.detect.api._merge_annotations` reads."""
    return DetectionConfig(
        labels=LabelConfig(point_radius_um=cfg.nms.point_radius_um),
        spots=SpotConfig(suppression_distance_um=cfg.nms.suppression_distance_um),
    )


def calibrated_sizes(
    cfg: IndicatorConfig,
    annotations: TrackGraph | None,
    frames: Sequence[int],
    voxel_size: Sequence[float],
    *,
    two_d: bool,
) -> tuple[IndicatorConfig, dict[str, Any] | None, list[int]]:
    """With ``cfg.nms.calibrate`` and annotations: the NMS sizes from the annotated nuclei.

    Returns
    -------
    cfg : IndicatorConfig
        With the calibrated window, spot radius and suppression distance.
    calibration : dict or None
        What was calibrated (None when nothing was).
    annotated : list of int
        The frames among ``frames`` holding reviewed annotations: their indicator maps
        choose the threshold (:func:`calibrated_threshold`).
    """
    if annotations is None or not annotations.num_nodes or not cfg.nms.calibrate:
        return cfg, None, []
    nms = calibrate_nms(cfg.nms, annotations, voxel_size, two_d=two_d)
    calibration: dict[str, Any] = {
        "sizes_calibrated": nms != cfg.nms,
        "window_um": list(nms.window_um),
        "point_radius_um": nms.point_radius_um,
        "suppression_distance_um": nms.suppression_distance_um,
    }
    reviewed = np.isin(tags_of(annotations, default=Tag.TP), REVIEWED)
    marked = set(np.unique(annotations.t[reviewed]).tolist())
    annotated = [int(t) for t in frames if t in marked]
    return cfg.model_copy(update={"nms": nms}), calibration, annotated


def calibrated_threshold(
    cfg: IndicatorConfig,
    maps: dict[int, np.ndarray],
    movie: ImageSeries,
    annotations: TrackGraph,
    calibration: dict[str, Any],
) -> IndicatorConfig:
    """``cfg`` with the NMS threshold chosen on the annotated frames' indicator ``maps``
    ((Z, Y, X) each, by frame); ``calibration`` records it."""
    backgrounds = indicator_backgrounds(movie, maps, annotations, cfg)
    threshold, report = calibrate_indicator_threshold(
        maps, annotations, movie.voxel_size, cfg, backgrounds=backgrounds
    )
    calibration.update(threshold=threshold, threshold_calibrated=report["calibrated"])
    return cfg.model_copy(update={"nms": cfg.nms.model_copy(update={"threshold": threshold})})


def detect_indicator(
    model: LinajeaUNet,
    images: Any,
    frames: int | Iterable[int] | None = None,
    cfg: IndicatorConfig | None = None,
    *,
    voxel_size: Sequence[float] | None = None,
    annotations: TrackGraph | None = None,
    progress: bool = False,
) -> TrackGraph:
    """Detect nuclei as maxima of the cell indicator in frames of a movie.

    Parameters
    ----------
    model : LinajeaUNet
        Trained indicator model (:func:`train_indicator`).
    images : array_like, path or ImageSeries
        The movie (:func:`celltrack.io.as_movie`: 4-D (T, Z, Y, X), 3-D (T, Y, X) 2D+t).
    frames : int or iterable of int, optional
        Frames to process (default all).
    cfg : IndicatorConfig, optional
        Normalisation, prediction and NMS settings.
    voxel_size : sequence of 3 float, optional
        (z, y, x) µm; required for arrays, default a file's or ImageSeries' own.
    annotations : TrackGraph, optional
        Reviewed spots (tags tp, fn, fp, tn, tb, fb). In the processed frames they are
        kept, predictions closer than ``cfg.nms.suppression_distance_um`` to one are
        dropped, and their tags are re-checked as ELEPHANT does. With
        ``cfg.nms.calibrate`` the NMS window, spot radius and suppression distance come
        from the annotated nuclei (:func:`calibrate_nms`) and the threshold from the
        processed annotated frames, predicted first (:func:`calibrate_indicator_threshold`).
    progress : bool
        Show a tqdm bar over frames.

    Returns
    -------
    TrackGraph
        Nodes only: ``t``, ``z, y, x`` (µm), ``covariance`` (µm², spheres), ``score``
        (indicator value at the maximum; 1 for annotations without one) and ``tag``
        (``"unlabeled"`` for predictions). ``attrs`` holds ``voxel_size``, the config
        actually used (``detection_config``, calibrated values included), the celltrack
        version and, when calibrated, ``calibration`` (window, spot radius, suppression
        distance, threshold and whether sizes and threshold moved).

    Raises
    ------
    InvalidInputError
        If the model has no indicator head, a frame is outside the movie, the voxel size
        is missing, or ``annotations`` is not a TrackGraph.
    ShapeError
        If the model does not fit the frames.
    """
    cfg = cfg or IndicatorConfig()
    if not isinstance(cfg, IndicatorConfig):
        raise InvalidInputError(f"cfg must be an IndicatorConfig, got {type(cfg).__name__}")
    if voxel_size is None and not isinstance(images, ImageSeries) and not isinstance(
        images, str
    ) and not hasattr(images, "__fspath__"):
        raise InvalidInputError(
            "the movie is an array and an indicator model stores no voxel size: pass "
            "voxel_size=(z, y, x) in µm"
        )
    movie = open_movie(images, voxel_size)
    vs = movie.voxel_size
    model = check_indicator_model(model, movie.shape[1:])
    frame_list = checked_frames(frames, movie.shape[0])
    if annotations is not None and not isinstance(annotations, TrackGraph):
        raise InvalidInputError(
            f"annotations must be a TrackGraph, got {type(annotations).__name__}"
        )
    cfg, calibration, annotated = calibrated_sizes(
        cfg, annotations, frame_list, vs, two_d=movie.shape[1] == 1
    )
    bar = progress_bar(total=len(frame_list), desc="detect", disable=not progress, leave=False)
    maps: dict[int, np.ndarray] = {}
    for t in annotated:  # calibration frames first: their maps choose the threshold
        maps[t] = predict_indicator(model, movie, t, cfg)
        bar.update()
    if maps and annotations is not None and calibration is not None:
        cfg = calibrated_threshold(cfg, maps, movie, annotations, calibration)
    by_frame = {t: indicator_spots(m, vs, cfg.nms, t=t) for t, m in maps.items()}
    maps.clear()
    for t in frame_list:
        if t not in by_frame:
            by_frame[t] = indicator_spots(predict_indicator(model, movie, t, cfg), vs, cfg.nms, t=t)
            bar.update()
    bar.close()
    spots = collect_spots([by_frame[t] for t in frame_list])
    if annotations is not None and annotations.num_nodes:
        spots = _merge_annotations(spots, annotations, frame_list, _merge_config(cfg), vs)
    if calibration is not None:
        spots.attrs["calibration"] = calibration
    stamp_spots(spots, vs, cfg)  # type: ignore[arg-type]
    return spots
