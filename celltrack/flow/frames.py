"""One input frame of the flow model: shape check and 2D promotion.

Movies go through :func:`celltrack.io.as_movie`; this handles the single frames that
:func:`celltrack.flow.predict_flow` takes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from celltrack.errors import ShapeError

__all__ = ["as_frame"]


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
