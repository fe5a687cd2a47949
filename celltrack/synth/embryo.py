"""``make_embryo``: a synthetic 3D+t movie of nuclei with its ground-truth lineage."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from celltrack import __version__
from celltrack.config import config_from_dict
from celltrack.errors import ConfigError
from celltrack.graph import TrackGraph
from celltrack.synth.config import SynthConfig
from celltrack.synth.motion import simulate_lineage
from celltrack.synth.render import background_profile, render_nuclei, to_counts

__all__ = ["SynthDataset", "make_embryo"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SynthDataset:
    """A synthetic movie and its ground truth.

    Attributes
    ----------
    image : ndarray, shape (T, Z, Y, X), uint16
        Camera counts.
    voxel_size : ndarray, shape (3,)
        Voxel size (z, y, x) in µm.
    gt : TrackGraph
        Ground-truth lineage: one node per nucleus per frame (centre in µm, the centroid
        of its rendered intensity) with node columns ``covariance`` (N, 3, 3) µm² (the
        ellipsoid ``xᵀΣ⁻¹x ≤ 1`` is the nucleus, its surface at half intensity before
        blurring) and ``radius`` (N,) µm (equivalent-volume sphere radius); edges
        parent → child between consecutive frames (two children at a division; a track
        ends where its nucleus' centre leaves the field of view, so a division whose
        daughter leaves at once keeps one child). Node ids increase with time.
        ``gt.attrs`` holds ``voxel_size``, ``shape`` (T, Z, Y, X) and the generator
        config (``synth_config``).
    config : SynthConfig
        The parameters that made this dataset.
    """

    image: np.ndarray
    voxel_size: np.ndarray
    gt: TrackGraph
    config: SynthConfig

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Image shape (T, Z, Y, X) in voxels."""
        return tuple(int(s) for s in self.image.shape)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (
            f"SynthDataset(image {self.shape} uint16, voxel_size {self.voxel_size.tolist()} µm, "
            f"gt {self.gt.num_nodes} nodes / {self.gt.num_edges} edges / "
            f"{self.gt.divisions().size} divisions, seed {self.config.seed})"
        )


def _as_config(cfg: SynthConfig | Mapping[str, Any] | None) -> SynthConfig:
    if cfg is None:
        return SynthConfig()
    if isinstance(cfg, SynthConfig):
        return cfg
    if isinstance(cfg, Mapping):
        return config_from_dict(dict(cfg), SynthConfig)
    raise ConfigError(
        f"make_embryo expects a SynthConfig or a mapping of its fields, got {type(cfg).__name__}"
    )


def make_embryo(
    cfg: SynthConfig | Mapping[str, Any] | None = None, *, progress: bool = False
) -> SynthDataset:
    """Generate a synthetic 3D+t embryo: a uint16 movie of nuclei and its true lineage.

    Nuclei are textured, randomly oriented anisotropic ellipsoids that move with the
    tissue (rotation about the volume centre + translation), jitter, repel each other,
    divide (two daughters separated along a random axis) and may leave the field of view.
    The movie is blurred with an anisotropic Gaussian PSF and corrupted by Poisson photon
    noise, Gaussian read noise, uneven background across z, depth attenuation and an
    intensity drift over time. Deterministic per ``cfg.seed``.

    Parameters
    ----------
    cfg : SynthConfig or mapping, optional
        Generator parameters (default: ``SynthConfig()``, the embedded default dataset).
        A mapping is validated into a :class:`SynthConfig`.
    progress : bool
        Show a tqdm progress bar over frames.

    Returns
    -------
    SynthDataset
        ``image`` (T, Z, Y, X) uint16, ``voxel_size`` (3,) µm, ``gt`` TrackGraph, ``config``.

    Raises
    ------
    ConfigError
        If the config is invalid, or ``n_nuclei`` nuclei cannot be placed
        ``min_spacing_um`` apart in the volume.

    Examples
    --------
    >>> data = make_embryo(SynthConfig.tiny(seed=1))
    >>> data.image.shape
    (6, 12, 48, 48)
    >>> data.gt.validate(forest=True).num_nodes > 0
    True
    """
    cfg = _as_config(cfg)
    rng = np.random.default_rng(cfg.seed)
    lineage = simulate_lineage(cfg, rng)
    vs = np.asarray(cfg.voxel_size, dtype=np.float64)
    shape = tuple(int(s) for s in cfg.shape)
    background = background_profile(cfg, rng)

    image = np.empty((cfg.n_frames, *shape), dtype=np.uint16)
    order = np.argsort(lineage.t, kind="stable")
    bounds = np.searchsorted(lineage.t[order], np.arange(cfg.n_frames + 1))
    for t in tqdm(range(cfg.n_frames), disable=not progress, desc="synth frames"):
        rows = order[bounds[t] : bounds[t + 1]]
        signal = render_nuclei(lineage, rows, shape, vs, cfg.texture_strength)
        image[t] = to_counts(signal, background, t, cfg, rng)

    gt = TrackGraph(
        {
            "id": lineage.ids,
            "t": lineage.t,
            "z": lineage.pos[:, 0],
            "y": lineage.pos[:, 1],
            "x": lineage.pos[:, 2],
            "covariance": lineage.covariance,
            "radius": lineage.radius,
        },
        {"source": lineage.source, "target": lineage.target},
        attrs={
            "voxel_size": vs.tolist(),
            "shape": [cfg.n_frames, *shape],
            "source": "celltrack.synth.make_embryo",
            "celltrack_version": __version__,
            "synth_config": cfg.model_dump(mode="json"),
        },
    )
    log.debug(
        "synthetic embryo: %d frames, %d nodes, %d edges, %d divisions",
        cfg.n_frames,
        gt.num_nodes,
        gt.num_edges,
        gt.divisions().size,
    )
    return SynthDataset(image=image, voxel_size=vs, gt=gt, config=cfg)
