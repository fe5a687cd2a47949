"""Random lineage forests and perturbed copies, for metric tests and benchmarks.

Private helpers (numpy only): :func:`random_forest` draws a ground-truth lineage forest
by a branching random walk; :func:`perturb` derives a "prediction" from it with every
kind of tracking error (moved, missed and extra nodes, missing / extra / swapped links,
gaps, false and missed divisions).
"""

from __future__ import annotations

import numpy as np

from celltrack.graph.trackgraph import TrackGraph

__all__ = ["perturb", "random_forest"]


def random_forest(
    n_frames: int,
    n_start: int,
    *,
    p_divide: float = 0.02,
    p_die: float = 0.01,
    extent_um: tuple[float, float, float] = (100.0, 500.0, 500.0),
    step_um: float = 2.0,
    daughter_offset_um: float = 4.0,
    seed: int | np.random.Generator = 0,
) -> TrackGraph:
    """A ground-truth lineage forest drawn by a branching random walk.

    Parameters
    ----------
    n_frames : int
        Number of frames T.
    n_start : int
        Cells in frame 0.
    p_divide, p_die : float
        Per-frame probabilities that a cell divides / disappears.
    extent_um : tuple of 3 float
        Box (z, y, x) in µm the first cells are drawn in.
    step_um : float
        Standard deviation of the per-frame displacement (µm).
    daughter_offset_um : float
        Distance of each daughter from the mother (µm).
    seed : int or Generator
        Randomness.

    Returns
    -------
    TrackGraph
        Ids ``1..N`` (positive, sorted by frame), edges parent → child between
        consecutive frames.
    """
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, extent_um, size=(n_start, 3))
    rows = np.arange(n_start)
    all_pos, all_t = [pos], [np.zeros(n_start, np.int64)]
    src, tgt = [], []
    next_row = n_start
    for t in range(1, n_frames):
        n = rows.size
        fate = rng.random(n)
        die = fate < p_die
        div = (fate >= p_die) & (fate < p_die + p_divide)
        keep = ~die & ~div
        parents = np.concatenate([rows[keep], rows[div], rows[div]])
        ppos = np.concatenate([pos[keep], pos[div], pos[div]])
        off = rng.normal(size=(int(div.sum()), 3))
        off *= daughter_offset_um / np.maximum(np.linalg.norm(off, axis=1, keepdims=True), 1e-9)
        shift = np.concatenate([np.zeros((int(keep.sum()), 3)), off, -off])
        new_pos = ppos + shift + rng.normal(scale=step_um, size=ppos.shape)
        new_rows = next_row + np.arange(parents.size)
        next_row += parents.size
        src.append(parents)
        tgt.append(new_rows)
        all_pos.append(new_pos)
        all_t.append(np.full(parents.size, t, np.int64))
        rows, pos = new_rows, new_pos
    p = np.concatenate(all_pos)
    e_src = np.concatenate(src) if src else np.zeros(0, np.int64)
    e_tgt = np.concatenate(tgt) if tgt else np.zeros(0, np.int64)
    nodes = {
        "id": np.arange(1, p.shape[0] + 1),
        "t": np.concatenate(all_t),
        "z": p[:, 0],
        "y": p[:, 1],
        "x": p[:, 2],
    }
    return TrackGraph(nodes, {"source": e_src + 1, "target": e_tgt + 1})


