"""Weakly connected components of an edge list: the one place celltrack asks scipy for them."""

from __future__ import annotations

import numpy as np

__all__ = ["component_labels"]


def component_labels(
    src: np.ndarray, tgt: np.ndarray, n: int, *, first_appearance: bool = False
) -> np.ndarray:
    """Component label of each of ``n`` vertices joined by the edges ``src[i] – tgt[i]``.

    Parameters
    ----------
    src, tgt : ndarray of int, shape (E,)
        Edge end points, vertex indices in ``0..n-1`` (direction is ignored).
    n : int
        Number of vertices.
    first_appearance : bool
        Number the components 0, 1, … in order of their first vertex (else scipy's order).

    Returns
    -------
    ndarray of int, shape (n,)
    """
    from scipy import sparse
    from scipy.sparse import csgraph

    src = np.asarray(src, np.int64)
    adjacency = sparse.csr_matrix(
        (np.ones(src.size, np.int8), (src, np.asarray(tgt, np.int64))), shape=(n, n)
    )
    _, labels = csgraph.connected_components(adjacency, directed=False)
    if not first_appearance:
        return labels
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse]
