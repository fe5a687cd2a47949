"""Lineage simulation: positions, shapes and divisions of nuclei over time (no pixels).

The state of the nuclei alive in a frame is a set of arrays; one step applies the
coherent tissue motion (rotation about the volume centre + translation), independent
jitter, divisions, growth of young nuclei, repulsion and the field-of-view rule. All
steps are vectorised over nuclei.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from celltrack.errors import ConfigError
from celltrack.synth.config import SynthConfig

__all__ = ["Lineage", "random_rotations", "rotation_about", "simulate_lineage"]

#: number of plane waves making up the texture of one nucleus
N_WAVES = 4
#: relative size of a daughter just after division (volume halves)
DAUGHTER_SCALE = 0.5 ** (1.0 / 3.0)
#: fraction of the gap to the full size that a young nucleus grows per frame
GROWTH_RATE = 0.2
#: repulsion iterations per frame
REPULSION_ITERS = 12


@dataclass
class Lineage:
    """Per-node arrays of a simulated lineage (N nodes, E edges), sorted by frame.

    Attributes
    ----------
    ids : ndarray (N,) int64
    t : ndarray (N,) int64
    pos : ndarray (N, 3) float64
        Centres (z, y, x) in µm.
    rot : ndarray (N, 3, 3)
        Orientation; columns are the semi-axis directions.
    semi : ndarray (N, 3)
        Semi-axes in µm (along the columns of ``rot``).
    brightness : ndarray (N,)
        Relative brightness.
    waves : ndarray (N, K, 3)
        Texture wave vectors in the nucleus frame (rad/µm).
    phases : ndarray (N, K)
        Texture phases (rad).
    source, target : ndarray (E,) int64
        Edges parent → child as node ids.
    """

    ids: np.ndarray
    t: np.ndarray
    pos: np.ndarray
    rot: np.ndarray
    semi: np.ndarray
    brightness: np.ndarray
    waves: np.ndarray
    phases: np.ndarray
    source: np.ndarray
    target: np.ndarray

    @property
    def covariance(self) -> np.ndarray:
        """Covariances Σ = R·diag(semi²)·Rᵀ, shape (N, 3, 3), µm²."""
        return np.einsum("nij,nj,nkj->nik", self.rot, self.semi**2, self.rot)

    @property
    def radius(self) -> np.ndarray:
        """Equivalent-volume sphere radius (geometric mean semi-axis), shape (N,), µm."""
        return np.cbrt(np.prod(self.semi, axis=1))


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniformly random rotation matrices (n, 3, 3) from normalised Gaussian quaternions."""
    q = rng.standard_normal((n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, a, b, c = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (b * b + c * c), 2 * (a * b - c * w), 2 * (a * c + b * w)], -1),
            np.stack([2 * (a * b + c * w), 1 - 2 * (a * a + c * c), 2 * (b * c - a * w)], -1),
            np.stack([2 * (a * c - b * w), 2 * (b * c + a * w), 1 - 2 * (a * a + b * b)], -1),
        ],
        axis=1,
    )


