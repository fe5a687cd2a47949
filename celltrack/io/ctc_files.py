"""The parts of a Cell Tracking Challenge folder, read and checked one at a time.

:func:`celltrack.io.ctc.read_ctc` (a folder → a lineage graph) and
:func:`celltrack.eval.evaluate_ctc` (CTC measures from mask overlaps) both read CTC
folders through these functions, so the format has one parser:

- :func:`find_track_file` locates ``res_track.txt`` / ``man_track.txt`` (in the folder
  or its ``TRA`` subfolder);
- :func:`read_track_file` parses and validates the ``L B E P`` lines;
- :func:`find_mask_files` / :func:`read_mask` list and read the per-frame label images;
- :func:`check_frame_labels` checks one frame's labels against the track file;
- :func:`ctc_edges` turns (frame, label) objects plus the track file into links, and
  :func:`object_rows` finds (frame, label) objects among them.

``tifffile`` loads only when a mask is read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from celltrack.errors import FormatError, InvalidInputError

__all__ = [
    "CTC_KINDS",
    "MAX_LABEL",
    "check_frame_labels",
    "ctc_edges",
    "find_mask_files",
    "find_track_file",
    "label_centroids",
    "object_rows",
    "read_mask",
    "read_track_file",
]

#: kind → (track file name, mask file prefix): results and ground truth (TRA)
CTC_KINDS = {"res": ("res_track.txt", "mask"), "gt": ("man_track.txt", "man_track")}
#: CTC label images are uint16
MAX_LABEL = int(np.iinfo(np.uint16).max)
#: largest frame number accepted in a track file (keeps (frame, label) keys in int64)
MAX_FRAME = 2**31 - 1
#: decoded label images may be at most this many times larger than their file (or 1 GiB)
_MAX_EXPANSION = 5000
_WHAT = {"res": "result", "gt": "ground-truth"}


def find_track_file(path: str | Path, kind: str | None = None) -> tuple[Path, str]:
    """The track file of a CTC folder and its kind.

    Parameters
    ----------
    path : str or Path
        A CTC folder (``.../01_RES``, ``.../01_GT/TRA``) or a folder whose ``TRA``
        subfolder is one (``.../01_GT``).
    kind : {"res", "gt"}, optional
        Look only for ``res_track.txt`` (results) or ``man_track.txt`` (ground truth);
        default either (a folder holding both is refused).

    Returns
    -------
    track_file : Path
        ``res_track.txt`` or ``man_track.txt``; the masks lie next to it.
    kind : str
        ``"res"`` or ``"gt"``.

    Raises
    ------
    FormatError
        If ``path`` is not a folder or holds no (or both) track files.
    InvalidInputError
        On an unknown ``kind``.
    """
    if kind is not None and kind not in CTC_KINDS:
        raise InvalidInputError(f"kind must be one of {sorted(CTC_KINDS)} or None, got {kind!r}")
    folder = Path(path)
    if not folder.exists():
        raise FormatError(f"{folder} does not exist; give the CTC folder holding the track file")
    if not folder.is_dir():
        raise FormatError(f"{folder}: not a folder; give the CTC folder holding the track file")
    kinds = list(CTC_KINDS) if kind is None else [kind]
    for where in (folder, folder / "TRA"):
        found = [(where / CTC_KINDS[k][0], k) for k in kinds if (where / CTC_KINDS[k][0]).is_file()]
        if len(found) > 1:
            raise FormatError(
                f"{where}: holds both res_track.txt and man_track.txt; keep one per folder"
            )
        if found:
            return found[0]
    if kind is None:
        raise FormatError(
            f"{folder}: no res_track.txt or man_track.txt here or in {folder / 'TRA'}; "
            "is this a CTC result or TRA ground-truth folder?"
        )
    name, prefix = CTC_KINDS[kind]
    raise FormatError(
        f"{folder}: no {name} here or in {folder / 'TRA'}; a CTC {_WHAT[kind]} folder holds "
        f"{name} and {prefix}TTT.tif masks"
    )


def read_track_file(path: str | Path) -> np.ndarray:
    """Read and validate a CTC track file (``res_track.txt`` / ``man_track.txt``).

    Parameters
    ----------
    path : str or Path
        The track file: one line ``L B E P`` per track segment (label, first and last
        frame, parent label or 0); blank lines are skipped.

    Returns
    -------
    ndarray of int64, shape (L, 4)
        The rows ``L B E P`` in file order.

    Raises
    ------
    FormatError
        If the file is missing, a line does not hold four integers, a label is outside
        1..65535 or defined twice, ``B > E``, or a parent is unknown or does not end
        before its child begins. Messages name the file and line.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(
            f"{file}: the CTC track file is not text (byte {err.start}: {err.reason}); it "
            "holds lines 'L B E P' of four integers"
        ) from None
    except OSError as err:
        raise FormatError(f"{file}: cannot read the CTC track file ({err})") from err
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = [int(p) for p in line.split()]
        except ValueError:
            values = []
        if len(values) != 4:
            raise FormatError(
                f"{file}, line {number}: expected four integers 'L B E P', got {line.strip()!r}"
            )
        lab, begin, end, parent = values
        problem = None
        if not 0 < lab <= MAX_LABEL:
            problem = f"label L={lab} must be in 1..{MAX_LABEL}"
        elif begin < 0 or end < begin or end > MAX_FRAME:
            problem = f"frames B={begin}, E={end} must satisfy 0 <= B <= E <= {MAX_FRAME}"
        elif parent < 0 or parent == lab or parent > MAX_LABEL:
            problem = f"parent P={parent} must be 0 or another track's label (1..{MAX_LABEL})"
        if problem:
            raise FormatError(f"{file}, line {number}: {problem}")
        rows.append((lab, begin, end, parent, number))
    table = np.asarray(rows, np.int64).reshape(-1, 5)
    labels, counts = np.unique(table[:, 0], return_counts=True)
    if np.any(counts > 1):
        lab = int(labels[counts > 1][0])
        lines = table[table[:, 0] == lab, 4].tolist()
        raise FormatError(f"{file}, lines {lines}: label {lab} is defined more than once")
    span = {int(r[0]): (int(r[1]), int(r[2])) for r in table}
    for lab, begin, _, parent, number in table.tolist():
        if parent == 0:
            continue
        if parent not in span:
            raise FormatError(
                f"{file}, line {number}: parent P={parent} of label {lab} is not a track label"
            )
        if begin <= span[parent][1]:
            raise FormatError(
                f"{file}, line {number}: label {lab} begins at frame {begin}, not after its parent "
                f"{parent} ends (frame {span[parent][1]})"
            )
    return table[:, :4]


