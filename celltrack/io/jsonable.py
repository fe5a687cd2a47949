"""Graph attrs (nested dicts, lists, numpy values) as plain JSON values, for file metadata."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from celltrack.errors import InvalidInputError

__all__ = ["to_json_value"]


def to_json_value(value: Any, *, finite: bool = False, strict: str | None = None) -> Any:
    """Turn ``value`` (possibly nested mappings / lists of numpy values) into JSON values.

    Parameters
    ----------
    value : Any
        Mappings become dicts with str keys, lists/tuples and arrays become lists, numpy
        scalars Python numbers, paths strings.
    finite : bool
        Write NaN and infinities as None (for JSON written with ``allow_nan=False``).
    strict : str, optional
        Where the value goes (e.g. ``"GEFF metadata"``): any other type is then an error
        naming it. Default: other types become their ``str()``.

    Returns
    -------
    Any
        Built from dict, list, str, int, float, bool and None only.

    Raises
    ------
    InvalidInputError
        With ``strict``, for a value of another type.
    """
    def conv(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, np.ndarray):
            return conv(v.tolist())
        if isinstance(v, np.generic):
            return conv(v.item())
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, float) and finite and not math.isfinite(v):
            return None
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if strict is None:
            return str(v)
        raise InvalidInputError(
            f"graph attrs must be JSON-like (dict, list, str, numbers, numpy arrays) to go "
            f"into {strict}, got {type(v).__name__}: {v!r}"
        )

    return conv(value)
