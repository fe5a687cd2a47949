"""ELEPHANT's proofreading vocabulary: the node tags, their named sets and the re-check rules.

This is the one module that says what a tag means; detection labels, spot merging,
training, the project, candidate graphs and the linkers all ask it.

Node tags (DESIGN.md, "Annotation tags"):

======== ==================================================================
tag      meaning
======== ==================================================================
``tp``   a nucleus confirmed by a person (annotated, or a prediction accepted)
``fn``   a nucleus the model missed and a person added (a correction)
``fp``   a prediction a person rejected (a correction: trains as background)
``tn``   a rejected region the model no longer fires on (background)
``tb``   a true periphery-only mark
``fb``   a false periphery-only mark (a correction)
``unlabeled`` a prediction nobody reviewed (never used for training)
======== ==================================================================

The re-check before new predictions replace a frame's (ELEPHANT's rule): reviewed tags are
reset pessimistically (:data:`RESET`: tp → fn, fp → tn, fb → tb), then every reset spot that
a new prediction lands on is upgraded (:data:`FOUND`: fn → tp, tn → fp, tb → fb).
:func:`recheck_tags` applies both in one call.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import numpy as np

from celltrack.errors import InvalidInputError

__all__ = [
    "BACKGROUND",
    "CORRECTIONS",
    "FOUND",
    "LINKABLE",
    "MANUAL",
    "NEVER_LINKED",
    "NUCLEUS",
    "PERIPHERY",
    "PINNED_IN",
    "PINNED_OUT",
    "RESET",
    "REVIEW",
    "REVIEWED",
    "TAGS",
    "TAG_DTYPE",
    "Tag",
    "approved_mask",
    "check_tags",
    "found_tags",
    "recheck_tags",
    "reset_tags",
    "review_tags",
    "reviewed_mask",
    "tags_of",
    "unknown_tags",
]


class Tag(str, enum.Enum):
    """A node's proofreading tag (compares equal to its string value)."""

    TP = "tp"
    FP = "fp"
    TN = "tn"
    FN = "fn"
    TB = "tb"
    FB = "fb"
    UNLABELED = "unlabeled"

    def __str__(self) -> str:  # "tp", not "Tag.TP" (NumPy converts with str())
        return self.value


#: Every tag, in a fixed order.
TAGS: tuple[str, ...] = tuple(tag.value for tag in Tag)
#: NumPy dtype wide enough for every tag (``"unlabeled"`` has 9 characters).
TAG_DTYPE = f"<U{max(len(t) for t in TAGS)}"

#: Tags set by a person (everything but ``unlabeled``): the detector's training data.
REVIEWED: tuple[str, ...] = tuple(t for t in TAGS if t != Tag.UNLABELED)
#: Confirmed nuclei: drawn as nucleus in training labels, pinned into the ILP.
NUCLEUS: tuple[str, ...] = (Tag.TP.value, Tag.FN.value)
#: Periphery-only marks.
PERIPHERY: tuple[str, ...] = (Tag.TB.value, Tag.FB.value)
#: Rejected regions: trained as background, pinned out of the ILP.
BACKGROUND: tuple[str, ...] = (Tag.TN.value, Tag.FP.value)
#: A person's corrections of the model: extra weight in training.
CORRECTIONS: tuple[str, ...] = (Tag.FN.value, Tag.FB.value, Tag.FP.value)
#: Spots that are cells or may be (unreviewed predictions): what linkers link.
LINKABLE: tuple[str, ...] = (*NUCLEUS, Tag.UNLABELED.value)
#: Spots that are never linked (rejected detections and periphery marks).
NEVER_LINKED: tuple[str, ...] = tuple(t for t in TAGS if t not in LINKABLE)
#: Tags whose spots the ILP must select (node pin 1) and must not select (node pin 0).
PINNED_IN: tuple[str, ...] = NUCLEUS
PINNED_OUT: tuple[str, ...] = BACKGROUND

#: Tag of a spot a person adds by hand (the model missed it: a correction).
MANUAL = Tag.FN.value
#: Proofreading decision → tag.
REVIEW: dict[str, str] = {"accept": Tag.TP.value, "reject": Tag.FP.value}
#: Pessimistic reset applied to a frame's reviewed spots before new predictions arrive.
RESET: dict[str, str] = {"tp": "fn", "fp": "tn", "fb": "tb"}
#: Upgrade of a reset spot that a new prediction lands on.
FOUND: dict[str, str] = {"fn": "tp", "tn": "fp", "tb": "fb"}


def check_tags(tags: Any) -> np.ndarray:
    """Validate tags and return them as a ``TAG_DTYPE`` array.

    Parameters
    ----------
    tags : array_like of str, shape (N,)

    Returns
    -------
    ndarray of str, shape (N,)

    Raises
    ------
    InvalidInputError
        For a value outside :data:`TAGS`.
    """
    arr = np.asarray(tags).astype(str).reshape(-1)
    bad = unknown_tags(arr)
    if bad:
        raise InvalidInputError(f"unknown tags {bad}; allowed tags are {list(TAGS)}")
    return arr.astype(TAG_DTYPE)


def unknown_tags(tags: np.ndarray) -> list[str]:
    """The distinct values of ``tags`` (array of str, any shape) that are not tags, sorted.

    No sort: each value's first two characters name the one tag it can be, and its code
    points are compared with that tag's in one vectorised pass (cheap on every edit of a
    large graph).
    """
    arr = np.asarray(tags)
    if arr.dtype.kind != "U":
        arr = arr.astype(str)
    flat = arr.reshape(-1)
    known = _known_mask(flat) if flat.dtype.itemsize <= _TAG_BYTES else None
    if known is None:  # wider strings: seven comparisons
        known = np.zeros(flat.shape, bool)
        for tag in TAGS:
            known |= flat == tag
    return sorted(set(flat[~known].tolist()))


