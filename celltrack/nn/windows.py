"""Temporal windows of frames: the input of Linajea-style networks.

A window ``(before, after)`` around frame t is the stack of frames
``t − before … t + after``, each normalised on its own; frames outside the movie repeat
the first or last frame (so every frame of a movie has a full window, and a window of
``(0, 0)`` is the frame alone). The channel of frame t is ``before``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from celltrack.config.nn import NormalizeConfig
from celltrack.errors import InvalidInputError
from celltrack.nn.normalize import normalize_frame

__all__ = ["check_window", "frame_window", "window_frames"]


def check_window(window: Sequence[int]) -> tuple[int, int]:
    """``(before, after)`` as non-negative ints.

    Raises
    ------
    InvalidInputError
        If it is not two non-negative integers.
    """
    try:
        before, after = (int(v) for v in window)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"a frame window is (frames before, frames after), e.g. (2, 1); got {window!r}"
        ) from None
    if before < 0 or after < 0:
        raise InvalidInputError(
            f"a frame window counts frames before and after t and cannot be negative; got "
            f"{(before, after)}"
        )
    return before, after


def window_frames(t: int, num_frames: int, window: Sequence[int]) -> list[int]:
    """The frame indices of the window around ``t``, clamped to ``[0, num_frames)``.

    Parameters
    ----------
    t : int
        The centre frame.
    num_frames : int
        Frames in the movie.
    window : (int, int)
        Frames before and after ``t``.

    Returns
    -------
    list of int
        ``before + 1 + after`` indices; the one at position ``before`` is ``t``.
    """
    before, after = check_window(window)
    if not 0 <= t < num_frames:
        raise InvalidInputError(f"frame {t} is outside the movie (0 … {num_frames - 1})")
    return [min(max(s, 0), num_frames - 1) for s in range(t - before, t + after + 1)]


def frame_window(
    movie: Any,
    t: int,
    window: Sequence[int],
    normalization: NormalizeConfig | None = None,
    *,
    median_correction: bool = False,
) -> np.ndarray:
    """The normalised frames of the window around ``t`` as network channels.

    Parameters
    ----------
    movie : array_like, shape (T, Z, Y, X)
        The movie (an :class:`~celltrack.io.ImageSeries` reads only the frames needed).
    t : int
        The centre frame.
    window : (int, int)
        Frames before and after ``t``.
    normalization : NormalizeConfig, optional
        Per-frame normalisation (default percentile 1–99.8).
    median_correction : bool
        Median-correct each frame's z slices first.

    Returns
    -------
    ndarray, shape (before + 1 + after, Z, Y, X), float32
    """
    frames = window_frames(int(t), int(movie.shape[0]), window)
    cache: dict[int, np.ndarray] = {}
    for s in frames:
        if s not in cache:
            cache[s] = normalize_frame(
                np.asarray(movie[s]), normalization, median_correction=median_correction
            )
    return np.stack([cache[s] for s in frames])