def rotation_about(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rotation matrix (3, 3) by ``angle_rad`` about ``axis`` (Rodrigues' formula)."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * kx + (1 - np.cos(angle_rad)) * (kx @ kx)


def _random_unit(n: int, rng: np.random.Generator, planar: np.ndarray) -> np.ndarray:
    v = rng.standard_normal((n, 3))
    v[:, planar] = 0.0
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)


class _State:
    """Arrays describing the nuclei alive in one frame."""

    def __init__(self, **arrays: np.ndarray) -> None:
        self.arrays = arrays

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None

    def take(self, index: np.ndarray) -> _State:
        return _State(**{k: v[index] for k, v in self.arrays.items()})

    @staticmethod
    def concat(states: list[_State]) -> _State:
        keys = states[0].arrays.keys()
        return _State(**{k: np.concatenate([s.arrays[k] for s in states]) for k in keys})

    def __len__(self) -> int:
        return int(self.arrays["pos"].shape[0])


def _new_nuclei(
    n: int, base: np.ndarray, brightness: np.ndarray, cfg: SynthConfig, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Shape, orientation and texture of ``n`` new nuclei with base radii ``base`` (µm)."""
    a = cfg.anisotropy
    # semi-axes with product base³ and longest / shortest = anisotropy
    axis_factors = np.array([a, np.sqrt(a), 1.0]) / a ** (1.0 / 2.0)
    wave_dirs = rng.standard_normal((n, N_WAVES, 3))
    wave_dirs /= np.linalg.norm(wave_dirs, axis=2, keepdims=True)
    k = 2 * np.pi / cfg.texture_wavelength_um
    return {
        "shape_factors": np.broadcast_to(axis_factors, (n, 3)).copy(),
        "base": base,
        "rot": random_rotations(n, rng),
        "brightness": brightness,
        "waves": wave_dirs * k * rng.uniform(0.8, 1.25, (n, N_WAVES, 1)),
        "phases": rng.uniform(0, 2 * np.pi, (n, N_WAVES)),
    }


def _repel(
    pos: np.ndarray,
    size: np.ndarray,
    spacing: float,
    frozen: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Push apart pairs closer than ``spacing``·(size_i + size_j)/2 (vectorised over pairs)."""
    if spacing <= 0 or pos.shape[0] < 2:
        return pos
    pos = pos.copy()
    for _ in range(REPULSION_ITERS):
        pairs = cKDTree(pos).query_pairs(spacing * float(size.max()), output_type="ndarray")
        if pairs.size == 0:
            break
        i, j = pairs[:, 0], pairs[:, 1]
        d = pos[j] - pos[i]
        dist = np.linalg.norm(d, axis=1)
        target = spacing * 0.5 * (size[i] + size[j])
        close = dist < target
        if not np.any(close):
            break
        i, j, d, dist, target = i[close], j[close], d[close], dist[close], target[close]
        degenerate = dist < 1e-9
        if np.any(degenerate):
            d[degenerate] = _random_unit(int(degenerate.sum()), rng, frozen)
            dist[degenerate] = 1e-9
        unit = d / np.maximum(dist, 1e-9)[:, None]
        push = (0.5 * 1.02 * (target - np.maximum(dist, 0.0)))[:, None] * unit
        push[:, frozen] = 0.0
        delta = np.zeros_like(pos)
        np.add.at(delta, i, -push)
        np.add.at(delta, j, push)
        pos += delta
    return pos


def _place_initial(cfg: SynthConfig, rng: np.random.Generator, extent: np.ndarray) -> np.ndarray:
    """Dart-throwing placement of ``n_nuclei`` centres at least ``min_spacing_um`` apart."""
    n = cfg.n_nuclei
    margin = np.minimum(cfg.radius_um, extent / 2)
    lo, hi = margin, extent - margin
    accepted = np.zeros((0, 3))
    spacing2 = cfg.min_spacing_um**2
    stalled = 0
    for _ in range(50):  # batches of candidates
        before = accepted.shape[0]
        cand = rng.uniform(lo, hi, (max(4 * n, 64), 3))
        if before:  # drop candidates too close to already accepted centres (vectorised)
            d2 = np.sum((cand[:, None, :] - accepted[None, :, :]) ** 2, axis=2)
            cand = cand[d2.min(axis=1) >= spacing2]
        for c in cand:  # greedy pass over the remaining candidates (tens to hundreds)
            if accepted.shape[0] == n:
                break
            if accepted.shape[0] == 0 or np.min(np.sum((accepted - c) ** 2, axis=1)) >= spacing2:
                accepted = np.vstack([accepted, c])
        if accepted.shape[0] == n:
            return accepted
        stalled = stalled + 1 if accepted.shape[0] == before else 0
        if stalled >= 3:  # the volume is full
            break
    volume = float(np.prod(np.maximum(hi - lo, 1e-9)))
    raise ConfigError(
        f"cannot place n_nuclei={n} nuclei at least min_spacing_um={cfg.min_spacing_um} µm "
        f"apart in the field of view ({np.round(extent, 1).tolist()} µm, usable volume "
        f"{volume:.0f} µm³); only {accepted.shape[0]} fit. Lower n_nuclei or min_spacing_um, "
        "or enlarge shape"
    )


def _semi_axes(state: _State) -> np.ndarray:
    return state.shape_factors * (state.base * state.scale)[:, None]


def simulate_lineage(cfg: SynthConfig, rng: np.random.Generator) -> Lineage:
    """Simulate nucleus positions, shapes, divisions and exits for ``cfg.n_frames`` frames.

    Parameters
    ----------
    cfg : SynthConfig
        Generator parameters.
    rng : numpy.random.Generator
        Source of randomness (consumed in a fixed order: deterministic per seed).

    Returns
    -------
    Lineage
        Per-node arrays and parent → child edges.
    """
    shape = np.asarray(cfg.shape)
    vs = np.asarray(cfg.voxel_size, dtype=np.float64)
    extent = (shape - 1) * vs  # µm; voxel centres span [0, extent]
    frozen = shape == 1  # axes without extent (2D+t): no motion along them
    centre = extent / 2

    n0 = cfg.n_nuclei
    pos = _place_initial(cfg, rng, extent)
    pos[:, frozen] = 0.0
    base = np.clip(
        rng.normal(cfg.radius_um, cfg.radius_std_um, n0), 0.3 * cfg.radius_um, None
    )
    bright = np.clip(rng.normal(1.0, cfg.brightness_std, n0), 0.2, None)
    state = _State(
        pos=pos,
        scale=np.ones(n0),
        age=rng.integers(0, cfg.min_cycle_frames + 1, n0),
        ids=np.arange(n0, dtype=np.int64),
        **_new_nuclei(n0, base, bright, cfg, rng),
    )
    next_id = n0
    rot_step = rotation_about(
        np.asarray(cfg.drift_rotation_axis, dtype=np.float64), np.deg2rad(cfg.drift_rotation_deg)
    )
    translation = np.asarray(cfg.drift_translation_um, dtype=np.float64)
    translation[frozen] = 0.0

    frames: list[_State] = [state]
    sources: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    for t in range(1, cfg.n_frames):
        n = len(state)
        if n == 0:
            frames.append(state)
            continue
        # coherent tissue motion + jitter
        sign = 1.0
        if cfg.drift_reverse_every > 0 and ((t - 1) // cfg.drift_reverse_every) % 2 == 1:
            sign = -1.0
        pos = centre + (state.pos - centre) @ rot_step.T + sign * translation
        pos += rng.normal(0.0, cfg.jitter_um, (n, 3)) if cfg.jitter_um > 0 else 0.0
        pos[:, frozen] = 0.0
        rot = np.einsum("ij,njk->nik", rot_step, state.rot)
        moved = _State(**{**state.arrays, "pos": pos, "rot": rot})

        # divisions (capped so that at most max_nuclei are alive)
        divide = (rng.random(n) < cfg.division_rate) & (moved.age >= cfg.min_cycle_frames)
        room = cfg.max_nuclei - n
        div_rows = np.flatnonzero(divide)
        if div_rows.size > room:
            div_rows = np.sort(rng.choice(div_rows, size=max(room, 0), replace=False))
        keep_rows = np.setdiff1d(np.arange(n), div_rows)
        stay = moved.take(keep_rows)
        stay.arrays["age"] = stay.age + 1
        stay.arrays["scale"] = stay.scale + GROWTH_RATE * (1.0 - stay.scale)
        parts = [stay]
        parent_rows = [keep_rows]
        if div_rows.size:
            nd = div_rows.size
            parent = moved.take(div_rows)
            axis = _random_unit(nd, rng, frozen)
            half = 0.5 * cfg.daughter_separation_um * axis
            d_pos = np.concatenate([parent.pos + half, parent.pos - half])
            d_base = np.concatenate([parent.base, parent.base])
            d_bright = np.clip(
                np.concatenate([parent.brightness, parent.brightness])
                * rng.normal(1.0, 0.05, 2 * nd),
                0.2,
                None,
            )
            daughters = _State(
                pos=d_pos,
                scale=np.full(2 * nd, DAUGHTER_SCALE),
                age=np.zeros(2 * nd, dtype=np.int64),
                ids=np.zeros(2 * nd, dtype=np.int64),
                **_new_nuclei(2 * nd, d_base, d_bright, cfg, rng),
            )
            parts.append(daughters)
            parent_rows.append(np.concatenate([div_rows, div_rows]))
        new = _State.concat(parts)
        par = np.concatenate(parent_rows)
        new.arrays["pos"] = _repel(new.pos, new.scale, cfg.min_spacing_um, frozen, rng)

        # field of view
        inside = np.all((new.pos >= -1e-9) & (new.pos <= extent + 1e-9), axis=1)
        if not cfg.allow_leaving:
            p = new.pos
            p = np.where(p < 0, -p, p)
            p = np.where(p > extent, 2 * extent - p, p)
            new.arrays["pos"] = np.clip(p, 0, extent)
            inside = np.ones(len(new), bool)
        new = new.take(np.flatnonzero(inside))
        par = par[inside]
        new.arrays["ids"] = np.arange(next_id, next_id + len(new), dtype=np.int64)
        next_id += len(new)
        sources.append(state.ids[par])
        targets.append(new.ids)
        frames.append(new)
        state = new

    all_nodes = _State.concat(frames)
    t = np.concatenate([np.full(len(s), i, dtype=np.int64) for i, s in enumerate(frames)])
    return Lineage(
        ids=all_nodes.ids,
        t=t,
        pos=all_nodes.pos,
        rot=all_nodes.rot,
        semi=_semi_axes(all_nodes),
        brightness=all_nodes.brightness,
        waves=all_nodes.waves,
        phases=all_nodes.phases,
        source=np.concatenate(sources) if sources else np.zeros(0, np.int64),
        target=np.concatenate(targets) if targets else np.zeros(0, np.int64),
    )
