"""Random geometric and intensity augmentation of training crops (detection and flow).

One :class:`Transform` is drawn with :func:`random_transform` and applied by :func:`apply`
identically to an image, its label volume and (for flow) a vector field, so they stay
consistent:

- zoom (per axis, finer axes jitter more, as ELEPHANT does) and in-plane (y–x) rotation
  are one affine resampling about the crop centre, done in physical units so
  anisotropic voxels rotate correctly; labels and vectors use nearest-neighbour
  sampling and are 0 (= unlabelled) where the transform reaches outside the input;
- flips reverse an axis; the vector component along a flipped axis changes sign;
- vectors are rotated and scaled with the geometry (a displacement zoomed by ``s``
  becomes ``s`` times longer);
- contrast scales the foreground–background difference by ``u ~ U(1 - c, 1)`` (what
  ELEPHANT's documentation describes; its code drew ``U(c, 1)``), intensity applies a
  global gain and offset;
- imaging degradations of real microscopy act on the image only (never on labels or
  vectors), after the geometry, in this order: a Gaussian blur of ``σ ~ U(0, blur_um)``
  µm (``σ / voxel_size`` voxels per axis, z untouched in 2D), an uneven illumination
  (the crop is multiplied by a linear in-plane ramp of random direction running from
  ``1 − g/2`` to ``1 + g/2`` between its extreme corners) and additive Gaussian noise of
  standard deviation ``~ U(0, noise)`` (normalised intensity units).

Random numbers for an option are drawn only when it is on, after those of the options
above, so turning the new options on never changes the other draws of a seeded run.

Examples
--------
>>> import numpy as np
>>> from celltrack.nn.augment import random_transform, apply
>>> from celltrack.config.nn import AugmentConfig
>>> rng = np.random.default_rng(0)
>>> t = random_transform(rng, AugmentConfig(rotation_deg=30, scale=0.1))
>>> img, lab, vec = apply(t, np.zeros((1, 4, 16, 16), np.float32),
...                       labels=np.zeros((4, 16, 16), np.uint8), voxel_size=(2, 0.5, 0.5))
>>> img.shape, lab.shape
((1, 4, 16, 16), (4, 16, 16))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from celltrack.config.nn import AugmentConfig
from celltrack.errors import InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size

__all__ = ["Transform", "apply", "random_transform"]


@dataclass(frozen=True)
class Transform:
    """One random augmentation.

    Attributes
    ----------
    zoom : tuple of 3 float
        Magnification per axis (z, y, x); > 1 makes objects larger.
    angle : float
        In-plane rotation (radians), counter-clockwise from +x towards +y.
    flips : tuple of 3 bool
        Reverse axis z, y, x (applied after zoom and rotation).
    contrast : float
        Factor on the foreground–background difference (1 = unchanged).
    gain, offset : float
        Global intensity change ``I -> I * gain + offset``.
    blur_um : float
        Gaussian blur sigma (µm), anisotropy-aware; 0 = none.
    gradient : float
        Illumination ramp amplitude ``g``: the crop is multiplied by ``1 − g/2 .. 1 + g/2``.
    gradient_angle : float
        Direction of increasing illumination in the y–x plane (radians, from +x towards +y).
    noise : float
        Standard deviation of additive Gaussian noise (normalised intensity units).
    noise_seed : int
        Seed of the noise field (so applying a transform is deterministic).
    """

    zoom: tuple[float, float, float] = (1.0, 1.0, 1.0)
    angle: float = 0.0
    flips: tuple[bool, bool, bool] = (False, False, False)
    contrast: float = 1.0
    gain: float = 1.0
    offset: float = 0.0
    blur_um: float = 0.0
    gradient: float = 0.0
    gradient_angle: float = 0.0
    noise: float = 0.0
    noise_seed: int = 0

    @property
    def is_affine_identity(self) -> bool:
        """True if no resampling is needed (no zoom, no rotation)."""
        return self.angle == 0.0 and all(z == 1.0 for z in self.zoom)


def random_transform(
    rng: np.random.Generator,
    cfg: AugmentConfig,
    *,
    voxel_size: Sequence[float] = (1.0, 1.0, 1.0),
    two_d: bool = False,
) -> Transform:
    """Draw a random :class:`Transform`.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (pass a seeded one for reproducibility).
    cfg : AugmentConfig
        Which augmentations are on and how strong.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm: the zoom jitter of an axis is ``cfg.scale`` times
        min(voxel_size) / voxel_size[axis], so coarse (z) axes jitter less.
    two_d : bool
        Z = 1 data: never zoom or flip z.

    Returns
    -------
    Transform
    """
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
            f"{type(rng).__name__}"
        )
    vs = check_voxel_size(voxel_size)
    spread = cfg.scale * vs.min() / vs
    zoom = tuple(float(v) for v in 1.0 + rng.uniform(-1.0, 1.0, 3) * spread)
    flips = tuple(bool(v) for v in rng.random(3) < 0.5) if cfg.flip else (False,) * 3
    angle = float(np.deg2rad(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)))
    contrast = float(rng.uniform(1.0 - cfg.contrast, 1.0))
    gain = float(rng.uniform(1.0 - cfg.intensity, 1.0 + cfg.intensity))
    offset = float(rng.uniform(-cfg.intensity, cfg.intensity) / 2)
    # new options draw only when on, after the others: seeded runs without them are unchanged
    blur_um = float(rng.uniform(0.0, cfg.blur_um)) if cfg.blur_um > 0 else 0.0
    gradient, gradient_angle = 0.0, 0.0
    if cfg.gradient > 0:
        gradient = float(rng.uniform(0.0, cfg.gradient))
        gradient_angle = float(rng.uniform(-np.pi, np.pi))
    noise, noise_seed = 0.0, 0
    if cfg.noise > 0:
        noise = float(rng.uniform(0.0, cfg.noise))
        noise_seed = int(rng.integers(0, 2**63 - 1))
    if two_d:
        zoom = (1.0, zoom[1], zoom[2])
        flips = (False, flips[1], flips[2])
    return Transform(
        zoom=zoom,  # type: ignore[arg-type]
        angle=angle,
        flips=flips,  # type: ignore[arg-type]
        contrast=contrast,
        gain=gain,
        offset=offset,
        blur_um=blur_um,
        gradient=gradient,
        gradient_angle=gradient_angle,
        noise=noise,
        noise_seed=noise_seed,
    )


def _forward_matrix(transform: Transform) -> np.ndarray:
    """Physical-space (z, y, x) linear map input → output: rotation after zoom."""
    c, s = np.cos(transform.angle), np.sin(transform.angle)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])
    return rot @ np.diag(transform.zoom)


def _adjust_intensity(
    image: np.ndarray, transform: Transform, foreground: np.ndarray | None
) -> np.ndarray:
    out = image.astype(np.float32, copy=True)
    if transform.contrast != 1.0:
        if foreground is not None and foreground.any() and (~foreground).any():
            for ch in out:  # few channels: loop is fine
                bg = float(ch[~foreground].mean())
                ch[foreground] = bg + (ch[foreground] - bg) * transform.contrast
        elif foreground is None:
            mean = out.mean(axis=(1, 2, 3), keepdims=True)
            out = mean + (out - mean) * transform.contrast
    if transform.gain != 1.0 or transform.offset != 0.0:
        out = out * transform.gain + transform.offset
    return out


def _degrade(image: np.ndarray, transform: Transform, vs: np.ndarray) -> np.ndarray:
    """Blur, illumination ramp and noise of a ``(C, Z, Y, X)`` float32 image (image only)."""
    if transform.blur_um > 0:
        sigma = transform.blur_um / vs
        if image.shape[1] == 1:
            sigma[0] = 0.0
        image = np.stack(
            [ndimage.gaussian_filter(ch, sigma, mode="nearest") for ch in image]
        ).astype(np.float32)
    if transform.gradient > 0:
        ny, nx = image.shape[2:]
        y = (np.arange(ny) - (ny - 1) / 2.0) * vs[1]
        x = (np.arange(nx) - (nx - 1) / 2.0) * vs[2]
        c, s = np.cos(transform.gradient_angle), np.sin(transform.gradient_angle)
        proj = s * y[:, None] + c * x[None, :]
        span = abs(s) * abs(y[0]) + abs(c) * abs(x[0])  # projection of the farthest corner
        if span > 0:
            ramp = 1.0 + 0.5 * transform.gradient * proj / span
            image = image * ramp[None, None].astype(np.float32)
    if transform.noise > 0:
        rng = np.random.default_rng(transform.noise_seed)
        image = image + rng.normal(0.0, transform.noise, image.shape).astype(np.float32)
    return image


def apply(
    transform: Transform,
    image: np.ndarray,
    labels: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
    *,
    voxel_size: Sequence[float] = (1.0, 1.0, 1.0),
    out_shape: Sequence[int] | None = None,
    foreground: np.ndarray | None = None,
    vector_unit: Literal["voxel", "um"] = "voxel",
    image_mode: str = "nearest",
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Apply one transform to an image and, consistently, to labels and vectors.

    Parameters
    ----------
    transform : Transform
        From :func:`random_transform` (or built by hand).
    image : ndarray, shape (C, Z, Y, X)
        Input crop (any real dtype); returned as float32.
    labels : ndarray, shape (Z, Y, X), optional
        Integer labels (0 = unlabelled); resampled nearest-neighbour, 0 outside the input.
    vectors : ndarray, shape (3, Z, Y, X), optional
        Vector field with components (z, y, x) in ``vector_unit``; positions resampled
        nearest-neighbour (0 outside), components rotated, zoomed and sign-flipped.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm (rotations happen in physical space).
    out_shape : sequence of 3 int, optional
        Output (Z, Y, X); default the input's. The input centre maps to the output centre,
        so a caller can pass a larger raw crop and get a fully covered output.
    foreground : ndarray of bool, shape (Z, Y, X), optional
        Foreground voxels of the input for the contrast change; without it the contrast
        change acts around each channel's mean.
    vector_unit : {'voxel', 'um'}
        Unit of ``vectors``.
    image_mode : str
        ``scipy.ndimage`` boundary mode for the image ('nearest', 'reflect', ...).

    Blur, illumination gradient and noise act on the image only, on the output crop.

    Returns
    -------
    image : ndarray, shape (C, *out_shape), float32
    labels : ndarray, shape out_shape, or None
    vectors : ndarray, shape (3, *out_shape), float32, or None
    """
    image = np.asarray(image)
    if image.ndim != 4:
        raise ShapeError(f"image must be (C, Z, Y, X), got shape {image.shape}")
    in_shape = np.asarray(image.shape[1:])
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != tuple(in_shape):
            raise ShapeError(f"labels must have shape {tuple(in_shape)}, got {labels.shape}")
    if vectors is not None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (3, *in_shape):
            raise ShapeError(f"vectors must have shape (3, {tuple(in_shape)}), got {vectors.shape}")
    if foreground is not None:
        foreground = np.asarray(foreground, dtype=bool)
        if foreground.shape != tuple(in_shape):
            raise ShapeError(
                f"foreground must have shape {tuple(in_shape)}, got {foreground.shape}"
            )
    if vector_unit not in ("voxel", "um"):
        raise InvalidInputError(f"vector_unit must be 'voxel' or 'um', got {vector_unit!r}")
    vs = check_voxel_size(voxel_size)
    out_shape_arr = in_shape if out_shape is None else np.asarray([int(s) for s in out_shape])
    if out_shape_arr.shape != (3,) or np.any(out_shape_arr < 1):
        raise ShapeError(f"out_shape must be 3 positive ints, got {out_shape}")

    image = _adjust_intensity(image, transform, foreground)

    fwd = _forward_matrix(transform)
    if transform.is_affine_identity and np.array_equal(out_shape_arr, in_shape):
        img_out = image
        lab_out = None if labels is None else labels.copy()
        vec_out = None if vectors is None else vectors.copy()
    else:
        inv = np.linalg.inv(fwd)
        # voxel index o (output) -> voxel index i (input), via physical space about centres
        matrix = np.diag(1 / vs) @ inv @ np.diag(vs)
        c_in = (in_shape - 1) / 2.0
        c_out = (out_shape_arr - 1) / 2.0
        offset = c_in - matrix @ c_out
        shape = tuple(int(s) for s in out_shape_arr)
        if in_shape[0] == 1 and shape[0] == 1:
            matrix[0, :] = 0.0
            matrix[:, 0] = 0.0
            matrix[0, 0] = 1.0
            offset[0] = 0.0

        def resample(arr: np.ndarray, order: int, mode: str) -> np.ndarray:
            return ndimage.affine_transform(
                arr, matrix, offset=offset, output_shape=shape, order=order, mode=mode, cval=0
            )

        img_out = np.stack([resample(ch, 1, image_mode) for ch in image]).astype(np.float32)
        lab_out = None if labels is None else resample(labels, 0, "constant")
        vec_out = None
        if vectors is not None:
            moved = np.stack([resample(comp, 0, "constant") for comp in vectors])
            to_phys = vs if vector_unit == "voxel" else np.ones(3)
            lin = np.diag(1 / to_phys) @ fwd @ np.diag(to_phys)
            vec_out = np.einsum("ij,j...->i...", lin, moved).astype(np.float32)
    axes = [d for d in range(3) if transform.flips[d]]
    if axes:
        img_out = np.flip(img_out, axis=[a + 1 for a in axes])
        if lab_out is not None:
            lab_out = np.flip(lab_out, axis=axes)
        if vec_out is not None:
            vec_out = np.flip(vec_out, axis=[a + 1 for a in axes]).copy()
            vec_out[axes] *= -1
    img_out = _degrade(np.asarray(img_out, dtype=np.float32), transform, vs)
    img_out = np.ascontiguousarray(img_out, dtype=np.float32)
    lab_out = None if lab_out is None else np.ascontiguousarray(lab_out)
    vec_out = None if vec_out is None else np.ascontiguousarray(vec_out, dtype=np.float32)
    return img_out, lab_out, vec_out
