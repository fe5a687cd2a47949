"""Block-wise prediction equals whole-frame prediction; grids, halos, statistics, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from celltrack.config.detection import ModelConfig
from celltrack.config.flow import FlowConfig
from celltrack.config.nn import BlockwisePredictConfig, NormalizeConfig
from celltrack.errors import CheckpointError, InvalidInputError
from celltrack.nn.normalize import normalize_frame
from celltrack.nn.tiling import network_divisor
from celltrack.scale import BlockGrid, predict_blockwise, receptive_halo
from celltrack.scale.intensity import (
    apply_normalization,
    frame_normalization,
    merge_summaries,
    summarize_block,
)

TINY = ModelConfig(widths=(4, 8, 8))


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _detector(two_d: bool, dtype: torch.dtype = torch.float32):
    """2D: three levels (divisor 1×4×4); 3D: two levels pooling z too (divisor 2×2×2)."""
    from celltrack.detect.model import build_model

    cfg = TINY if two_d else ModelConfig(widths=(4, 8))
    return build_model(cfg, (1.0, 1.0, 1.0), two_d=two_d, seed=0).to(dtype).eval()


def _flow(two_d: bool, dtype: torch.dtype = torch.float32):
    from celltrack.flow.model import build_flow_model

    cfg = FlowConfig().model_copy(
        update={"model": FlowConfig().model.model_copy(update={"widths": (4, 8, 8)})}
    )
    model = build_flow_model(cfg, (2.0, 1.0, 1.0), two_d=two_d, seed=0)
    # the head starts at zero ("no motion"): give it weights so the test sees real output
    torch.nn.init.normal_(
        model.unet.head.weight, std=0.3, generator=torch.Generator().manual_seed(1)
    )
    return model.to(dtype).eval()


def _movie(shape, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 800, shape).astype(np.uint16)
    base[..., : shape[-2] // 3, :] //= 4  # uneven background
    return base


def _whole_detection(model, frame, dtype, median_correction=False):
    x = normalize_frame(frame, median_correction=median_correction)
    with torch.inference_mode():
        out = torch.softmax(model(torch.from_numpy(x[None, None]).to(dtype)), dim=1)
    return out[0].double().numpy()


def _whole_flow(model, prev, cur, dtype):
    x = np.stack([normalize_frame(prev), normalize_frame(cur)])[None]
    with torch.inference_mode():
        out = model(torch.from_numpy(x).to(dtype))[0].double().numpy()
    flow = np.zeros((3, *prev.shape))
    scale = np.asarray(model.max_displacement_um)
    flow[model.axes] = out * scale[model.axes, None, None, None]
    return flow


# ---------------------------------------------------------------------------- grids
def test_block_grid_cores_tile_the_frame_and_align_to_the_divisor():
    grid = BlockGrid((9, 50, 37), (4, 12, 10), (3, 5, 5), (1, 4, 4))
    assert grid.block_shape == (4, 12, 12) and grid.halo == (3, 8, 8)
    seen = np.zeros(grid.frame_shape, int)
    for block in grid:
        seen[block.core] += 1
        for c, r, d, n in zip(block.core, block.read, grid.divisor, grid.frame_shape):
            assert c.start % d == 0 and r.start % d == 0
            assert r.start <= c.start < c.stop <= r.stop
            assert r.stop == n or (r.stop - r.start) % d == 0
    assert (seen == 1).all()
    assert grid.shape == (3, 5, 4) and len(grid) == 60


def test_receptive_halo_analytic_bounds_the_probe_for_all_unets():
    from celltrack.nn.linajea_unet import LinajeaUNet

    linajea = LinajeaUNet(
        (1, 0), ("indicator", "movement"), (4, 8), [(1, 2, 2)], (1.0, 4.0, 4.0), two_d=True
    )
    for model in (_detector(True), _detector(False), _flow(True), linajea):
        analytic = receptive_halo(model, align=False)
        probe = receptive_halo(model, method="probe", align=False)
        assert all(p <= a for p, a in zip(probe, analytic)), (type(model).__name__, probe, analytic)
        assert max(probe) > 0
        aligned = receptive_halo(model)
        assert all(h % d == 0 for h, d in zip(aligned, network_divisor(model)))
    with pytest.raises(InvalidInputError, match="method"):
        receptive_halo(linajea, method="guess")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("median_correction", [False, True])
def test_blockwise_percentiles_are_exact_for_integer_frames(median_correction):
    frame = _movie((1, 5, 33, 29))[0]
    cfg = NormalizeConfig(low_percentile=2.5, high_percentile=99.3)
    grid = BlockGrid(frame.shape, (2, 10, 12))
    parts = [[] for _ in range(frame.shape[0])]
    for block in grid:
        for dz, s in enumerate(summarize_block(frame[block.core])):
            parts[block.core[0].start + dz].append(s)
    norm = frame_normalization(
        [merge_summaries(p) for p in parts], cfg, median_correction=median_correction
    )
    assert norm.exact
    whole = normalize_frame(frame, cfg, median_correction=median_correction)
    for block in grid:
        got = apply_normalization(frame[block.core], norm, block.core[0].start)
        np.testing.assert_array_equal(got, whole[block.core])


def test_blockwise_percentiles_of_float_frames_are_close():
    rng = np.random.default_rng(3)
    frame = rng.gamma(2.0, 50.0, (2, 300, 300)).astype(np.float32)
    parts = [[s] for s in summarize_block(frame, max_values=2048)]
    norm = frame_normalization([merge_summaries(p) for p in parts])
    assert not norm.exact
    # documented bound: off by at most (slice voxels / max_values) ranks per slice summary
    slack = 100.0 * 2 * (300 * 300 / 2048) / frame.size
    for got, q in ((norm.low, 1.0), (norm.high, 99.8)):
        lo, hi = np.percentile(frame, (max(q - slack, 0.0), min(q + slack, 100.0)))
        assert lo <= got <= hi


def test_read_block_reads_zarr_and_tiff_blocks(tmp_path):
    import tifffile

    from celltrack.io.images import read_block, read_image, write_image

    movie = _movie((3, 4, 20, 30))
    tifffile.imwrite(tmp_path / "m.tif", movie, imagej=True, metadata={"axes": "TZYX"})
    write_image(movie, tmp_path / "m.zarr", voxel_size=(2.0, 1.0, 1.0))
    block = (slice(1, 3), slice(5, 17), slice(0, 11))
    for src in ("m.tif", "m.zarr"):
        series = read_image(tmp_path / src, voxel_size=(2.0, 1.0, 1.0))
        np.testing.assert_array_equal(read_block(series, 2, block), movie[2][block])
    with pytest.raises(InvalidInputError, match="block must be"):
        read_block(series, 0, (slice(0, 9), slice(0, 2), slice(0, 2)))


# ---------------------------------------------------------------------------- equality
CASES = {
    "2d": ((2, 1, 45, 38), (1, 12, 12)),
    "3d": ((2, 11, 22, 19), (4, 8, 8)),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", ["2d", "3d"])
def test_detection_blockwise_equals_whole_frame(tmp_path, case, dtype):
    shape, block = CASES[case]
    model = _detector(case == "2d", dtype)
    movie = _movie(shape)
    result = predict_blockwise(
        model,
        movie,
        tmp_path / "det",
        BlockwisePredictConfig(block_shape=block),
        executor="serial",
        median_correction=True,
    )
    assert all(n >= 3 for n, full in zip(result.grid.shape, shape[1:]) if full > 1)
    assert any(f % b for f, b in zip(shape[1:], result.grid.block_shape))  # ragged edge blocks
    assert result.array.shape == (2, 3, *shape[1:])
    for t in range(2):
        whole = _whole_detection(model, movie[t], dtype, median_correction=True)
        np.testing.assert_allclose(result.array[t], whole, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", ["2d", "3d"])
def test_flow_blockwise_equals_whole_frame(tmp_path, case, dtype):
    shape, block = CASES[case]
    shape = (3, *shape[1:])
    model = _flow(case == "2d", dtype)
    movie = _movie(shape, seed=1)
    result = predict_blockwise(
        model,
        movie,
        tmp_path / "flow",
        BlockwisePredictConfig(block_shape=block),
        executor="serial",
    )
    assert result.frames == [1, 2]
    assert np.isnan(result.array[0]).all()  # frame 0 has no previous frame
    for t in (1, 2):
        whole = _whole_flow(model, movie[t - 1], movie[t], dtype)
        assert np.abs(whole).max() > 0.1
        np.testing.assert_allclose(result.array[t], whole, atol=1e-5)


# ---------------------------------------------------------------------------- resume
def test_interrupted_run_resumes_to_the_identical_array(tmp_path):
    shape, block = CASES["2d"]
    model = _detector(True)
    movie = _movie(shape)[:1]
    cfg = BlockwisePredictConfig(block_shape=block, dtype="float16")
    full = predict_blockwise(model, movie, tmp_path / "a", cfg, executor="serial")
    ref = full.array[:]
    part = predict_blockwise(model, movie, tmp_path / "b", cfg, executor="serial", stop_after=5)
    assert part.stats["predicted"] == 5
    assert np.isnan(part.array[:]).any()
    again = predict_blockwise(model, movie, tmp_path / "b", cfg, executor="serial")
    assert again.stats["done_before"] == 5
    assert again.stats["predicted"] == len(again.grid) - 5
    assert again.array.dtype == np.float16
    np.testing.assert_array_equal(again.array[:], ref)
    # a different problem in the same folder is refused, unless resume=False
    other = BlockwisePredictConfig(block_shape=(1, 16, 16))
    with pytest.raises(CheckpointError, match="different problem"):
        predict_blockwise(model, movie, tmp_path / "b", other, executor="serial")
    fresh = predict_blockwise(model, movie, tmp_path / "b", other, executor="serial", resume=False)
    assert fresh.stats["done_before"] == 0


def test_processes_executor_gives_the_serial_result(tmp_path):
    shape, _ = CASES["2d"]
    model = _flow(True)
    movie = _movie((2, *shape[1:]))
    # fork: spawned workers would spend most of the test importing torch
    cfg = BlockwisePredictConfig(block_shape=(1, 24, 24), n_workers=2, start_method="fork")
    serial = predict_blockwise(model, movie, tmp_path / "s", cfg, executor="serial")
    procs = predict_blockwise(model, movie, tmp_path / "p", cfg, executor="processes")
    np.testing.assert_array_equal(procs.array[:], serial.array[:])
    assert procs.stats["worker_peak_rss_bytes"] > 0


# ---------------------------------------------------------------------------- Linajea's maps
def _linajea(heads, two_d: bool, window=(1, 1)):
    """A tiny LinajeaUNet; the head gets random weights so the maps are not flat."""
    from celltrack.nn.linajea_unet import LinajeaUNet
    from celltrack.nn.unet import pool_factors_for

    vs = (1.0, 1.0, 1.0) if two_d else (2.0, 1.0, 1.0)
    factors = pool_factors_for(vs, 2, two_d=two_d)
    torch.manual_seed(0)
    model = LinajeaUNet(window, heads, (4, 8, 8), factors, (6.0, 6.0, 6.0), two_d=two_d)
    torch.nn.init.normal_(
        model.unet.head.weight, std=1.0, generator=torch.Generator().manual_seed(1)
    )
    return model.eval()


def _one_tile(cfg):
    """``cfg`` predicting through one tile as large as the test frames (whole-frame output)."""
    tiles = cfg.predict.model_copy(update={"tile_shape": (64, 64, 64)})
    return cfg.model_copy(update={"predict": tiles})


@pytest.mark.parametrize("case", ["2d", "3d"])
def test_indicator_and_movement_blockwise_equal_whole_frame(tmp_path, case):
    from celltrack.config.indicator import IndicatorConfig
    from celltrack.config.movement import MovementConfig
    from celltrack.detect.indicator_predict import predict_indicator
    from celltrack.flow.movement_predict import predict_movement

    shape, block = CASES[case]
    movie = _movie((4, *shape[1:]), seed=2)
    two_d = case == "2d"
    cfg = BlockwisePredictConfig(block_shape=block)
    indicator = _linajea(("indicator",), two_d)
    ind = predict_blockwise(
        indicator, movie, tmp_path / "ind", cfg, executor="serial", median_correction=True
    )
    assert ind.kind == "indicator" and ind.array.shape == (4, 1, *shape[1:])
    assert ind.array.attrs["channels"] == ["indicator"]
    icfg = _one_tile(IndicatorConfig())
    icfg = icfg.model_copy(
        update={"predict": icfg.predict.model_copy(update={"median_correction": True})}
    )
    for t in range(4):  # the window repeats frame 0 / 3 at the movie's ends
        whole = predict_indicator(indicator, movie, t, icfg)
        assert whole.std() > 1e-3
        np.testing.assert_allclose(ind.array[t, 0], whole, atol=1e-5)

    movement = _linajea(("movement",), two_d, window=(2, 1))
    mov = predict_blockwise(movement, movie, tmp_path / "mov", cfg, executor="serial")
    assert mov.frames == [1, 2, 3] and np.isnan(mov.array[0]).all()
    mcfg = _one_tile(MovementConfig())
    for t in (1, 2, 3):
        whole = predict_movement(movement, movie, t, mcfg)
        assert np.abs(whole).max() > 0.5
        np.testing.assert_allclose(mov.array[t], whole, atol=1e-5)
    if two_d:
        assert not np.any(mov.array[1:, 0])  # no z motion in 2D+t


def test_joint_model_predicts_the_head_it_is_asked_for(tmp_path):
    shape, block = CASES["2d"]
    movie = _movie((3, *shape[1:]), seed=3)
    joint = _linajea(("indicator", "movement"), True)
    cfg = BlockwisePredictConfig(block_shape=block)
    with pytest.raises(InvalidInputError, match="head='indicator' or head='movement'"):
        predict_blockwise(joint, movie, tmp_path / "j", cfg, executor="serial")
    with pytest.raises(InvalidInputError, match="selects the map of a LinajeaUNet"):
        predict_blockwise(
            _flow(True), movie, tmp_path / "f", cfg, executor="serial", head="movement"
        )
    mov = predict_blockwise(joint, movie, tmp_path / "m", cfg, executor="serial", head="movement")
    ind = predict_blockwise(joint, movie, tmp_path / "i", cfg, executor="serial", head="indicator")
    with torch.inference_mode():
        x = np.stack([normalize_frame(movie[f]) for f in (0, 1, 2)])[None]
        out = joint(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ind.array[1], out[:1], atol=1e-5)
    np.testing.assert_allclose(mov.array[1, 1:], out[1:], atol=1e-5)


def test_linajea_model_runs_on_worker_processes(tmp_path):
    shape, _ = CASES["2d"]
    movie = _movie((2, *shape[1:]))
    model = _linajea(("indicator",), True)
    cfg = BlockwisePredictConfig(block_shape=(1, 24, 24), n_workers=2, start_method="fork")
    serial = predict_blockwise(model, movie, tmp_path / "s", cfg, executor="serial")
    procs = predict_blockwise(model, movie, tmp_path / "p", cfg, executor="processes")
    np.testing.assert_array_equal(procs.array[:], serial.array[:])
    assert (tmp_path / "p" / "_model.pt").exists()


def test_a_store_of_chosen_channels_holds_those_channels(tmp_path):
    shape, block = CASES["3d"]
    model = _detector(False)
    movie = _movie(shape)[:1]
    cfg = BlockwisePredictConfig(block_shape=block)
    full = predict_blockwise(model, movie, tmp_path / "all", cfg, executor="serial")
    centre = predict_blockwise(
        model, movie, tmp_path / "centre", cfg, executor="serial", channels=(2,)
    )
    assert centre.array.shape == (1, 1, *shape[1:])
    assert centre.array.attrs["channels"] == ["centre"]
    np.testing.assert_array_equal(centre.array[:, 0], full.array[:, 2])
    with pytest.raises(InvalidInputError, match="channels must be distinct indices"):
        predict_blockwise(model, movie, tmp_path / "bad", cfg, executor="serial", channels=(3,))
