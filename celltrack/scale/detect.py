"""Detection and parent positions of a whole movie, block by block (the Pipeline's block-wise
stages).

:func:`detect_blockwise` is :func:`celltrack.detect.detect` for movies larger than memory:
the detector's probabilities go to a Zarr store block by block
(:func:`~celltrack.scale.predict.predict_blockwise`), spots come from that store block by
block (:func:`~celltrack.scale.spots.extract_spots_blockwise`), and reviewed annotations are
merged as :func:`~celltrack.detect.detect` merges them. :func:`detect_indicator_blockwise`
does the same for Linajea's cell indicator, and :func:`predict_parents_blockwise` for the
flow model or the movement vectors and the spots' predicted parent positions. All resume
from their stores after an interruption.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.config.detection import DetectionConfig
from celltrack.config.flow import FlowConfig
from celltrack.config.indicator import IndicatorConfig
from celltrack.config.movement import MovementConfig
from celltrack.config.nn import BlockwisePredictConfig
from celltrack.graph import TrackGraph
from celltrack.graph.tags import REVIEWED, Tag, tags_of

__all__ = [
    "PREDICTION_STORE",
    "detect_blockwise",
    "detect_indicator_blockwise",
    "predict_parents_blockwise",
]

logger = logging.getLogger(__name__)

#: The detection store's subfolder holding the predicted maps (probabilities or indicator).
PREDICTION_STORE = "prediction.zarr"

#: Largest frame (voxels) whose centre map is loaded whole to calibrate the detection
#: threshold on the annotated frames (64 Mi voxels: 256 MiB as float32).
CALIBRATION_MAX_VOXELS = 64 * 2**20


def detect_blockwise(
    model: Any,
    images: Any,
    cfg: DetectionConfig,
    store: str | Path,
    *,
    predict: BlockwisePredictConfig | None = None,
    voxel_size: Sequence[float] | None = None,
    annotations: TrackGraph | None = None,
    executor: Any = "processes",
    progress: bool = False,
) -> TrackGraph:
    """Detect nuclei in every frame without holding a frame in memory.

    Parameters
    ----------
    model : DetectionUNet
        Trained detection model.
    images : ImageSeries, path or array, shape (T, Z, Y, X)
        The movie, read block by block.
    cfg : DetectionConfig
        Normalisation, median correction and spot settings (as
        :func:`~celltrack.detect.detect`).
    store : str or Path
        Folder for the centre probability (:data:`PREDICTION_STORE`: the one channel spot
        extraction reads, a third of the detector's output) and the per-block spots
        (``spots``); kept, so a rerun after an interruption continues where it stopped.
    predict : BlockwisePredictConfig, optional
        Block core, halo, GroupNorm handling, workers and threads.
    voxel_size : sequence of 3 float, optional
        (z, y, x) µm; default the movie's.
    annotations : TrackGraph, optional
        Reviewed spots: with ``cfg.spots.calibrate`` they set the spot sizes and, on
        frames of at most :data:`CALIBRATION_MAX_VOXELS` voxels, the centre threshold (from
        the stored centre maps of the annotated frames), as in
        :func:`~celltrack.detect.detect`; they are merged into the predictions the same way.
    executor : str, distributed.Client or executor
        Where blocks run (``"processes"``, ``"serial"``, a dask Client or address).
    progress : bool
        Progress bars.

    Returns
    -------
    TrackGraph
        Spots as :func:`~celltrack.detect.detect` returns them (``attrs['blockwise']``
        records the store and the block statistics).
    """
    from celltrack.detect.api import with_calibrated_threshold
    from celltrack.detect.calibrate import calibrate_spot_sizes
    from celltrack.detect.evidence import DRAWN_NUCLEUS_TAGS
    from celltrack.io import as_movie
    from celltrack.scale.predict import predict_blockwise
    from celltrack.scale.spots import extract_spots_blockwise

    movie = as_movie(images, voxel_size=voxel_size)
    vs = movie.voxel_size
    store = Path(store)
    predict = predict or BlockwisePredictConfig()
    annotated: list[int] = []
    calibration: dict[str, Any] = {}
    if annotations is not None and annotations.num_nodes and cfg.spots.calibrate:
        tags = tags_of(annotations, default=Tag.TP)
        drawn = np.isin(tags, DRAWN_NUCLEUS_TAGS)
        if drawn.any():
            spots_cfg = calibrate_spot_sizes(
                cfg.spots, annotations.subgraph(nodes=drawn), two_d=movie.shape[1] == 1
            )
            cfg = cfg.model_copy(update={"spots": spots_cfg})
            reviewed = np.isin(tags, REVIEWED)
            annotated = [
                int(t) for t in np.unique(annotations.t[reviewed]) if 0 <= t < movie.shape[0]
            ]
    result = predict_blockwise(
        model,
        movie,
        store / PREDICTION_STORE,
        predict,
        normalization=cfg.normalize,
        median_correction=cfg.predict.median_correction,
        channels=(2,),
        executor=executor,
        progress=progress,
    )
    centre_maps = _annotated_maps(
        result.array, annotated, movie, "spots.threshold", cfg.spots.threshold
    )
    if centre_maps is not None:
        cfg, calibration["threshold_calibrated"] = with_calibrated_threshold(
            cfg, centre_maps, movie, annotations
        )
        del centre_maps
    elif annotated:
        calibration["threshold_calibrated"] = False
    if calibration:
        calibration.update(
            threshold=cfg.spots.threshold,
            r_min_um=cfg.spots.r_min_um,
            r_max_um=cfg.spots.r_max_um,
            suppression_distance_um=cfg.spots.suppression_distance_um,
        )
    spots = extract_spots_blockwise(
        result.array,
        vs,
        cfg.spots,
        block_shape=predict.block_shape,
        executor=executor,
        n_workers=predict.n_workers,
        store=store / "spots",
        progress=progress,
    )
    return _finish_spots(spots, annotations, movie, cfg, cfg, calibration, store, result)


def detect_indicator_blockwise(
    model: Any,
    images: Any,
    cfg: IndicatorConfig,
    store: str | Path,
    *,
    predict: BlockwisePredictConfig | None = None,
    voxel_size: Sequence[float] | None = None,
    annotations: TrackGraph | None = None,
    executor: Any = "processes",
    progress: bool = False,
) -> TrackGraph:
    """Detect nuclei as maxima of the cell indicator without holding a frame in memory.

    :func:`~celltrack.detect.indicator_predict.detect_indicator` for movies larger than
    memory: the indicator goes to a Zarr store block by block
    (:func:`~celltrack.scale.predict.predict_blockwise`), its maxima are read off block by
    block (:func:`~celltrack.scale.indicator_spots.extract_indicator_spots_blockwise`, the
    whole-frame maxima exactly) and reviewed annotations are merged the same way.

    Parameters
    ----------
    model : LinajeaUNet
        Trained indicator model, or a joint model (its indicator head is used).
    images : ImageSeries, path or array, shape (T, Z, Y, X)
        The movie, read block by block.
    cfg : IndicatorConfig
        Normalisation, median correction and NMS settings.
    store : str or Path
        Folder for the indicator (:data:`PREDICTION_STORE`) and the per-block maxima
        (``spots``); kept, so a rerun after an interruption continues where it stopped.
    predict : BlockwisePredictConfig, optional
        Block core, halo, workers and threads.
    voxel_size : sequence of 3 float, optional
        (z, y, x) µm; default the movie's.
    annotations : TrackGraph, optional
        Reviewed spots: with ``cfg.nms.calibrate`` they set the NMS sizes and, on frames of
        at most :data:`CALIBRATION_MAX_VOXELS` voxels, the threshold (from the stored
        indicator of the annotated frames), as in ``detect_indicator``.
    executor : str, distributed.Client or executor
        Where blocks run (``"processes"``, ``"serial"``, a dask Client or address).
    progress : bool
        Progress bars.

    Returns
    -------
    TrackGraph
        Spots as ``detect_indicator`` returns them (``attrs['blockwise']`` records the
        store and the block statistics).
    """
    from celltrack.detect.indicator_predict import (
        _merge_config,
        calibrated_sizes,
        calibrated_threshold,
    )
    from celltrack.io import as_movie
    from celltrack.scale.indicator_spots import extract_indicator_spots_blockwise
    from celltrack.scale.predict import predict_blockwise

    movie = as_movie(images, voxel_size=voxel_size)
    vs = movie.voxel_size
    store = Path(store)
    predict = predict or BlockwisePredictConfig()
    frames = list(range(movie.shape[0]))
    cfg, calibration, annotated = calibrated_sizes(
        cfg, annotations, frames, vs, two_d=movie.shape[1] == 1
    )
    result = predict_blockwise(
        model,
        movie,
        store / PREDICTION_STORE,
        predict,
        normalization=cfg.normalize,
        median_correction=cfg.predict.median_correction,
        head="indicator",
        executor=executor,
        progress=progress,
    )
    maps = _annotated_maps(result.array, annotated, movie, "nms.threshold", cfg.nms.threshold)
    if maps is not None:
        cfg = calibrated_threshold(cfg, maps, movie, annotations, calibration)
        del maps
    elif annotated:
        calibration["threshold_calibrated"] = False
    spots = extract_indicator_spots_blockwise(
        result.array,
        vs,
        cfg.nms,
        block_shape=predict.block_shape,
        executor=executor,
        n_workers=predict.n_workers,
        store=store / "spots",
        progress=progress,
    )
    return _finish_spots(
        spots, annotations, movie, _merge_config(cfg), cfg, calibration, store, result
    )


def _annotated_maps(
    array: Any, annotated: list[int], movie: Any, setting: str, value: float
) -> dict[int, np.ndarray] | None:
    """The stored maps (channel 0, (Z, Y, X) float32) of the annotated frames that calibrate
    the threshold, or None: no annotated frame, or frames of more than
    :data:`CALIBRATION_MAX_VOXELS` voxels (logged: ``detection.<setting>`` is used as set)."""
    if not annotated:
        return None
    if int(np.prod(movie.shape[1:])) > CALIBRATION_MAX_VOXELS:
        logger.info(
            "block-wise detection: frames of more than %d voxels are not loaded to calibrate "
            "the threshold; detection.%s = %.2f is used as set",
            CALIBRATION_MAX_VOXELS, setting, value,
        )
        return None
    return {t: np.asarray(array[t, 0], np.float32) for t in annotated}


def _finish_spots(
    spots: TrackGraph,
    annotations: TrackGraph | None,
    movie: Any,
    merge_cfg: DetectionConfig,
    cfg: Any,
    calibration: dict[str, Any] | None,
    store: Path,
    result: Any,
) -> TrackGraph:
    """Merge the reviewed annotations (``merge_cfg``) into the block-wise spots and record
    the config, calibration and block statistics, as the whole-frame detectors do."""
    from celltrack.detect.api import _merge_annotations, collect_spots, stamp_spots
    from celltrack.io.jsonable import to_json_value

    vs = movie.voxel_size
    if not spots.num_nodes:
        spots = collect_spots([])
    if annotations is not None and annotations.num_nodes:
        frames = list(range(movie.shape[0]))
        spots = _merge_annotations(spots, annotations, frames, merge_cfg, vs)
    stamp_spots(spots, vs, cfg)
    if calibration:
        spots.attrs["calibration"] = calibration
    spots.attrs["blockwise"] = to_json_value({"store": store, "prediction": result.stats})
    return spots


def predict_parents_blockwise(
    model: Any,
    images: Any,
    spots: TrackGraph,
    cfg: FlowConfig | MovementConfig,
    store: str | Path,
    *,
    predict: BlockwisePredictConfig | None = None,
    voxel_size: Sequence[float] | None = None,
    executor: Any = "processes",
    progress: bool = False,
) -> TrackGraph:
    """Add ``parent_z/y/x`` (µm) to every spot from flow or movement vectors predicted block
    by block.

    Parameters
    ----------
    model : FlowUNet or LinajeaUNet
        Trained flow model, or a model with a movement head (a joint model's is used).
    images : ImageSeries, path or array, shape (T, Z, Y, X)
        The movie, read block by block.
    spots : TrackGraph
        Detected spots (µm).
    cfg : FlowConfig or MovementConfig
        Normalisation; flow: label geometry (``label.min_voxels``, ``default_radius_um``);
        movement vectors: ``predict.edge_length``.
    store : str or Path
        Folder for the field (``flow.zarr`` or ``movement.zarr``), kept for resuming.
    predict : BlockwisePredictConfig, optional
        Block core, halo, workers and threads.
    voxel_size : sequence of 3 float, optional
        (z, y, x) µm; default the movie's.
    executor : str, distributed.Client or executor
        Where blocks run.
    progress : bool
        Progress bars.

    Returns
    -------
    TrackGraph
        ``spots`` with the parent columns (frame-0 spots keep their position), equal to
        :func:`celltrack.flow.predict_parents` (or
        :func:`~celltrack.flow.movement_predict.predict_parents_movement`) given the same
        field.
    """
    from celltrack.io import as_movie
    from celltrack.scale.parents import displace_from_store, parents_from_vector_store
    from celltrack.scale.predict import predict_blockwise

    movie = as_movie(images, voxel_size=voxel_size)
    if isinstance(cfg, MovementConfig):
        result = predict_blockwise(
            model,
            movie,
            Path(store) / "movement.zarr",
            predict or BlockwisePredictConfig(),
            normalization=cfg.normalize,
            head="movement",
            executor=executor,
            progress=progress,
        )
        return parents_from_vector_store(
            spots,
            result.array,
            movie.voxel_size,
            edge_length=cfg.predict.edge_length,
            progress=progress,
        )
    result = predict_blockwise(
        model,
        movie,
        Path(store) / "flow.zarr",
        predict or BlockwisePredictConfig(),
        normalization=cfg.normalize,
        executor=executor,
        progress=progress,
    )
    return displace_from_store(
        spots,
        result.array,
        movie.voxel_size,
        min_voxels=cfg.label.min_voxels,
        default_radius_um=cfg.label.default_radius_um,
        progress=progress,
    )

