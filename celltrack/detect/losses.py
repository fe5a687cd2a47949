"""Detection losses: class-weighted NLL, centre soft-Dice, centre smoothness, prior loss.

Voxel weights are ``class_weights[class] × (false_weight if the label is a correction
else 1)``; unlabelled voxels weigh 0. The NLL is the weighted mean of the per-voxel
negative log-likelihood, and the Dice sums are weighted the same way, so a correction
counts ``false_weight`` times as much as a confirmation in every term (ELEPHANT
evaluated true and false voxels separately and mixed the two means; a single weighted
mean is the same idea without the special case of an empty set). A sample with no
labelled centre voxel gets Dice 0 (ELEPHANT reused the previous call's value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from celltrack.config.detection import LossConfig

__all__ = ["DetectionLoss", "prior_loss", "smoothness", "voxel_weights"]

_CENTRE = 2


def voxel_weights(labels: torch.Tensor, cfg: LossConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Class index (−1 = ignore) and weight per voxel from label codes.

    Parameters
    ----------
    labels : Tensor, shape (B, Z, Y, X), integer codes of :mod:`celltrack.detect.labels`
    cfg : LossConfig

    Returns
    -------
    classes : Tensor (B, Z, Y, X) int64 in {-1, 0, 1, 2}
    weights : Tensor (B, Z, Y, X) float32 (0 where unlabelled)
    """
    codes = labels.long()
    labelled = codes > 0
    classes = torch.where(labelled, torch.div(codes - 1, 2, rounding_mode="floor"), -1)
    false = labelled & ((codes - 1) % 2 == 1)
    cw = torch.tensor(cfg.class_weights, dtype=torch.float32, device=labels.device)
    weights = cw[classes.clamp(min=0)] * labelled
    weights = torch.where(false, weights * cfg.false_weight, weights)
    return classes, weights


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2.5 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / max(sigma, 1e-6)) ** 2)
    return k / k.sum()


def smoothness(prob: torch.Tensor, sigma_vox: Sequence[float]) -> torch.Tensor:
    """Mean |p − G_σ * p| of a ``(B, 1, Z, Y, X)`` map (separable Gaussian, σ in voxels).

    Axes with σ < 0.3 voxel or size 1 are not blurred. Borders replicate.
    """
    ref = prob
    for axis, sigma in enumerate(sigma_vox):
        size = prob.shape[2 + axis]
        if sigma < 0.3 or size == 1:
            continue
        k = _gaussian_kernel(float(sigma)).to(prob)
        r = (k.numel() - 1) // 2
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = k.numel()
        pad = [0] * 6
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = r
        padded = F.pad(ref, pad, mode="replicate")
        ref = F.conv3d(padded, k.reshape(shape))
    return (prob - ref).abs().mean()


class DetectionLoss(torch.nn.Module):
    """Weighted sum of NLL, centre soft-Dice and centre smoothness (normalised by the weights).

    Parameters
    ----------
    cfg : LossConfig
        Term and class weights.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) µm, to express the smoothness σ in voxels.
    """

    def __init__(self, cfg: LossConfig, voxel_size: Sequence[float]) -> None:
        super().__init__()
        self.cfg = cfg
        self.sigma_vox = [cfg.smooth_sigma_um / float(v) for v in voxel_size]

    def forward(
        self, log_prob: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of ``(B, 3, Z, Y, X)`` log-probabilities against ``(B, Z, Y, X)`` label codes.

        Returns
        -------
        loss : Tensor (scalar)
        parts : dict
            ``nll``, ``dice``, ``smooth`` values (floats) for logging.
        """
        cfg = self.cfg
        classes, weights = voxel_weights(labels, cfg)
        total_w = weights.sum()
        nll_vox = -log_prob.gather(1, classes.clamp(min=0).unsqueeze(1)).squeeze(1)
        nll = (nll_vox * weights).sum() / total_w.clamp(min=1e-12)
        p_centre = log_prob[:, _CENTRE].exp()
        g = (classes == _CENTRE).float()
        codes = labels.long()
        false = (codes > 0) & ((codes - 1) % 2 == 1)
        labelled = (codes > 0).float()
        wd = torch.where(false, labelled * cfg.false_weight, labelled)  # Dice: no class weights
        dims = (1, 2, 3)
        num = 2 * (wd * p_centre * g).sum(dims)
        den = (wd * p_centre**2).sum(dims) + (wd * g).sum(dims)
        has_centre = (g * labelled).sum(dims) > 0
        dice_per = torch.where(has_centre, 1 - num / den.clamp(min=1e-6), torch.zeros_like(num))
        dice = dice_per.mean()
        smooth = smoothness(p_centre.unsqueeze(1), self.sigma_vox)
        wsum = cfg.nll_weight + cfg.dice_weight + cfg.smooth_weight
        loss = (cfg.nll_weight * nll + cfg.dice_weight * dice + cfg.smooth_weight * smooth) / max(
            wsum, 1e-12
        )
        named = (("nll", nll), ("dice", dice), ("smooth", smooth))
        parts = {k: float(v.detach()) for k, v in named}
        return loss, parts


def prior_loss(log_prob: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Self-supervised prior: centre and foreground probabilities follow the intensity.

    ``L1(p_centre, I) + L1(1 − p_background, I)`` with ``I`` the min–max normalised
    ``(B, 1, Z, Y, X)`` input: bright means nucleus, without any annotation.
    """
    target = image[:, 0]
    p = log_prob.exp()
    return (p[:, _CENTRE] - target).abs().mean() + ((1 - p[:, 0]) - target).abs().mean()
