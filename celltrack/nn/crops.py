"""Training crops for detection and flow: position, augmentation and label-aware retries.

A crop of ``crop_shape`` (clipped to the frame) is placed so that a chosen centre voxel
lies in it: the centre's place inside the crop is uniform over the crop's middle
``1 − 2 × margin`` fraction per axis (``margin = 0``: anywhere in the crop), then the
origin is clipped to the frame. With a random :class:`~celltrack.nn.augment.Transform`
a larger raw region around the crop is read (padded where it leaves the frame: the
image replicates its edge, labels and vectors are 0 = unlabelled) and resampled by
:func:`~celltrack.nn.augment.apply`, so zoom and rotation never pull in undefined voxels
of the image.

On 2D+t data (Z = 1) a crop configured with z > 1 would shrink to one slice, a small
fraction of the voxels it was sized for; :func:`planar_shape` turns it into an in-plane
crop of the same voxel budget (e.g. 8 × 64 × 64 → 1 × 176 × 176), which tiled prediction
(:mod:`celltrack.nn.tiling`) uses for tiles too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from celltrack.config.nn import AugmentConfig
from celltrack.errors import ShapeError
from celltrack.nn.augment import Transform, apply, random_transform

__all__ = [
    "PLANAR_MULTIPLE",
    "Crop",
    "crop_origin",
    "planar_shape",
    "sample_crop",
    "sample_labelled_crop",
]

#: In-plane sizes made by :func:`planar_shape` are multiples of this (voxels): the total
#: y/x pooling factor of a U-Net of up to 5 levels (4 poolings by 2), so no padding is needed.
PLANAR_MULTIPLE = 16


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def planar_shape(
    configured: Sequence[int], frame: Sequence[int], *, multiple: int = PLANAR_MULTIPLE
) -> tuple[int, int, int]:
    """A crop or tile shape for a frame: same voxel budget in-plane on 2D+t data.

    On a frame with Z = 1 and a configured shape with z > 1, the result is
    ``(1, y', x')`` with ``y' × x' ≈ z × y × x`` (the y:x aspect kept), each rounded to a
    multiple of ``multiple``; where one side exceeds the frame it is clipped and the other
    side takes the rest of the budget. Every other case (3D data, or z = 1 configured)
    returns ``configured`` unchanged. The result is not clipped to the frame otherwise
    (callers clip).

    Parameters
    ----------
    configured : sequence of 3 int
        The configured (z, y, x) shape in voxels.
    frame : sequence of 3 int
        The frame's (Z, Y, X) shape in voxels.
    multiple : int
        In-plane sizes are rounded to multiples of this (voxels).

    Returns
    -------
    tuple of 3 int
        (z, y, x) in voxels.

    Examples
    --------
    >>> planar_shape((8, 64, 64), (1, 1024, 1024))
    (1, 176, 176)
    >>> planar_shape((8, 64, 64), (1, 100, 1024))
    (1, 100, 320)
    >>> planar_shape((1, 64, 64), (1, 1024, 1024))
    (1, 64, 64)
    >>> planar_shape((8, 64, 64), (24, 96, 96))
    (8, 64, 64)
    """
    cz, cy, cx = (int(v) for v in configured)
    fz, fy, fx = (int(v) for v in frame)
    if fz != 1 or cz <= 1:
        return (cz, cy, cx)
    budget = float(cz) * cy * cx
    grow = np.sqrt(cz)
    y, x = _round_to(cy * grow, multiple), _round_to(cx * grow, multiple)
    if y > fy and x <= fx:
        y = fy
        x = min(fx, _round_to(budget / fy, multiple))
    elif x > fx and y <= fy:
        x = fx
        y = min(fy, _round_to(budget / fx, multiple))
    return (1, min(y, fy), min(x, fx))


@dataclass(frozen=True)
class Crop:
    """One training crop.

    Attributes
    ----------
    image : ndarray, shape (C, z, y, x), float32
    labels : ndarray, shape (z, y, x), or None
        Integer labels, 0 = unlabelled.
    vectors : ndarray, shape (3, z, y, x), float32, or None
        Vector field (rotated, zoomed and flipped with the geometry).
    """

    image: np.ndarray
    labels: np.ndarray | None = None
    vectors: np.ndarray | None = None

    @property
    def labelled(self) -> bool:
        """True if at least one voxel carries a label (> 0)."""
        return self.labels is not None and bool(np.any(self.labels > 0))


def crop_origin(
    rng: np.random.Generator,
    shape: Sequence[int],
    crop: Sequence[int],
    centre: Sequence[float] | None = None,
    *,
    margin: float = 0.0,
) -> np.ndarray:
    """Origin (z, y, x) in voxels of a crop of ``crop`` inside ``shape``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness.
    shape, crop : sequence of 3 int
        Frame and crop size in voxels (``crop ≤ shape``).
    centre : sequence of 3 float, optional
        A voxel the crop must contain; without it the origin is uniform over the frame.
    margin : float
        Keep ``centre`` this fraction of the crop away from the crop's faces, where the
        frame allows (0 ≤ margin < 0.5).

    Returns
    -------
    ndarray of int, shape (3,)
    """
    shape_a = np.asarray(shape, int)
    crop_a = np.asarray(crop, int)
    if centre is None:
        return np.array([rng.integers(0, s - c + 1) for s, c in zip(shape_a, crop_a)])
    p = np.clip(np.round(np.asarray(centre, float)).astype(int), 0, shape_a - 1)
    inset = np.floor(margin * crop_a).astype(int)
    lo = np.clip(p - crop_a + 1 + inset, 0, shape_a - crop_a)
    hi = np.clip(p - inset, 0, shape_a - crop_a)
    hi = np.maximum(hi, lo)
    return np.array([rng.integers(a, b + 1) for a, b in zip(lo, hi)])


def _region(
    arr: np.ndarray, lead: int, start: np.ndarray, size: np.ndarray, mode: str
) -> np.ndarray:
    """``arr[..., start:start+size]`` over the last 3 axes, padded where it leaves ``arr``."""
    shape = np.asarray(arr.shape[lead:])
    sl = tuple(slice(max(s, 0), min(s + r, n)) for s, r, n in zip(start, size, shape))
    out = arr[(slice(None),) * lead + sl]
    pad_lo = np.maximum(-start, 0)
    pad_hi = np.maximum(start + size - shape, 0)
    if np.any(pad_lo) or np.any(pad_hi):
        widths = [(0, 0)] * lead + [(int(a), int(b)) for a, b in zip(pad_lo, pad_hi)]
        out = np.pad(out, widths, mode=mode)  # type: ignore[call-overload]
    return out


def _raw_size(crop: np.ndarray, transform: Transform, two_d: bool) -> np.ndarray:
    """Input region that stays covered after zooming and rotating a ``crop`` output."""
    grow = np.ones(3)
    spin = abs(np.cos(transform.angle)) + abs(np.sin(transform.angle))
    grow[1:] = spin / min(transform.zoom[1], transform.zoom[2])
    grow[0] = 1.0 / transform.zoom[0]
    raw = np.ceil(crop * grow).astype(int) + 2
    if two_d:
        raw[0] = 1
    return raw


def sample_crop(
    rng: np.random.Generator,
    image: np.ndarray,
    crop_shape: Sequence[int],
    *,
    centre: Sequence[float] | None = None,
    margin: float = 0.0,
    labels: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
    foreground: np.ndarray | None = None,
    augment: AugmentConfig | None = None,
    voxel_size: Sequence[float] = (1.0, 1.0, 1.0),
    vector_unit: Literal["voxel", "um"] = "voxel",
    channel_shift: np.ndarray | Sequence[Sequence[int]] | None = None,
    vector_offset: Sequence[float] | None = None,
) -> Crop:
    """Draw one (augmented) crop of a frame and, consistently, of its labels and vectors.

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness of the position and the augmentation.
    image : ndarray, shape (C, Z, Y, X)
        Normalised frame(s) (e.g. C = 1 for detection, frames t−1 and t for flow).
    crop_shape : sequence of 3 int
        Crop (z, y, x) in voxels, clipped to the frame; on a frame with Z = 1 a crop with
        z > 1 becomes the in-plane crop of the same voxel budget (:func:`planar_shape`).
    centre : sequence of 3 float, optional
        Voxel (z, y, x) the crop contains (see :func:`crop_origin`); default random.
    margin : float
        See :func:`crop_origin`.
    labels : ndarray, shape (Z, Y, X), optional
        Integer labels (0 = unlabelled).
    vectors : ndarray, shape (3, Z, Y, X), optional
        Vector field in ``vector_unit``.
    foreground : ndarray of bool, shape (Z, Y, X), optional
        Foreground voxels for the contrast augmentation (see :func:`apply`).
    augment : AugmentConfig, optional
        Augmentation; None = a plain crop.
    voxel_size : sequence of 3 float
        Voxel size (z, y, x) in µm.
    vector_unit : {'voxel', 'um'}
        Unit of ``vectors``.
    channel_shift : array_like of int, shape (C, 3), optional
        Moves the content of each image channel by this many voxels (z, y, x) before the
        augmentation: channel ``c`` of the crop shows ``image[c]`` at ``p − shift[c]``
        (its region is read there, the frame's edge replicated where it leaves it). E.g.
        shifting the earlier frames of a flow window creates new displacements.
    vector_offset : sequence of 3 float, optional
        Added (in ``vector_unit``) to ``vectors`` at every labelled voxel (``labels`` > 0;
        every voxel without ``labels``) before the augmentation, so it is rotated, zoomed
        and flipped with the field: the change of a displacement target that
        ``channel_shift`` causes.

    Returns
    -------
    Crop

    Raises
    ------
    ShapeError
        If ``image`` is not (C, Z, Y, X), or ``channel_shift`` / ``vector_offset`` have
        the wrong shape.
    """
    image = np.asarray(image)
    if image.ndim != 4:
        raise ShapeError(f"image must be (C, Z, Y, X), got shape {image.shape}")
    shifts = None
    if channel_shift is not None:
        shifts = np.asarray(channel_shift)
        if shifts.shape != (image.shape[0], 3) or not np.issubdtype(shifts.dtype, np.integer):
            raise ShapeError(
                f"channel_shift must be integer voxels of shape (C, 3) = "
                f"({image.shape[0]}, 3), got {shifts.dtype} {shifts.shape}"
            )
    offset = None
    if vector_offset is not None:
        offset = np.asarray(vector_offset, np.float32)
        if offset.shape != (3,):
            raise ShapeError(f"vector_offset must be 3 values (z, y, x), got {offset.shape}")
    shape = np.asarray(image.shape[1:])
    crop = np.minimum(np.asarray(planar_shape(crop_shape, shape), int), shape)
    two_d = bool(shape[0] == 1)
    origin = crop_origin(rng, shape, crop, centre, margin=margin)
    transform = (
        None
        if augment is None
        else random_transform(rng, augment, voxel_size=voxel_size, two_d=two_d)
    )
    if transform is None or transform.is_affine_identity:
        start, size = origin, crop
    else:
        size = _raw_size(crop, transform, two_d)
        centre_vox = origin + (crop - 1) / 2.0
        start = np.round(centre_vox - (size - 1) / 2.0).astype(int)
    if shifts is None or not shifts.any():
        img = _region(image, 1, start, size, "edge")
    else:
        img = np.concatenate(
            [_region(image[c : c + 1], 1, start - shifts[c], size, "edge")
             for c in range(image.shape[0])]
        )
    lab = None if labels is None else _region(np.asarray(labels), 0, start, size, "constant")
    vec = None if vectors is None else _region(np.asarray(vectors), 1, start, size, "constant")
    if vec is not None and offset is not None and offset.any():
        vec = vec.astype(np.float32, copy=True)
        where = np.ones(vec.shape[1:], bool) if lab is None else np.asarray(lab) > 0
        vec[:, where] += offset[:, None]
    fg = None if foreground is None else _region(np.asarray(foreground), 0, start, size, "constant")
    if transform is None:
        return Crop(np.ascontiguousarray(img, np.float32), lab, vec)
    img, lab, vec = apply(
        transform,
        img,
        lab,
        vec,
        voxel_size=voxel_size,
        out_shape=crop,
        foreground=fg,
        vector_unit=vector_unit,
    )
    return Crop(img, lab, vec)


def sample_labelled_crop(
    rng: np.random.Generator,
    image: np.ndarray,
    crop_shape: Sequence[int],
    centres: np.ndarray,
    *,
    tries: int = 20,
    **options: object,
) -> Crop:
    """A crop around a random one of ``centres`` that keeps at least one labelled voxel.

    Augmentation can rotate every label out of a crop; up to ``tries`` crops (each around
    a freshly drawn centre) are drawn and the first labelled one is returned (the last
    one if none is). ``options`` are those of :func:`sample_crop` (``labels`` required).

    Parameters
    ----------
    centres : ndarray, shape (K, 3)
        Candidate centres in voxels; K = 0 places crops at random.
    tries : int
        Maximum number of crops drawn.
    """
    centres = np.asarray(centres, float).reshape(-1, 3)

    def draw() -> Crop:
        centre = centres[rng.integers(len(centres))] if len(centres) else None
        return sample_crop(rng, image, crop_shape, centre=centre, **options)  # type: ignore[arg-type]

    crop = draw()
    for _ in range(max(int(tries), 1) - 1):
        if crop.labelled:
            break
        crop = draw()
    return crop