def find_mask_files(folder: str | Path, kind: str) -> dict[int, Path]:
    """The label images of a CTC folder by frame: ``maskTTT.tif`` or ``man_trackTTT.tif``.

    Parameters
    ----------
    folder : str or Path
        The folder holding the track file.
    kind : {"res", "gt"}
        Which prefix to look for (see :data:`CTC_KINDS`).

    Returns
    -------
    dict of int to Path
        Frame number → file (``.tif`` or ``.tiff``, any number of digits).

    Raises
    ------
    FormatError
        If two files carry the same frame number.
    """
    folder = Path(folder)
    prefix = CTC_KINDS[kind][1]
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.tiff?$")
    frames: dict[int, Path] = {}
    for file in sorted(folder.iterdir()):
        match = pattern.match(file.name)
        if match:
            frame = int(match.group(1))
            if frame in frames:
                raise FormatError(
                    f"{folder}: two mask files for frame {frame}: {frames[frame].name}, {file.name}"
                )
            frames[frame] = file
    return frames


def read_mask(file: str | Path) -> np.ndarray:
    """Read one CTC label image as (Z, Y, X) integers (a 2D image gets Z = 1).

    Raises
    ------
    FormatError
        If the TIFF is unreadable, not 2D/3D, or does not hold integers.
    """
    import tifffile

    file = Path(file)
    try:
        with tifffile.TiffFile(file) as tif:
            if not tif.series:
                raise FormatError(f"{file}: no image data found (corrupt or empty TIFF)")
            series = tif.series[0]
            nbytes = int(np.prod(series.shape, dtype=np.float64)) * np.dtype(series.dtype).itemsize
            size = max(int(tif.filehandle.size), 1)
            if nbytes > max(2**30, _MAX_EXPANSION * size):
                raise FormatError(
                    f"{file}: the TIFF declares a {series.shape} image ({nbytes} bytes) in a "
                    f"{size}-byte file; it is corrupt (or not a CTC label image)"
                )
            mask = series.asarray()
    except FormatError:
        raise
    except MemoryError:
        raise FormatError(f"{file}: the TIFF declares an image too large to read") from None
    except Exception as err:  # tifffile raises many types on corrupt files
        raise FormatError(f"{file}: unreadable TIFF ({type(err).__name__}: {err})") from err
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise FormatError(
            f"{file}: expected a 2D (Y, X) or 3D (Z, Y, X) label image, got shape {mask.shape}"
        )
    if mask.dtype.kind not in "iu":
        raise FormatError(f"{file}: label images must hold integers, got dtype {mask.dtype}")
    return mask