_TAG_CHARS = max(len(t) for t in TAGS)
_TAG_BYTES = np.dtype(f"<U{_TAG_CHARS}").itemsize
#: Code points of every tag, one row each (zero-padded like NumPy strings).
_TAG_CODES = np.array(TAGS, dtype=f"<U{_TAG_CHARS}").view(np.uint32).reshape(len(TAGS), -1)
#: Row of _TAG_CODES by a value's first two code points (-1: no tag starts so).
_TAG_BY_PREFIX = np.full((128, 128), -1, np.int64)
_TAG_BY_PREFIX[_TAG_CODES[:, 0], _TAG_CODES[:, 1]] = np.arange(len(TAGS))


def _known_mask(flat: np.ndarray) -> np.ndarray:
    """Which values of a 1-D str array (at most the longest tag's width) are tags."""
    codes = np.ascontiguousarray(flat.astype(f"<U{_TAG_CHARS}", copy=False))
    codes = codes.view(np.uint32).reshape(flat.size, _TAG_CHARS)
    # code points >= 127 map to row 127 of the table, where no tag starts
    prefix = np.minimum(codes[:, 0], 127).astype(np.int64) * 128 + np.minimum(codes[:, 1], 127)
    row = np.take(_TAG_BY_PREFIX.reshape(-1), prefix)
    known = row >= 0
    expected = np.take(_TAG_CODES, row, axis=0, mode="clip")  # unknown rows: any tag
    wrong = np.flatnonzero(codes != expected) // _TAG_CHARS
    known[wrong] = False
    return known


def tags_of(graph: Any, default: str = Tag.UNLABELED.value) -> np.ndarray:
    """The node tags of a graph, shape (N,); ``default`` for every node without a column.

    Parameters
    ----------
    graph : TrackGraph
    default : str
        Tag of every node when the graph has no ``tag`` column (``"tp"`` for annotations
        a person made, ``"unlabeled"`` for predictions).
    """
    if "tag" in graph.nodes:
        return check_tags(graph.nodes["tag"])
    return np.full(graph.num_nodes, check_tags([default])[0], dtype=TAG_DTYPE)


def _map(tags: Any, table: dict[str, str]) -> np.ndarray:
    out = check_tags(tags)
    src = out.copy()
    for old, new in table.items():
        out[src == old] = new
    return out


def reset_tags(tags: Sequence[str] | np.ndarray) -> np.ndarray:
    """Pessimistic reset before new predictions: tp → fn, fp → tn, fb → tb (others kept).

    Parameters
    ----------
    tags : array_like of str, shape (N,)

    Returns
    -------
    ndarray of str, shape (N,)
    """
    return _map(tags, RESET)


def found_tags(tags: Sequence[str] | np.ndarray) -> np.ndarray:
    """Tags of reset spots that a new prediction matched: fn → tp, tn → fp, tb → fb."""
    return _map(tags, FOUND)


def recheck_tags(tags: Sequence[str] | np.ndarray, found: Any) -> np.ndarray:
    """ELEPHANT's re-check of reviewed tags against a frame's new predictions.

    Every tag is reset pessimistically (:func:`reset_tags`); the spots a new prediction
    landed on (``found``) are then upgraded (:func:`found_tags`). So a ``fn`` the model now
    finds becomes ``tp``, a ``tn`` it still fires on becomes ``fp``, and a ``tp`` it no
    longer finds becomes ``fn``.

    Parameters
    ----------
    tags : array_like of str, shape (N,)
        The frame's current tags.
    found : array_like of bool, shape (N,)
        True where a new prediction matched the spot.

    Returns
    -------
    ndarray of str, shape (N,)
    """
    out = reset_tags(tags)
    found = np.asarray(found, dtype=bool).reshape(-1)
    if found.shape != out.shape:
        raise InvalidInputError(
            f"found must be a mask of one entry per tag ({out.size}), got shape {found.shape}"
        )
    out[found] = found_tags(out[found])
    return out


def review_tags(tags: Sequence[str] | np.ndarray, decision: str) -> np.ndarray:
    """Tags after a person's decision on every spot: ``"accept"`` → tp, ``"reject"`` → fp.

    Parameters
    ----------
    tags : array_like of str, shape (N,)
        Current tags (validated; their value does not change the outcome).
    decision : {"accept", "reject"}
        The proofreading decision.
    """
    if decision not in REVIEW:
        raise InvalidInputError(
            f"decision must be one of {sorted(REVIEW)} (accept → tp, reject → fp), got "
            f"{decision!r}"
        )
    return np.full(check_tags(tags).shape, REVIEW[decision], dtype=TAG_DTYPE)


def reviewed_mask(tags: Sequence[str] | np.ndarray) -> np.ndarray:
    """True where a person reviewed the spot (tag other than ``unlabeled``), shape (N,)."""
    return np.isin(check_tags(tags), REVIEWED)


def approved_mask(graph: Any) -> np.ndarray:
    """Edge mask (E,) of approved links (edge column ``approved``; NaN/absent = False)."""
    if "approved" not in graph.edges:
        return np.zeros(graph.num_edges, bool)
    col = np.asarray(graph.edges["approved"])
    if col.dtype.kind == "f":
        col = np.nan_to_num(col, nan=0.0)
    return col.astype(bool)
