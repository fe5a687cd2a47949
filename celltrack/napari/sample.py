"""napari sample data: a synthetic 3D+t embryo of fluorescent nuclei (File > Open Sample)."""

from __future__ import annotations

from typing import Any

from celltrack.synth import SynthConfig, make_embryo

__all__ = ["synthetic_embryo"]


def synthetic_embryo(seed: int = 0) -> list[tuple[Any, dict[str, Any], str]]:
    """The small synthetic embryo (20 frames of 24 × 96 × 96 voxels, (2, 1, 1) µm).

    Returns
    -------
    list of (data, kwargs, layer type)
        One image layer, (T, Z, Y, X) uint16, scaled to µm; create a project from it in
        the celltrack widget with the voxel size (2, 1, 1) µm.
    """
    data = make_embryo(SynthConfig(seed=seed))
    scale = (1.0, *(float(v) for v in data.voxel_size))
    return [(data.image, {"name": "synthetic embryo", "scale": scale}, "image")]
