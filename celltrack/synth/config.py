"""Configuration of the synthetic embryo generator (:class:`SynthConfig`) and its presets."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import Field, model_validator

from celltrack.config import Config

__all__ = ["SynthConfig"]

PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class SynthConfig(Config):
    """Parameters of a synthetic 3D+t embryo: tissue motion, divisions and image formation.

    The default (``SynthConfig()``) is the small embedded dataset: 20 frames of
    24 × 96 × 96 voxels of (2, 1, 1) µm, 36 nuclei growing to ≈ 60–80 by divisions, slow
    rotation and translation of the tissue, nuclei ≈ 8 voxels across in y/x. Use
    :meth:`tiny` for unit tests and :meth:`large_motion` for flow-model tests.

    Derive variants with ``cfg.model_copy(update={...})`` or pass overrides to a preset:
    ``SynthConfig.tiny(seed=3)``.
    """

    # ------------------------------------------------------------------ sampling
    seed: int = Field(0, ge=0, description="Seed of numpy.random.default_rng (dimensionless).")
    n_frames: PositiveInt = Field(20, description="Number of time points T (frames).")
    shape: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        (24, 96, 96), description="Volume shape (Z, Y, X) in voxels; Z = 1 gives 2D+t data."
    )
    voxel_size: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = Field(
        (2.0, 1.0, 1.0), description="Voxel size (z, y, x) in µm."
    )
    # ------------------------------------------------------------------ nuclei
    n_nuclei: PositiveInt = Field(36, description="Number of nuclei in the first frame (count).")
    max_nuclei: PositiveInt = Field(
        80, description="Cap on the number of nuclei alive in a frame (count); no division beyond."
    )
    radius_um: PositiveFloat = Field(
        4.0,
        description="Mean nucleus radius in µm (equivalent-volume sphere radius, the geometric "
        "mean of the three semi-axes).",
    )
    radius_std_um: NonNegFloat = Field(
        0.4, description="Standard deviation of the nucleus radius across nuclei, in µm."
    )
    anisotropy: float = Field(
        1.3,
        ge=1.0,
        le=4.0,
        description="Ratio of the longest to the shortest semi-axis of a nucleus "
        "(dimensionless, 1 = sphere); each nucleus has a random orientation.",
    )
    min_spacing_um: NonNegFloat = Field(
        9.0,
        description="Minimum centre-to-centre distance between nuclei in µm, enforced by a "
        "simple repulsion (scaled down for freshly divided, smaller daughters).",
    )
    brightness_std: float = Field(
        0.15,
        ge=0.0,
        lt=1.0,
        description="Relative standard deviation of the per-nucleus brightness "
        "(dimensionless; mean brightness is 1).",
    )
    texture_strength: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Amplitude of the chromatin-like texture inside nuclei, relative to the "
        "nucleus brightness (dimensionless; 0 = flat nuclei).",
    )
    texture_wavelength_um: PositiveFloat = Field(
        3.0, description="Wavelength of the texture pattern inside nuclei, in µm."
    )
    # ------------------------------------------------------------------ motion
    drift_translation_um: tuple[FiniteFloat, FiniteFloat, FiniteFloat] = Field(
        (0.0, 0.3, 0.5),
        description="Coherent tissue translation (z, y, x) in µm/frame.",
    )
    drift_rotation_deg: FiniteFloat = Field(
        1.0,
        description="Coherent tissue rotation about the volume centre, in degrees/frame.",
    )
    drift_rotation_axis: tuple[FiniteFloat, FiniteFloat, FiniteFloat] = Field(
        (1.0, 0.0, 0.0),
        description="Axis (z, y, x) of the tissue rotation (normalised; (1, 0, 0) rotates "
        "the y-x plane about the optical axis). Dimensionless.",
    )
    drift_reverse_every: int = Field(
        0,
        ge=0,
        description="Reverse the direction of the translation every this many frames "
        "(frames; 0 = never), so that fast drifts stay inside the field of view.",
    )
    jitter_um: NonNegFloat = Field(
        0.4,
        description="Standard deviation of the independent random motion of each nucleus, "
        "per axis, in µm/frame.",
    )
    allow_leaving: bool = Field(
        True,
        description="If True, nuclei whose centre leaves the field of view end their track; "
        "if False they are reflected back inside.",
    )
    # ------------------------------------------------------------------ divisions
    division_rate: float = Field(
        0.07,
        ge=0.0,
        le=1.0,
        description="Probability that an eligible nucleus divides between two frames "
        "(per nucleus per frame).",
    )
    min_cycle_frames: int = Field(
        3,
        ge=1,
        description="Frames a nucleus must live after its birth before it may divide (frames).",
    )
    daughter_separation_um: NonNegFloat = Field(
        7.0,
        description="Distance between the two daughter centres in the frame after a division, "
        "along a random axis, in µm.",
    )
    # ------------------------------------------------------------------ image formation
    blur_sigma_um: tuple[NonNegFloat, NonNegFloat, NonNegFloat] = Field(
        (1.2, 0.6, 0.6),
        description="Standard deviation (z, y, x) of the Gaussian point-spread function in µm "
        "(larger in z, as in a confocal/light-sheet microscope).",
    )
    photon_scale: PositiveFloat = Field(
        100.0,
        description="Expected photons per unit intensity (photons; a nucleus of mean "
        "brightness gives about this many photons per voxel). Lower = noisier.",
    )
    read_noise: NonNegFloat = Field(
        2.0, description="Standard deviation of the Gaussian camera read noise, in counts."
    )
    offset: float = Field(
        100.0, ge=0.0, le=30000.0, description="Camera offset added to every voxel, in counts."
    )
    add_noise: bool = Field(
        True,
        description="If False, write the noise-free expected counts (no Poisson, no read "
        "noise), e.g. to test geometry.",
    )
    background: NonNegFloat = Field(
        0.1, description="Mean background level relative to the nucleus brightness "
        "(dimensionless intensity units)."
    )
    background_z_variation: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Relative amplitude of the uneven background across z-slices "
        "(dimensionless; each slice's background is scaled by 1 ± this, smoothly varying).",
    )
    z_attenuation: float = Field(
        0.3,
        ge=0.0,
        lt=1.0,
        description="Fraction of the nucleus signal lost from the first to the last z-slice "
        "(dimensionless; depth attenuation).",
    )
    intensity_drift: float = Field(
        -0.01,
        gt=-1.0,
        le=1.0,
        description="Relative change of the overall intensity per frame (per frame; -0.01 = "
        "1 % photobleaching per frame, compounded).",
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> SynthConfig:
        if self.n_nuclei > self.max_nuclei:
            raise ValueError(
                f"n_nuclei ({self.n_nuclei}) must be <= max_nuclei ({self.max_nuclei}); "
                "raise max_nuclei or lower n_nuclei"
            )
        if self.radius_std_um >= self.radius_um:
            raise ValueError(
                f"radius_std_um ({self.radius_std_um}) must be smaller than radius_um "
                f"({self.radius_um}) so that radii stay positive"
            )
        if not np.any(np.asarray(self.drift_rotation_axis) != 0):
            raise ValueError("drift_rotation_axis must be a non-zero vector (z, y, x)")
        return self

    # ------------------------------------------------------------------ presets
    @classmethod
    def tiny(cls, **overrides: Any) -> SynthConfig:
        """A very small dataset for unit tests: 6 frames of 12 × 48 × 48 voxels, < 0.1 s.

        Parameters
        ----------
        **overrides
            Field values replacing the preset's.
        """
        values: dict[str, Any] = {
            "n_frames": 6,
            "shape": (12, 48, 48),
            "voxel_size": (2.0, 1.0, 1.0),
            "n_nuclei": 8,
            "max_nuclei": 16,
            "radius_um": 3.5,
            "radius_std_um": 0.3,
            "min_spacing_um": 8.0,
            "daughter_separation_um": 6.5,
            "division_rate": 0.12,
            "min_cycle_frames": 2,
            "drift_translation_um": (0.0, 0.3, 0.4),
            "drift_rotation_deg": 2.0,
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def large_motion(cls, **overrides: Any) -> SynthConfig:
        """Fast coherent motion for flow-model tests.

        The tissue translates by ≈ 8.6 µm/frame (reversing direction every 2 frames so
        that it stays in view) and rotates by 3°/frame about the optical axis: nearly every
        displacement between frames (median ≈ 8.8 µm) exceeds half of the typical
        nearest-neighbour spacing (≈ 11 µm), so nearest-neighbour linking fails while
        flow-corrected linking succeeds. 40 nuclei, divisions as in the default.

        Parameters
        ----------
        **overrides
            Field values replacing the preset's.
        """
        values: dict[str, Any] = {
            "n_frames": 12,
            "n_nuclei": 40,
            "drift_translation_um": (0.0, 5.0, 7.0),
            "drift_reverse_every": 2,
            "drift_rotation_deg": 3.0,
            "jitter_um": 0.4,
            "division_rate": 0.06,
        }
        values.update(overrides)
        return cls(**values)
