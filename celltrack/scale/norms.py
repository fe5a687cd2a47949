"""Whole-frame statistics for a network's GroupNorm layers, gathered block by block.

GroupNorm normalises by the mean and variance of its whole input, so a block alone sees
other statistics than the whole frame and block-wise output would differ. :class:`NormStats`
switches each GroupNorm layer of a model between three behaviours:

- *plain*: ordinary GroupNorm over the tensor it gets;
- *frozen*: normalise with given per-group mean and variance (the whole frame's), which
  makes the layer a local, per-voxel operation;
- *collecting*: add the layer input's per-group sum, sum of squares and count over a
  block's core to a running total, then stop the forward pass.

Gathering the statistics of layer k needs those of layers 0..k-1 frozen, so a network with
L GroupNorm layers takes L partial passes over the blocks before the prediction pass (the
flow and Linajea U-Nets have none and take no extra pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NormStats", "StopForward", "group_norm_layers"]


class StopForward(Exception):
    """Raised inside a forward pass once the collected layer has its statistics."""


def group_norm_layers(model: Any) -> list[nn.GroupNorm]:
    """The GroupNorm layers of ``model`` in module order (the order of a forward pass)."""
    modules = getattr(model, "modules", None)
    if modules is None:
        return []
    return [m for m in modules() if isinstance(m, nn.GroupNorm)]


class NormStats:
    """Switch the GroupNorm layers of a model between plain, frozen and collecting.

    Parameters
    ----------
    model : torch.nn.Module
        The network; its layers are patched (instance ``forward``) until :meth:`restore`.

    Attributes
    ----------
    layers : list of nn.GroupNorm
    frozen : list of (ndarray, ndarray) or None
        Per layer, the whole-frame per-group mean and variance, shape (G,) each, or None
        for plain behaviour.
    """

    def __init__(self, model: Any) -> None:
        self.layers = group_norm_layers(model)
        self.frozen: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(self.layers)
        self._tensors: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.layers)
        self.collect: int | None = None
        self.core: Sequence[tuple[int, int]] = ()
        self.padded: Sequence[int] = ()
        self.result: tuple[np.ndarray, np.ndarray, int] | None = None
        for i, layer in enumerate(self.layers):
            layer.__dict__["forward"] = self._make_forward(i, layer)

    def _make_forward(self, i: int, layer: nn.GroupNorm) -> Any:
        def forward(x: torch.Tensor) -> torch.Tensor:
            return self._forward(i, layer, x)

        return forward

    def restore(self) -> None:
        """Give the layers back their ordinary forward."""
        for layer in self.layers:
            layer.__dict__.pop("forward", None)

    def set_frozen(self, stats: Sequence[tuple[np.ndarray, np.ndarray] | None]) -> None:
        """Freeze layer i with ``stats[i]`` = (mean, var) of shape (G,) (None = plain)."""
        stats = list(stats) + [None] * (len(self.layers) - len(stats))
        self.frozen = stats
        self._tensors = [
            None
            if s is None
            else (
                torch.as_tensor(np.asarray(s[0], np.float64)),
                torch.as_tensor(np.asarray(s[1], np.float64)),
            )
            for s in stats
        ]

    def freeze_identity(self) -> None:
        """Freeze every layer with mean 0, variance 1 (a local network, for probing)."""
        self.set_frozen([(np.zeros(m.num_groups), np.ones(m.num_groups)) for m in self.layers])

    def _forward(self, i: int, layer: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
        groups = layer.num_groups
        if self.collect == i:
            factor = [p // s for p, s in zip(self.padded, x.shape[2:])]
            crop = tuple(slice(lo // f, -(-hi // f)) for (lo, hi), f in zip(self.core, factor))
            v = x[(slice(None), slice(None), *crop)].double()
            v = v.reshape(v.shape[0], groups, -1)
            self.result = (
                v.sum(-1).sum(0).numpy(),
                (v * v).sum(-1).sum(0).numpy(),
                int(v.shape[0] * v.shape[-1]),
            )
            raise StopForward
        st = self._tensors[i]
        if st is None:
            return F.group_norm(x, groups, layer.weight, layer.bias, layer.eps)
        # PyTorch's own order of operations: y = x * scale + shift per channel, with
        # scale = rstd * weight and shift = bias - mean * scale (float32 like its kernel)
        shape = x.shape
        per = shape[1] // groups
        mean = st[0].to(x.dtype).repeat_interleave(per)
        rstd = torch.rsqrt(st[1] + layer.eps).to(x.dtype).repeat_interleave(per)
        if layer.affine:
            scale = rstd * layer.weight
            shift = layer.bias - mean * scale
        else:
            scale, shift = rstd, -mean * rstd
        view = (1, shape[1]) + (1,) * (x.ndim - 2)
        y = x * scale.view(view) + shift.view(view)
        return y

    @staticmethod
    def finish(sums: np.ndarray, squares: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-group (mean, biased variance) from summed (sum, sum of squares, count)."""
        mean = np.asarray(sums, np.float64) / count
        var = np.maximum(np.asarray(squares, np.float64) / count - mean * mean, 0.0)
        return mean, var