def perturb(
    gt: TrackGraph,
    *,
    jitter_um: float = 1.0,
    p_miss: float = 0.03,
    p_gap: float = 0.5,
    p_extra: float = 0.03,
    p_drop_edge: float = 0.03,
    p_swap: float = 0.02,
    p_false_div: float = 0.01,
    p_miss_div: float = 0.2,
    p_shift_div: float = 0.2,
    id_offset: int = 1_000_000,
    seed: int | np.random.Generator = 1,
) -> TrackGraph:
    """A prediction derived from ``gt`` with every kind of tracking error.

    Parameters
    ----------
    gt : TrackGraph
        Ground truth (forest, positions in µm).
    jitter_um : float
        Standard deviation of the position noise (µm).
    p_miss : float
        Fraction of nodes dropped (missed detections).
    p_gap : float
        Probability that a dropped node with one parent and one child is bridged by a
        skip edge (a gap).
    p_extra : float
        Extra (false positive) nodes, as a fraction of the nodes; half of them are
        attached to a nearby node of the previous frame (false divisions / extra links).
    p_drop_edge : float
        Fraction of edges removed (missing links).
    p_swap : float
        Fraction of edges whose targets are swapped with another edge of the same frame
        pair (wrong links, identity switches).
    p_false_div : float
        Fraction of non-dividing nodes given a second child (an extra node).
    p_miss_div : float
        Fraction of divisions losing one daughter link.
    p_shift_div : float
        Fraction of divisions moved one frame earlier or later (half each).
    id_offset : int
        Added to every id, so the prediction uses its own id space.
    seed : int or Generator
        Randomness.

    Returns
    -------
    TrackGraph
    """
    rng = np.random.default_rng(seed)
    n = gt.num_nodes
    t = gt.t.copy()
    pos = gt.positions + rng.normal(scale=jitter_um, size=(n, 3))
    src, tgt = (a.copy() for a in gt.edge_index())
    outdeg = np.bincount(src, minlength=n)
    t, pos, src, tgt, shifted_away = _shift_divisions(t, pos, src, tgt, outdeg, p_shift_div, rng)
    n = t.size
    outdeg = np.bincount(src, minlength=n)

    # missed divisions: drop one daughter link
    div_nodes = np.flatnonzero(outdeg >= 2)
    lose = div_nodes[rng.random(div_nodes.size) < p_miss_div]
    first_child_edge = np.full(n, -1, np.int64)
    first_child_edge[src[::-1]] = np.arange(src.size)[::-1]
    drop = np.zeros(src.size, bool)
    drop[first_child_edge[lose]] = True
    # missing links
    drop |= rng.random(src.size) < p_drop_edge
    src, tgt = src[~drop], tgt[~drop]

    # wrong links: swap targets of edge pairs within the same frame pair
    swap = np.flatnonzero(rng.random(src.size) < p_swap)
    if swap.size >= 2:
        key = t[src[swap]]
        order = swap[np.argsort(key, kind="stable")]
        a, b = order[0:-1:2], order[1::2]
        same = t[src[a]] == t[src[b]]
        a, b = a[same], b[same]
        tgt[a], tgt[b] = tgt[b].copy(), tgt[a].copy()

    # missed nodes, bridged by a gap edge sometimes
    miss = (rng.random(n) < p_miss) | shifted_away
    indeg = np.bincount(tgt, minlength=n)
    outdeg = np.bincount(src, minlength=n)
    parent = np.full(n, -1, np.int64)
    parent[tgt] = src
    child = np.full(n, -1, np.int64)
    child[src] = tgt
    bridge = miss & (indeg == 1) & (outdeg == 1) & (rng.random(n) < p_gap)
    bridge &= ~miss[np.maximum(parent, 0)] & ~miss[np.maximum(child, 0)] & ~shifted_away
    gap_src, gap_tgt = parent[bridge], child[bridge]
    keep_e = ~miss[src] & ~miss[tgt]
    src = np.concatenate([src[keep_e], gap_src])
    tgt = np.concatenate([tgt[keep_e], gap_tgt])

    # extra nodes; half attached to a node of the previous frame
    n_extra = round(p_extra * n)
    frames = gt.frames
    et = rng.choice(frames, size=n_extra) if frames.size else np.zeros(0, np.int64)
    lo, hi = pos.min(axis=0) if n else np.zeros(3), pos.max(axis=0) if n else np.ones(3)
    epos = rng.uniform(lo, hi, size=(n_extra, 3))
    new_src, new_tgt = [], []
    attach = np.flatnonzero((rng.random(n_extra) < 0.5) & (et > frames.min(initial=0)))
    alive = ~miss
    for k in attach.tolist():
        cands = np.flatnonzero(alive & (t == et[k] - 1))
        if cands.size:
            p = int(rng.choice(cands))
            epos[k] = pos[p] + rng.normal(scale=3.0, size=3)
            new_src.append(p)
            new_tgt.append(n + k)
    # false divisions: a second child for non-dividing nodes
    outdeg = np.bincount(src, minlength=n)
    last = frames.max(initial=0)
    cand = np.flatnonzero(alive & (outdeg == 1) & (t < last))
    fdiv = cand[rng.random(cand.size) < p_false_div]
    fpos = pos[fdiv] + rng.normal(scale=3.0, size=(fdiv.size, 3))
    f_rows = n + n_extra + np.arange(fdiv.size)

    all_t = np.concatenate([t, et, t[fdiv] + 1])
    all_pos = np.concatenate([pos, epos, fpos])
    keep_n = np.concatenate([~miss, np.ones(n_extra + fdiv.size, bool)])
    e_src = np.concatenate([src, np.asarray(new_src, np.int64), fdiv])
    e_tgt = np.concatenate([tgt, np.asarray(new_tgt, np.int64), f_rows])
    ids = np.arange(all_t.size) + 1 + id_offset
    nodes = {"id": ids[keep_n], "t": all_t[keep_n], "z": all_pos[keep_n, 0],
             "y": all_pos[keep_n, 1], "x": all_pos[keep_n, 2]}
    return TrackGraph(nodes, {"source": ids[e_src], "target": ids[e_tgt]})


