"""The LP windows' cores: consecutive frame ranges holding about equal numbers of variables."""

import numpy as np
import pytest

from celltrack.solve.ilp.windows import balanced_cores


def _sizes(frames: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return np.diff(np.searchsorted(np.sort(frames), bounds))


def test_uniform_frames_get_cores_of_window_frames():
    frames = np.repeat(np.arange(14), 7)
    assert balanced_cores(frames, 3).tolist() == [0, 3, 6, 9, 12, 14]


def test_a_growing_embryo_gets_shorter_late_cores_of_equal_size():
    per_frame = 5 + np.arange(95) ** 2 // 10  # 5 variables at frame 0, 887 at frame 94
    frames = np.repeat(np.arange(95), per_frame)
    bounds = balanced_cores(frames, 20)
    assert len(bounds) - 1 == 5  # ⌈95 / 20⌉ windows
    assert bounds[0] == 0 and bounds[-1] == 95
    lengths = np.diff(bounds)
    assert lengths[0] > 2 * lengths[-1]
    sizes = _sizes(frames, bounds)
    assert sizes.sum() == frames.size
    # equal within one frame's variables (the cuts fall between frames)
    assert sizes.max() - sizes.min() <= 2 * per_frame.max()
    equal_frames = np.diff(np.searchsorted(frames, np.r_[0:95:20, 95]))
    assert sizes.max() < 0.6 * equal_frames.max()  # 6,249 instead of 11,450


@pytest.mark.parametrize("seed", range(5))
def test_every_core_keeps_a_frame_even_when_one_frame_holds_most_variables(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 5, 12)
    counts[rng.integers(12)] = 1000
    frames = 3 + np.repeat(np.arange(12), counts)
    bounds = balanced_cores(frames, 2)
    assert bounds[0] == 3 and bounds[-1] == 15
    assert len(bounds) == 7
    assert np.all(np.diff(bounds) >= 1)
