"""Whole-frame intensity normalisation computed block by block.

:func:`celltrack.nn.normalize_frame` maps a frame's low/high percentiles to 0/1, after an
optional per-z-slice median correction. Block-wise prediction must use the *frame's*
values, not a block's, so each block contributes a summary per z slice (its distinct
values and their counts), the summaries of a frame are merged, and the percentiles (and
slice medians) are read from the merged order statistics with numpy's linear
interpolation (``np.percentile``'s default method).

- **Integer data** (and float data with few distinct values): the summaries are the exact
  value counts, so the statistics equal the whole-frame ones exactly.
- **Float data** with more than ``max_values`` distinct values in a block slice: the
  summary keeps ``max_values`` evenly spaced order statistics of the slice, each
  standing for the ranks up to the next one, so a percentile is off by at most
  ``slice voxels / max_values`` ranks of that block slice (an approximation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from celltrack.config.nn import NormalizeConfig
from celltrack.errors import InvalidInputError

__all__ = [
    "FrameNormalization",
    "SliceSummary",
    "apply_normalization",
    "frame_normalization",
    "merge_summaries",
    "summarize_block",
]

#: distinct values kept per block slice before float data is summarised approximately
MAX_VALUES = 65536


@dataclass
class SliceSummary:
    """Sorted distinct values of (part of) one z slice and how many voxels hold each.

    Attributes
    ----------
    values : ndarray, shape (k,), float32
        Sorted values (as float32, the dtype of normalisation).
    counts : ndarray, shape (k,), int64
        Voxels per value (approximate summaries: ranks represented).
    exact : bool
        False when the values are a subsample of the order statistics.
    """

    values: np.ndarray
    counts: np.ndarray
    exact: bool = True


def _summarize(values: np.ndarray, max_values: int) -> SliceSummary:
    values = np.asarray(values).ravel()
    if values.dtype.kind in "iub":
        uniq, counts = np.unique(values, return_counts=True)
        return SliceSummary(uniq.astype(np.float32), counts.astype(np.int64))
    values = np.sort(values.astype(np.float32))
    uniq, first = np.unique(values, return_index=True)
    if len(uniq) <= max_values:
        counts = np.diff(np.append(first, len(values)))
        return SliceSummary(uniq, counts.astype(np.int64))
    ranks = np.linspace(0, len(values), max_values, endpoint=False).astype(np.int64)
    counts = np.diff(np.append(ranks, len(values)))
    return SliceSummary(values[ranks], counts.astype(np.int64), exact=False)


def summarize_block(block: np.ndarray, *, max_values: int = MAX_VALUES) -> list[SliceSummary]:
    """One :class:`SliceSummary` per z slice of a block's core.

    Parameters
    ----------
    block : ndarray, shape (z, y, x)
        Raw voxels of a block core (any real dtype).
    max_values : int
        Distinct float values kept per slice before summarising approximately.

    Raises
    ------
    InvalidInputError
        If the block holds NaN or infinite values.
    """
    block = np.asarray(block)
    if block.dtype.kind == "f" and not np.all(np.isfinite(block)):
        raise InvalidInputError("frame contains NaN or infinite values; clean the image first")
    return [_summarize(block[z], max_values) for z in range(block.shape[0])]


def merge_summaries(parts: Sequence[SliceSummary]) -> SliceSummary:
    """Merge summaries (of blocks of one slice, or of several slices) into one."""
    parts = [p for p in parts if len(p.values)]
    if not parts:
        return SliceSummary(np.zeros(0, np.float32), np.zeros(0, np.int64))
    values = np.concatenate([p.values for p in parts])
    counts = np.concatenate([p.counts for p in parts])
    order = np.argsort(values, kind="stable")
    values, counts = values[order], counts[order]
    uniq, start = np.unique(values, return_index=True)
    return SliceSummary(uniq, np.add.reduceat(counts, start), all(p.exact for p in parts))


def _order_stat(summary: SliceSummary, cum: np.ndarray, rank: np.ndarray) -> np.ndarray:
    return summary.values[np.searchsorted(cum, rank, side="right")]


def _percentile(summary: SliceSummary, q: Sequence[float]) -> np.ndarray:
    """``np.percentile(data, q)`` (linear method) from a summary of ``data`` (float32)."""
    cum = np.cumsum(summary.counts)
    n = int(cum[-1])
    virtual = (n - 1) * (np.asarray(q, np.float64) / 100.0)
    prev = np.clip(np.floor(virtual), 0, n - 1).astype(np.int64)
    nxt = np.clip(prev + 1, 0, n - 1)
    gamma = virtual - prev
    a = _order_stat(summary, cum, prev)
    b = _order_stat(summary, cum, nxt)
    diff = b - a
    out = a + diff * gamma
    upper = gamma >= 0.5
    out[upper] = (b - diff * (1 - gamma))[upper]
    return out


def _median(summary: SliceSummary) -> np.float32:
    """``np.median`` of the summarised float32 data."""
    cum = np.cumsum(summary.counts)
    n = int(cum[-1])
    if n % 2:
        return np.float32(_order_stat(summary, cum, np.asarray([n // 2]))[0])
    pair = _order_stat(summary, cum, np.asarray([n // 2 - 1, n // 2]))
    return np.mean(pair.astype(np.float32))


@dataclass
class FrameNormalization:
    """How to normalise one frame, so that any block of it equals ``normalize_frame``'s.

    Attributes
    ----------
    low, high : float
        Intensities mapped to 0 and 1 (after the slice shifts).
    shift : ndarray, shape (Z,), float32
        Per-z-slice additive median correction (zeros without median correction).
    exact : bool
        False when float data were summarised approximately.
    """

    low: float
    high: float
    shift: np.ndarray
    exact: bool = True

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {
            "low": float(self.low),
            "high": float(self.high),
            "shift": self.shift.astype(np.float32).tolist(),
            "exact": bool(self.exact),
        }

    @classmethod
    def from_dict(cls, data: dict) -> FrameNormalization:
        """Inverse of :meth:`to_dict`."""
        return cls(
            float(data["low"]),
            float(data["high"]),
            np.asarray(data["shift"], np.float32),
            bool(data["exact"]),
        )


def frame_normalization(
    slices: Sequence[SliceSummary],
    cfg: NormalizeConfig | None = None,
    *,
    median_correction: bool = False,
) -> FrameNormalization:
    """The frame's normalisation from merged per-slice summaries.

    Parameters
    ----------
    slices : sequence of SliceSummary
        One merged summary per z slice of the frame (all its blocks).
    cfg : NormalizeConfig, optional
        Mode and percentiles (default percentile 1 – 99.8).
    median_correction : bool
        Shift each slice so its median equals the frame's (as
        :func:`celltrack.nn.normalize.median_correct`).

    Returns
    -------
    FrameNormalization
    """
    cfg = cfg or NormalizeConfig()
    exact = all(s.exact for s in slices)
    nz = len(slices)
    shift = np.zeros(nz, np.float32)
    if median_correction:
        medians = np.asarray([_median(s) for s in slices], np.float32)
        target = float(_median(merge_summaries(slices)))
        shift = np.where(medians > 0, target - medians, 0.0).astype(np.float32)
        slices = [
            SliceSummary((s.values + shift[z]).astype(np.float32), s.counts, s.exact)
            for z, s in enumerate(slices)
        ]
    merged = merge_summaries(slices)
    vmin, vmax = float(merged.values[0]), float(merged.values[-1])
    if cfg.mode == "percentile":
        lo, hi = (float(v) for v in _percentile(merged, (cfg.low_percentile, cfg.high_percentile)))
        if hi <= lo:
            lo, hi = vmin, vmax
    else:
        lo, hi = vmin, vmax
    return FrameNormalization(lo, hi, shift, exact)


def apply_normalization(block: np.ndarray, norm: FrameNormalization, z0: int = 0) -> np.ndarray:
    """Normalise a block of a frame exactly as :func:`celltrack.nn.normalize_frame` would.

    Parameters
    ----------
    block : ndarray, shape (z, y, x)
        Raw voxels.
    norm : FrameNormalization
        The frame's normalisation.
    z0 : int
        The block's first z slice in the frame (for the slice shifts).

    Returns
    -------
    ndarray, shape (z, y, x), float32
    """
    data = np.asarray(block).astype(np.float32)
    if norm.shift.any():
        data = data + norm.shift[z0 : z0 + data.shape[0], None, None]
    if norm.high <= norm.low:
        return np.zeros_like(data)
    return (data - norm.low) / np.float32(norm.high - norm.low)
