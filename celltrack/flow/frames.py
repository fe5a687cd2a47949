"""Input frames for the flow model: shape checks, 2D promotion and normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from celltrack.errors import ShapeError

__all__ = ["as_frame", "check_movie"]


def as_frame(frame: Any, what: str = "frame") -> np.ndarray:
    """Return one frame as a (Z, Y, X) array; a (Y, X) image becomes Z = 1.

    Raises
    ------
    ShapeError
        If the frame is not 2-D or 3-D or is empty.
    """
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.size == 0:
        raise ShapeError(
            f"{what} must be a (Z, Y, X) volume or a (Y, X) image, got shape {arr.shape}"
        )
    return arr


class Movie:
    """Lazy view of a movie as frames of one (Z, Y, X) shape (no copy of the data)."""

    def __init__(self, frames: Any, shape: tuple[int, int, int], n: int) -> None:
        self._frames = frames
        self.frame_shape = shape
        self.num_frames = n

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(T, Z, Y, X) in voxels."""
        return (self.num_frames, *self.frame_shape)

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, t: int) -> np.ndarray:
        return as_frame(self._frames[t], f"frame {t}")


def check_movie(images: Any) -> Movie:
    """Validate a movie: a (T, Z, Y, X) / (T, Y, X) array or a sequence of equal frames.

    Parameters
    ----------
    images : array_like or sequence of array_like
        The movie. Array-likes with ``shape`` (numpy, zarr, dask) are indexed lazily.

    Raises
    ------
    ShapeError
        If frames differ in shape or the movie is not 3-D/4-D.
    """
    if hasattr(images, "shape") and hasattr(images, "__getitem__"):
        shape = tuple(int(s) for s in images.shape)
        if len(shape) == 3:
            return Movie(images, (1, shape[1], shape[2]), shape[0])
        if len(shape) == 4:
            return Movie(images, shape[1:], shape[0])  # type: ignore[arg-type]
        raise ShapeError(
            f"images must be (T, Z, Y, X) or (T, Y, X) for 2D+t, got shape {shape}"
        )
    if not isinstance(images, Sequence) or len(images) == 0:
        raise ShapeError("images must be a (T, Z, Y, X) array or a non-empty list of frames")
    shapes = [as_frame(f, f"frame {i}").shape for i, f in enumerate(images)]
    if len(set(shapes)) != 1:
        first = shapes[0]
        bad = next(i for i, s in enumerate(shapes) if s != first)
        raise ShapeError(
            f"all frames must share one shape; frame 0 is {first} but frame {bad} is "
            f"{shapes[bad]} voxels. Crop or pad the frames to a common size."
        )
    return Movie(images, shapes[0], len(images))  # type: ignore[arg-type]