def label_centroids(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels present in a label image, their centroids and sizes.

    Parameters
    ----------
    mask : ndarray of int, shape (Z, Y, X)
        Labels, 0 = background.

    Returns
    -------
    labels : ndarray of int64, shape (n,)
        Sorted labels > 0 present.
    centroids : ndarray of float64, shape (n, 3)
        Mean (z, y, x) voxel coordinate of each label.
    counts : ndarray of int64, shape (n,)
        Voxels per label.
    """
    flat = mask.reshape(-1)
    idx = np.flatnonzero(flat)
    if idx.size == 0:
        return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0, np.int64)
    values = flat[idx].astype(np.int64)
    if values.min() < 0:
        raise FormatError(f"label images must hold labels >= 0, found {int(values.min())}")
    present, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    coords = np.unravel_index(idx, mask.shape)
    centroid = np.stack(
        [np.bincount(inverse, weights=c, minlength=present.size) for c in coords], axis=1
    ) / counts[:, None]
    return present, centroid, counts.astype(np.int64)


def check_frame_labels(
    present: np.ndarray, table: np.ndarray, frame: int, file: Path, track_name: str
) -> None:
    """Check that a frame holds exactly the labels whose span ``B..E`` covers it.

    Parameters
    ----------
    present : ndarray of int, shape (n,)
        Labels painted in the frame.
    table : ndarray of int64, shape (L, 4)
        Track file rows ``L B E P``.
    frame : int
        The frame number.
    file, track_name : Path, str
        Mask file and track file name, for messages.

    Raises
    ------
    FormatError
        If a label is painted outside its span or not listed, or a listed label is absent.
    """
    expected = table[(table[:, 1] <= frame) & (table[:, 2] >= frame), 0]
    extra = np.setdiff1d(present, expected)
    if extra.size:
        spans = {int(r[0]): (int(r[1]), int(r[2])) for r in table}
        where = [
            f"{lab} (B..E = {spans[lab][0]}..{spans[lab][1]})" if lab in spans
            else f"{lab} (not in the track file)"
            for lab in extra[:5].tolist()
        ]
        raise FormatError(
            f"{file}: labels {where} appear in frame {frame} outside their track span "
            f"in {track_name}"
        )
    absent = np.setdiff1d(expected, present)
    if absent.size:
        raise FormatError(
            f"{file}: labels {absent[:10].tolist()} are missing from frame {frame} although "
            f"{track_name} says they are present (B <= {frame} <= E)"
        )


def ctc_edges(
    t: np.ndarray, label: np.ndarray, table: np.ndarray, where: str | Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Links between the (frame, label) objects of a CTC folder.

    A label present in consecutive frames ``f`` and ``f + 1`` is a track continuation; a
    track with parent ``P`` adds a parent link from ``P``'s last frame ``E`` to its own
    first frame ``B``.

    Parameters
    ----------
    t, label : ndarray of int, shape (N,)
        Frame and label of every object (each pair at most once).
    table : ndarray of int64, shape (L, 4)
        Track file rows ``L B E P`` (validated, see :func:`read_track_file`).
    where : str or Path
        The folder, for messages.

    Returns
    -------
    source, target : ndarray of int64, shape (E,)
        Row indices into ``t`` / ``label``: continuations first, then parent links.
    parent_link : ndarray of bool, shape (E,)
        True for parent links.

    Raises
    ------
    FormatError
        If a parent's last object or a child's first object is not among the objects.
    """
    t = np.asarray(t, np.int64)
    label = np.asarray(label, np.int64)
    order = np.lexsort((t, label))
    same = (label[order][1:] == label[order][:-1]) & (np.diff(t[order]) == 1)
    src, tgt = [order[:-1][same]], [order[1:][same]]
    children = table[table[:, 3] > 0]
    n_parent = 0
    if children.size:
        by_label = np.argsort(table[:, 0])
        parent_end = table[by_label[np.searchsorted(table[by_label, 0], children[:, 3])], 2]
        rows = [
            object_rows(t, label, parent_end, children[:, 3]),
            object_rows(t, label, children[:, 1], children[:, 0]),
        ]
        missing = (rows[0] < 0) | (rows[1] < 0)
        if np.any(missing):
            bad = children[missing][:3].tolist()
            raise FormatError(
                f"{where}: the masks lack the end of the parent track or the start of tracks "
                f"{bad} (L B E P); every label must be painted in every frame B..E"
            )
        src.append(rows[0])
        tgt.append(rows[1])
        n_parent = children.shape[0]
    source = np.concatenate(src).astype(np.int64)
    target = np.concatenate(tgt).astype(np.int64)
    parent_link = np.zeros(source.size, bool)
    parent_link[source.size - n_parent :] = True
    return source, target, parent_link


def object_rows(
    t: np.ndarray, label: np.ndarray, query_t: np.ndarray, query_label: np.ndarray
) -> np.ndarray:
    """Row of each queried (frame, label) object among the objects ``(t, label)``.

    Parameters
    ----------
    t, label : ndarray of int, shape (N,)
        Frame and label of every object (each pair at most once; labels < 2**32).
    query_t, query_label : ndarray of int, shape (Q,)
        The objects to look up.

    Returns
    -------
    ndarray of int64, shape (Q,)
        Row index into ``t`` / ``label``, -1 where the object is absent.
    """
    key = np.asarray(t, np.int64) * (1 << 32) + np.asarray(label, np.int64)
    query = np.asarray(query_t, np.int64) * (1 << 32) + np.asarray(query_label, np.int64)
    if key.size == 0:
        return np.full(query.size, -1, np.int64)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    pos = np.clip(np.searchsorted(sorted_key, query), 0, sorted_key.size - 1)
    return np.where(sorted_key[pos] == query, order[pos], -1).astype(np.int64)