def _shift_divisions(
    t: np.ndarray,
    pos: np.ndarray,
    src: np.ndarray,
    tgt: np.ndarray,
    outdeg: np.ndarray,
    p_shift: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Move some divisions one frame earlier or later.

    Earlier: ``p → u → {c1, c2}`` becomes ``p → {u, x}``, ``u → c2``, ``x → c1`` with a
    new node ``x`` beside ``u``. Later: ``c2`` is marked missing (returned mask) and
    ``c1`` takes ``c2``'s child, so ``c1`` divides instead of ``u``. Returns the frames
    and positions extended by the new nodes, the new edges and the missing mask.
    """
    n = t.size
    parent = np.full(n, -1, np.int64)
    parent[tgt] = src
    first = np.full(n, -1, np.int64)
    second = np.full(n, -1, np.int64)
    order = np.argsort(src, kind="stable")
    s_sorted = src[order]
    starts = np.searchsorted(s_sorted, np.arange(n))
    has2 = outdeg == 2
    first[has2] = order[starts[has2]]
    second[has2] = order[starts[has2] + 1]
    only_child = np.full(n, -1, np.int64)
    one = outdeg[src] == 1
    only_child[src[one]] = tgt[one]
    div = np.flatnonzero(has2 & (parent >= 0))
    c1 = tgt[first[div]]
    c2 = tgt[second[div]]
    ok = (only_child[c1] >= 0) & (only_child[c2] >= 0)
    div, c1, c2 = div[ok], c1[ok], c2[ok]
    pick = rng.random(div.size) < p_shift
    early = pick & (rng.random(div.size) < 0.5)
    late = pick & ~early
    away = np.zeros(n, bool)
    remove = np.zeros(src.size, bool)
    # later division: drop c2 (and its edges), c1 adopts c2's child
    away[c2[late]] = True
    add_src = [c1[late]]
    add_tgt = [only_child[c2[late]]]
    # earlier division: new node x at u's frame takes over the edge u -> c1
    e_div = div[early]
    remove[first[e_div]] = True
    x_rows = n + np.arange(e_div.size)
    add_src += [parent[e_div], x_rows]
    add_tgt += [x_rows, c1[early]]
    new_src = np.concatenate([src[~remove], *add_src])
    new_tgt = np.concatenate([tgt[~remove], *add_tgt])
    x_pos = pos[e_div] + rng.normal(scale=2.0, size=(e_div.size, 3))
    t_out = np.concatenate([t, t[e_div]])
    pos_out = np.concatenate([pos, x_pos])
    away = np.concatenate([away, np.zeros(e_div.size, bool)])
    return t_out, pos_out, new_src.astype(np.int64), new_tgt.astype(np.int64), away
