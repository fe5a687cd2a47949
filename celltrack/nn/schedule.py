"""Learning-rate schedule shared by detection and flow training: cosine decay."""

from __future__ import annotations

import math

import torch

__all__ = ["cosine_lr", "set_lr"]


def cosine_lr(base_lr: float, step: int, total: int, final_fraction: float) -> float:
    """Learning rate of ``step`` (0-based) of ``total``: cosine from ``base_lr`` down to
    ``base_lr × final_fraction`` at the last step.

    Parameters
    ----------
    base_lr : float
        Learning rate of the first step (1/step).
    step : int
        Position in the schedule (0-based; an optimisation step or an epoch).
    total : int
        Length of the schedule; with ``total ≤ 1`` the rate is constant.
    final_fraction : float
        End value as a fraction of ``base_lr`` (1 = constant).

    Examples
    --------
    >>> [round(cosine_lr(1.0, s, 3, 0.1), 3) for s in range(3)]
    [1.0, 0.55, 0.1]
    """
    if total <= 1 or final_fraction == 1.0:
        return float(base_lr)
    progress = min(max(step, 0), total - 1) / (total - 1)
    f = float(final_fraction)
    return float(base_lr) * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group of ``optimizer``."""
    for group in optimizer.param_groups:
        group["lr"] = float(lr)
