"""Tiny synthetic data for the flow tests: Gaussian blobs moved by a known shift."""

from __future__ import annotations

import numpy as np

from celltrack.graph import TrackGraph


def blob_image(centres_um, shape, voxel_size, sigma_um=2.0):
    """Sum of isotropic Gaussian blobs (Z, Y, X) at ``centres_um`` (K, 3) µm."""
    grids = np.meshgrid(*[np.arange(s) * v for s, v in zip(shape, voxel_size)], indexing="ij")
    img = np.zeros(shape, np.float32)
    for c in np.atleast_2d(centres_um):
        d2 = sum((g - ci) ** 2 for g, ci in zip(grids, c))
        img += np.exp(-d2 / (2 * sigma_um**2)).astype(np.float32)
    return img


def moving_blobs(shift_um, *, n_frames=3, shape=(6, 32, 32), voxel_size=(2.0, 1.0, 1.0), seed=0):
    """A movie of blobs translating by ``shift_um`` per frame, with its lineage.

    Returns
    -------
    images : ndarray (T, Z, Y, X) float32
    graph : TrackGraph with covariance and edges parent → child
    """
    rng = np.random.default_rng(seed)
    vs = np.asarray(voxel_size, float)
    extent = np.asarray(shape) * vs
    k = 5
    start = rng.uniform(0.3, 0.7, (k, 3)) * extent
    shift = np.asarray(shift_um, float)
    pos = np.stack([start + t * shift for t in range(n_frames)])  # (T, K, 3)
    images = np.stack([blob_image(pos[t], shape, vs) for t in range(n_frames)])
    ids = np.arange(n_frames * k).reshape(n_frames, k)
    nodes = {
        "id": ids.ravel(),
        "t": np.repeat(np.arange(n_frames), k),
        "z": pos[..., 0].ravel(),
        "y": pos[..., 1].ravel(),
        "x": pos[..., 2].ravel(),
        "covariance": np.broadcast_to(np.eye(3) * 4.0, (n_frames * k, 3, 3)).copy(),
    }
    edges = {"source": ids[:-1].ravel(), "target": ids[1:].ravel()}
    return images, TrackGraph(nodes, edges)
