"""A resumable human-in-the-loop tracking project (ELEPHANT's interactive cycle).

A :class:`Project` is a folder (see :mod:`celltrack.project.storage`) holding a movie, an
annotation graph whose nodes carry proofreading tags and whose edges carry an
``approved`` flag, the detection and flow models, and the last tracks. The cycle::

    project = Project.create("embryo.ctproj", image, voxel_size=(2.0, 0.5, 0.5))
    project.add_spot(t=0, position_um=(10, 20, 30), radius_um=3)   # tag fn
    project.train_detection(frame=0)         # prior on first use, then incremental
    spots = project.predict(0)               # unreviewed predictions: tag 'unlabeled'
    project.proofread(spots.ids[:3], "accept")  # tp
    project.proofread(spots.ids[3:4], "reject") # fp
    project.train_detection(frame=0)         # learns from the corrections
    project.link()                           # flow-NN / greedy / ILP, approved links pinned
    project.approve_links([(parent, child)])
    project.train_flow()
    project.export("tracks.geff")

Every annotation change is durable before the call returns (an fsynced journal entry, or
an atomic rewrite of ``annotations.geff``; the in-memory state only changes once the write
succeeded), so a crash never loses a completed edit; ``Project.open(folder)`` resumes.

Annotation edits can be undone and redone (:meth:`Project.undo`, :meth:`Project.redo`):
every change of the annotation graph is one step, a ``batch()`` block is one step, and so
are the merges of :meth:`Project.predict` and :meth:`Project.link`. The history lives in
memory only (at most :data:`UNDO_STEPS` steps) and starts empty when a project is opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celltrack._version import __version__
from celltrack.detect.evidence import DRAWN_NUCLEUS_TAGS
from celltrack.errors import CelltrackError, GraphError, InvalidInputError, ShapeError
from celltrack.geometry import check_voxel_size, covariance_from_radii
from celltrack.graph import TrackGraph
from celltrack.graph.tags import (
    MANUAL,
    TAG_DTYPE,
    TAGS,
    approved_mask,
    review_tags,
    reviewed_mask,
    tags_of,
)
from celltrack.io import ImageSeries, as_movie, read_image, write_image
from celltrack.io.atomic import remove_path
from celltrack.model_kinds import (
    detect_spots,
    detection_trainer,
    detector_name,
    is_joint,
    load_detector,
    load_motion_model,
    motion_name,
    new_detector,
    point_radius_um,
    predict_parent_positions,
    suppression_distance_um,
    train_joint_model,
    train_motion_model,
)
from celltrack.project import storage
from celltrack.project.config import ProjectConfig, as_project_config, renamed_sections
from celltrack.project.journal import COMPACT_EVERY, EditJournal, delta_is_empty, graph_delta
from celltrack.project.links import merge_links, renumber_created
from celltrack.project.tags import merge_predictions
from celltrack.solve.base import LinkResult
from celltrack.solve.stage import (
    field_of_view,
    learn_costs,
    link_graph,
    link_stage,
    linkable_spots,
    resolve_linker,
)

__all__ = ["UNDO_STEPS", "Project"]

logger = logging.getLogger(__name__)

#: Annotation edits :meth:`Project.undo` can revert; older ones are forgotten.
UNDO_STEPS = 100


def _empty_annotations() -> TrackGraph:
    return TrackGraph(
        {
            "id": np.zeros(0, np.int64),
            "t": np.zeros(0, np.int64),
            "z": np.zeros(0),
            "y": np.zeros(0),
            "x": np.zeros(0),
            "covariance": np.zeros((0, 3, 3)),
            "score": np.zeros(0),
            "tag": np.zeros(0, dtype=TAG_DTYPE),
        },
        {
            "source": np.zeros(0, np.int64),
            "target": np.zeros(0, np.int64),
            "approved": np.zeros(0, bool),
        },
    )


def _with_columns(
    graph: TrackGraph,
    nodes: dict[str, np.ndarray] | None = None,
    edges: dict[str, np.ndarray] | None = None,
) -> TrackGraph:
    """A new, unvalidated graph with some columns (required ones included) replaced.

    The other columns are shared with ``graph`` as read-only views (graphs never write
    their columns in place), so an edit copies only what it changes.
    """
    node_cols = {**graph.nodes, **(nodes or {})}
    edge_cols = {**graph.edges, **(edges or {})}
    return TrackGraph(node_cols, edge_cols, attrs=dict(graph.attrs), validate=False)


class Project:
    """A human-in-the-loop tracking project stored in a folder.

    Create one with :meth:`create`, resume one with :meth:`open`. All positions are µm
    (z, y, x); frames are 0-based indices into the movie.

    Attributes
    ----------
    folder : Path
        The project folder.
    config : ProjectConfig
        Stage settings (detection, motion, candidates, linker).
    images : ImageSeries
        The movie (T, Z, Y, X), read lazily.
    voxel_size : ndarray, shape (3,)
        Voxel size (z, y, x) µm.
    last_predict_stats : dict
        Bookkeeping of the last :meth:`predict` (deleted, matched, suppressed, added).
    """

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        """Use :meth:`create` or :meth:`open`."""
        self.folder = Path(folder)
        self._manifest = manifest
        self.config = as_project_config(renamed_sections(manifest["config"]))
        self.voxel_size = check_voxel_size(manifest["voxel_size"])
        source = manifest["images"]
        path = Path(source["path"])
        if not path.is_absolute():
            path = self.folder / path
        self.images: ImageSeries = read_image(
            path, voxel_size=self.voxel_size, **source.get("options", {})
        )
        if list(self.images.shape) != list(manifest["shape"]):
            raise ShapeError(
                f"the project's movie {path} now has shape {self.images.shape}, but the "
                f"project was made for {tuple(manifest['shape'])}: restore the original images"
            )
        self._journal = EditJournal(self.folder / storage.JOURNAL)
        base = storage.load_graph(self.folder / storage.ANNOTATIONS)
        self._annotations, self._seq = self._journal.replay(base)
        self._annotations.attrs.pop("journal_seq", None)
        self._pending = 0
        tracks = self.folder / storage.TRACKS
        self._tracks = storage.load_graph(tracks) if tracks.exists() else None
        self._det_model: Any = None
        self._trainer: Any = None
        self._flow_model: Any = None
        self.last_predict_stats: dict[str, int] = {}
        self._defer = 0
        self._dirty = False
        self._calibration: tuple[Any, Any] | None = None  # (key, calibrated config)
        self._undo: list[TrackGraph] = []  # annotation graphs before each step, oldest first
        self._redo: list[TrackGraph] = []
        self._batch_before: TrackGraph | None = None
        if self._journal.path.exists():  # fold what the last session journalled
            self._compact()

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(
        cls,
        folder: str | Path,
        images: str | Path | np.ndarray | ImageSeries | Any,
        voxel_size: Sequence[float] | None = None,
        config: ProjectConfig | dict[str, Any] | Any | None = None,
        *,
        axes: str | None = None,
        channel: int | None = None,
        overwrite: bool = False,
        progress: bool = False,
    ) -> Project:
        """Start a project in ``folder``.

        Parameters
        ----------
        folder : str or Path
            Project folder (created; must not hold a project unless ``overwrite``).
        images : str, Path, ndarray or ImageSeries
            A movie file or folder readable by :func:`celltrack.io.images.read_image`
            (referenced, not copied), or an array or ImageSeries (stored in the folder as
            OME-Zarr) read by :func:`celltrack.io.as_movie`: 4-D is (T, Z, Y, X), 3-D is
            2D+t (T, Y, X).
        voxel_size : sequence of 3 float, optional
            Voxel size (z, y, x) µm; required for arrays, overrides file metadata.
        config : ProjectConfig, mapping or pipeline config, optional
            Stage settings (default :class:`ProjectConfig`).
        axes : str, optional
            Axes of a file or array (e.g. ``"TYX"``, ``"ZYX"`` for one volume).
        channel : int, optional
            Channel of a multi-channel file.
        overwrite : bool
            Replace an existing project in ``folder``.
        progress : bool
            Progress bar while storing an array.

        Returns
        -------
        Project
        """
        folder = Path(folder)
        cfg = as_project_config(config)
        if (folder / storage.MANIFEST).exists() and not overwrite:
            raise InvalidInputError(
                f"{folder} already holds a celltrack project: resume it with "
                "Project.open(folder), or pass overwrite=True to start afresh"
            )
        folder.mkdir(parents=True, exist_ok=True)
        options = {k: v for k, v in (("axes", axes), ("channel", channel)) if v is not None}
        if isinstance(images, (str, Path)):
            series = read_image(images, voxel_size=voxel_size, **options)
            source: dict[str, Any] = {
                "path": str(Path(images).resolve()),
                "stored": False,
                "options": options,
            }
        else:
            if isinstance(images, ImageSeries) and voxel_size is None:
                voxel_size = images.voxel_size
            if voxel_size is None:
                raise InvalidInputError(
                    "voxel_size=(z, y, x) in µm is required when images is an array"
                )
            movie = as_movie(images, axes=axes, voxel_size=voxel_size)
            write_image(
                movie,
                folder / storage.IMAGES,
                voxel_size=voxel_size,
                progress=progress,
                overwrite=overwrite,
            )
            series = read_image(folder / storage.IMAGES)
            source = {"path": storage.IMAGES, "stored": True, "options": {}}
        vs = check_voxel_size(series.voxel_size if voxel_size is None else voxel_size)
        manifest = {
            "format": storage.FORMAT,
            "format_version": storage.FORMAT_VERSION,
            "celltrack_version": str(__version__),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": cfg.model_dump(mode="json"),
            "images": source,
            "voxel_size": [float(v) for v in vs],
            "shape": [int(s) for s in series.shape],
            "frame": 0,
        }
        for stale in (storage.TRACKS, storage.MODELS):
            if (folder / stale).exists():
                remove_path(folder / stale, ignore_errors=True)
        EditJournal(folder / storage.JOURNAL).clear()
        storage.save_graph(_empty_annotations(), folder / storage.ANNOTATIONS)
        storage.write_manifest(folder, manifest)
        return cls(folder, manifest)

    @classmethod
    def open(cls, folder: str | Path) -> Project:
        """Resume the project stored in ``folder`` (annotations, models, cursor, tracks)."""
        folder = Path(folder)
        return cls(folder, storage.read_manifest(folder))

    def __repr__(self) -> str:
        counts = self.tag_counts()
        tags = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        return (
            f"Project({str(self.folder)!r}, movie {tuple(self.images.shape)}, frame "
            f"{self.frame}, {self._annotations.num_nodes} spots ({tags or 'none'}), "
            f"{int(approved_mask(self._annotations).sum())} approved links)"
        )

    # ------------------------------------------------------------------ state
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Movie shape (T, Z, Y, X) in voxels."""
        return tuple(int(s) for s in self.images.shape)  # type: ignore[return-value]

    @property
    def annotations(self) -> TrackGraph:
        """A copy of the annotation graph (node ``tag``, edge ``approved``)."""
        return self._annotations.copy()

    @property
    def tracks(self) -> TrackGraph | None:
        """A copy of the last linking result (None before :meth:`link`)."""
        return None if self._tracks is None else self._tracks.copy()

    @property
    def frame(self) -> int:
        """The current frame (cursor), saved in ``project.json``."""
        return int(self._manifest["frame"])

    @frame.setter
    def frame(self, t: int) -> None:
        t = self._check_frame(t)
        manifest = {**self._manifest, "frame": t}
        storage.write_manifest(self.folder, manifest)
        self._manifest = manifest

    def set_config(self, config: ProjectConfig | dict[str, Any] | Any) -> None:
        """Replace the stage settings (saved in ``project.json``; models are kept)."""
        cfg = as_project_config(config)
        manifest = {**self._manifest, "config": cfg.model_dump(mode="json")}
        storage.write_manifest(self.folder, manifest)
        self._manifest = manifest
        self.config = cfg
        self._trainer = None

    def tag_counts(self, frame: int | None = None) -> dict[str, int]:
        """Number of spots per tag (optionally in one frame)."""
        tags = np.asarray(self._annotations.nodes["tag"]).astype(str)
        if frame is not None:
            tags = tags[self._annotations.t == int(frame)]
        return {tag: int(np.count_nonzero(tags == tag)) for tag in TAGS}

    def spots(self, frame: int | None = None) -> TrackGraph:
        """The annotation graph's spots of one frame (all frames when None), as a copy."""
        if frame is None:
            return self.annotations
        return self._annotations.subgraph(nodes=self._annotations.t == self._check_frame(frame))

    def _check_frame(self, t: Any) -> int:
        n = self.shape[0]
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= int(t) < n:
            raise InvalidInputError(f"frame must be an integer in 0..{n - 1}, got {t!r}")
        return int(t)

    def _commit(self, graph: TrackGraph, *, undoable: bool = True) -> None:
        """Validate, save durably, then (only then) replace the in-memory graph.

        The edit is appended to the fsynced journal (:mod:`celltrack.project.journal`: a
        few ms, whatever the number of spots); every ``COMPACT_EVERY`` edits, or when an
        edit changes the graph's columns, the whole graph is written to the store instead.
        An ``undoable`` edit that changes the graph becomes one undo step (inside a
        ``batch()`` the whole block is one step) and clears the redo history.
        """
        before = self._annotations
        graph.validate()
        next_id = int(graph.ids.max()) + 1 if graph.num_nodes else 0
        graph.attrs["next_id"] = max(next_id, int(before.attrs.get("next_id", 0)))
        graph.attrs["voxel_size"] = [float(v) for v in self.voxel_size]
        graph = graph.sorted()
        if self._defer:
            if not self._dirty:
                self._batch_before = before
            self._annotations = graph
            self._dirty = True
            return
        delta = graph_delta(before, graph)
        if delta is None or self._pending >= COMPACT_EVERY:
            self._compact(graph)
        else:
            self._journal.append(self._seq + 1, delta)
            self._seq += 1
            self._pending += 1
        self._annotations = graph
        if undoable and (delta is None or not delta_is_empty(delta)):
            self._remember(before)

    def _remember(self, before: TrackGraph) -> None:
        """Make ``before`` the newest undo step (forgetting the oldest beyond UNDO_STEPS)."""
        self._undo.append(before)
        del self._undo[: max(len(self._undo) - UNDO_STEPS, 0)]
        self._redo.clear()

    # ------------------------------------------------------------------ undo / redo
    @property
    def can_undo(self) -> bool:
        """True if :meth:`undo` has an edit to revert."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """True if :meth:`redo` has an undone edit to restore."""
        return bool(self._redo)

    def undo(self) -> bool:
        """Revert the last annotation edit (spots, tags, links); False if there is none.

        One step is one edit method call, one ``batch()`` block, or the annotation merge of
        one :meth:`predict` or :meth:`link` (the tracks of :meth:`link` and trained models
        are not touched). The undo is itself a durable, journalled edit. Node ids are never
        reused: spots added after an undo get fresh ids. The history (at most
        :data:`UNDO_STEPS` steps) is kept in memory only: it starts empty when a project
        is opened, and a new edit clears what :meth:`redo` could restore.

        Raises
        ------
        InvalidInputError
            Inside a ``batch()`` block.
        """
        return self._step(self._undo, self._redo)

    def redo(self) -> bool:
        """Restore the last edit :meth:`undo` reverted; False if there is none."""
        return self._step(self._redo, self._undo)

    def _step(self, source: list[TrackGraph], target: list[TrackGraph]) -> bool:
        """Commit the newest graph of ``source``; the current one goes onto ``target``."""
        if self._defer:
            raise InvalidInputError(
                "undo() / redo() inside a batch() block: finish the block first (the block "
                "is undone as one step)"
            )
        if not source:
            return False
        current = self._annotations
        self._commit(_with_columns(source[-1]), undoable=False)
        source.pop()
        target.append(current)
        del target[: max(len(target) - UNDO_STEPS, 0)]
        return True

    def _compact(self, graph: TrackGraph | None = None) -> None:
        """Write the whole annotation graph to the store, then empty the journal."""
        graph = self._annotations if graph is None else graph
        stamped = graph.copy()
        stamped.attrs["journal_seq"] = self._seq
        storage.save_graph(stamped, self.folder / storage.ANNOTATIONS)
        self._journal.clear()
        self._pending = 0

    def save(self) -> None:
        """Fold the edit journal into ``annotations.geff`` now (edits are durable anyway).

        Useful before copying the project folder with tools that read the GEFF store only.
        """
        self._compact()

    @contextlib.contextmanager
    def batch(self) -> Iterator[Project]:
        """Group edits: inside the block edits stay in memory, one atomic save at its end.

        The save also happens when the block raises, so completed edits are kept. Use it
        for scripted edits (many ``add_spot`` / ``add_link`` calls); interactive edits
        outside a block are saved one by one. The block is one :meth:`undo` step.

        Examples
        --------
        >>> with project.batch():                                   # doctest: +SKIP
        ...     for t, pos in clicks:
        ...         project.add_spot(t, pos)
        """
        self._defer += 1
        try:
            yield self
        finally:
            self._defer -= 1
            if self._defer == 0 and self._dirty:
                self._seq += 1
                self._compact()
                self._dirty = False
                if self._batch_before is not None:
                    self._remember(self._batch_before)
                    self._batch_before = None

    def _next_id(self) -> int:
        g = self._annotations
        return max(int(g.attrs.get("next_id", 0)), int(g.ids.max()) + 1 if g.num_nodes else 0)

    # ------------------------------------------------------------------ spots
    def _covariances(self, n: int, radius_um: Any, covariance: Any) -> np.ndarray:
        if covariance is not None and radius_um is not None:
            raise InvalidInputError("give either radius_um or covariance, not both")
        if covariance is not None:
            cov = np.asarray(covariance, dtype=np.float64)
            if cov.shape == (3, 3):
                cov = np.broadcast_to(cov, (n, 3, 3))
            if cov.shape != (n, 3, 3):
                raise ShapeError(f"covariance must be (3, 3) or ({n}, 3, 3) µm², got {cov.shape}")
            sym = np.allclose(cov, np.swapaxes(cov, 1, 2), atol=1e-9)
            finite = np.all(np.isfinite(cov))
            if not (sym and finite) or np.any(np.linalg.eigvalsh(cov)[:, 0] <= 0):
                raise InvalidInputError(
                    "covariance must be symmetric positive definite (µm²); build it with "
                    "celltrack.geometry.covariance_from_radii"
                )
            return np.array(cov)
        radius = point_radius_um(self.config.detection) if radius_um is None else radius_um
        r = np.asarray(radius, dtype=np.float64)
        if r.ndim == 0:
            r = np.full((n, 3), float(r))
        elif r.shape == (3,):
            r = np.broadcast_to(r, (n, 3))
        elif r.shape == (n,):
            r = np.repeat(r[:, None], 3, axis=1)
        if r.shape != (n, 3) or not np.all(np.isfinite(r)) or np.any(r <= 0):
            raise InvalidInputError(
                f"radius_um must be > 0 µm: a number, (z, y, x) radii, ({n},) or ({n}, 3); "
                f"got {np.asarray(radius).tolist()}"
            )
        return covariance_from_radii(r)

    def _check_positions(self, positions: Any) -> np.ndarray:
        pos = np.asarray(positions, dtype=np.float64)
        if pos.ndim == 1:
            pos = pos[None]
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise ShapeError(f"positions must be (z, y, x) µm or (N, 3), got shape {pos.shape}")
        extent = (np.asarray(self.shape[1:]) - 1) * self.voxel_size
        half = self.voxel_size / 2
        bad = ~np.all(np.isfinite(pos) & (pos >= -half) & (pos <= extent + half), axis=1)
        if bad.any():
            raise InvalidInputError(
                f"position {pos[bad][0].tolist()} µm lies outside the image, which spans "
                f"0..{extent.tolist()} µm in (z, y, x): positions are in µm, not voxels"
            )
        return pos

    def add_spots(
        self,
        t: int,
        positions_um: Any,
        radius_um: Any = None,
        covariance: Any = None,
        tag: str = MANUAL,
    ) -> np.ndarray:
        """Add spots to frame ``t`` (one atomic save). Hand-made spots are tagged ``fn``.

        Parameters
        ----------
        t : int
            Frame.
        positions_um : array_like, shape (3,) or (N, 3)
            Centres (z, y, x) in µm.
        radius_um : float, (3,), (N,) or (N, 3), optional
            Radii (µm); default ``config.detection.labels.point_radius_um``
            (``nms.point_radius_um`` for the indicator).
        covariance : array_like, shape (3, 3) or (N, 3, 3), optional
            Ellipsoids in µm² (instead of radii).
        tag : str
            Tag of the new spots (default ``fn``: a nucleus the model missed).

        Returns
        -------
        ndarray of int64, shape (N,)
            The new node ids.
        """
        t = self._check_frame(t)
        pos = self._check_positions(positions_um)
        if tag not in TAGS:
            raise InvalidInputError(f"tag must be one of {list(TAGS)}, got {tag!r}")
        n = pos.shape[0]
        cov = self._covariances(n, radius_um, covariance)
        start = self._next_id()
        ids = np.arange(start, start + n, dtype=np.int64)
        new = {
            "id": ids,
            "t": np.full(n, t, np.int64),
            "z": pos[:, 0],
            "y": pos[:, 1],
            "x": pos[:, 2],
            "covariance": cov,
            "score": np.ones(n),  # a person's spot: full confidence
            "tag": np.full(n, tag, dtype=TAG_DTYPE),
        }
        graph = self._annotations.add_nodes(new, validate=False)  # _commit validates
        graph.attrs = dict(self._annotations.attrs)
        self._commit(graph)
        return ids

    def add_spot(
        self,
        t: int,
        position_um: Sequence[float],
        radius_um: Any = None,
        covariance: Any = None,
        tag: str = MANUAL,
    ) -> int:
        """Add one spot (see :meth:`add_spots`); returns its id."""
        return int(self.add_spots(t, position_um, radius_um, covariance, tag)[0])

    def add_annotations(
        self, graph: TrackGraph, *, tag: str = MANUAL, approved: bool = True
    ) -> np.ndarray:
        """Import annotated spots and links (e.g. from :func:`read_annotations`), one save.

        Parameters
        ----------
        graph : TrackGraph
            Spots (µm) with optional ``covariance`` (else spheres of
            ``config.detection.labels.point_radius_um``), ``tag`` and ``score``; edges
            parent → child with optional ``approved``.
        tag : str
            Tag of spots without a ``tag`` column (default ``fn``).
        approved : bool
            ``approved`` of links without that column (default True: a person drew them).

        Returns
        -------
        ndarray of int64, shape (N,)
            The project id of each node of ``graph`` (ids are renumbered).
        """
        if not isinstance(graph, TrackGraph):
            raise InvalidInputError(
                f"add_annotations needs a TrackGraph (e.g. celltrack.io.annotations."
                f"read_annotations), got {type(graph).__name__}"
            )
        n = graph.num_nodes
        if n == 0:
            return np.zeros(0, np.int64)
        if graph.t.max() >= self.shape[0]:
            raise InvalidInputError(
                f"annotations reach frame {int(graph.t.max())} but the movie has "
                f"{self.shape[0]} frames"
            )
        pos = self._check_positions(graph.positions)
        cov = (
            self._covariances(n, None, np.asarray(graph.nodes["covariance"]))
            if "covariance" in graph.nodes
            else self._covariances(n, None, None)
        )
        tags = (
            np.asarray(graph.nodes["tag"]).astype(TAG_DTYPE)
            if "tag" in graph.nodes
            else np.full(n, tag, dtype=TAG_DTYPE)
        )
        if not np.all(np.isin(tags, TAGS)):
            raise InvalidInputError(f"tags must be among {list(TAGS)}")
        score = (
            np.asarray(graph.nodes["score"], dtype=np.float64)
            if "score" in graph.nodes
            else np.ones(n)
        )
        start = self._next_id()
        ids = np.arange(start, start + n, dtype=np.int64)
        out = self._annotations.add_nodes(
            {
                "id": ids,
                "t": graph.t,
                "z": pos[:, 0],
                "y": pos[:, 1],
                "x": pos[:, 2],
                "covariance": cov,
                "score": np.where(np.isfinite(score), score, 1.0),
                "tag": tags,
            }
        )
        if graph.num_edges:
            src, tgt = graph.edge_index()
            flag = (
                approved_mask(graph)
                if "approved" in graph.edges
                else np.full(graph.num_edges, bool(approved))
            )
            out = out.add_edges({"source": ids[src], "target": ids[tgt], "approved": flag})
        out.attrs = dict(self._annotations.attrs)
        self._commit(out)
        return ids

    def move_spot(
        self,
        node_id: int,
        position_um: Sequence[float],
        radius_um: Any = None,
        covariance: Any = None,
    ) -> None:
        """Move a spot (and optionally reshape it); its tag and links are kept."""
        g = self._annotations
        row = int(g.index_of([node_id])[0])
        pos = self._check_positions(position_um)[0]
        cols: dict[str, np.ndarray] = {}
        for axis, value in zip(("z", "y", "x"), pos):
            col = np.array(g.nodes[axis])
            col[row] = value
            cols[axis] = col
        if radius_um is not None or covariance is not None:
            cov = np.array(g.nodes["covariance"])
            cov[row] = self._covariances(1, radius_um, covariance)[0]
            cols["covariance"] = cov
        self._commit(_with_columns(g, nodes=cols))

    def remove_spots(self, node_ids: Any) -> None:
        """Delete spots and every link touching them."""
        g = self._annotations
        ids = np.atleast_1d(np.asarray(node_ids, dtype=np.int64))
        keep = np.ones(g.num_nodes, bool)
        keep[g.index_of(ids)] = False
        graph = g.subgraph(nodes=keep)
        self._commit(graph)

    def proofread(self, node_ids: Any, decision: str) -> None:
        """Accept (→ ``tp``) or reject (→ ``fp``) spots.

        Parameters
        ----------
        node_ids : int or array_like of int
            Spots to tag.
        decision : {"accept", "reject"}
        """
        g = self._annotations
        ids = np.atleast_1d(np.asarray(node_ids, dtype=np.int64))
        rows = g.index_of(ids)
        tags = np.asarray(g.nodes["tag"]).astype(TAG_DTYPE)
        tags[rows] = review_tags(tags[rows], decision)
        self._commit(_with_columns(g, nodes={"tag": tags}))

    # ------------------------------------------------------------------ links
    def add_link(self, parent: int, child: int, *, approved: bool = True) -> None:
        """Link ``parent`` (earlier frame) → ``child``; person-made links are approved.

        A non-approved link into ``child`` is replaced. Raises :class:`GraphError` if the
        child already has an approved parent, or the parent has two approved children.
        """
        g = self._annotations
        prow, crow = g.index_of([parent, child])
        if g.t[prow] >= g.t[crow]:
            raise GraphError(
                f"a link goes forward in time: parent {parent} is at t={g.t[prow]}, child "
                f"{child} at t={g.t[crow]}; swap them"
            )
        src = g.edges["source"]
        tgt = g.edges["target"]
        approved_col = approved_mask(g)
        same = (src == parent) & (tgt == child)
        into = (tgt == child) & ~same
        if np.any(into & approved_col):
            other = int(src[into & approved_col][0])
            raise GraphError(
                f"node {child} already has the approved parent {other}; remove that link "
                "first (remove_links)"
            )
        out_approved = int(np.count_nonzero((src == parent) & approved_col & ~same))
        if approved and out_approved >= 2:
            raise GraphError(f"node {parent} already has two approved children; remove one first")
        graph = g
        if np.any(into):
            graph = _with_columns(g, edges={k: v[~into] for k, v in g.edges.items()})
        if np.any(same):
            col = approved_mask(graph)
            col[np.flatnonzero(same[~into])[0]] = bool(approved)
            graph = _with_columns(graph, edges={"approved": col})
        else:
            graph = graph.add_edges(
                {"source": [int(parent)], "target": [int(child)], "approved": [bool(approved)]},
                validate=False,  # _commit validates
            )
        self._commit(graph)

    def remove_links(self, pairs: Any) -> None:
        """Delete links given as (parent, child) id pairs."""
        g = self._annotations
        rows, found = g.edge_rows(pairs)
        if not np.all(found):
            bad = np.asarray(pairs, np.int64).reshape(-1, 2)[~found][:5].tolist()
            raise GraphError(f"links {bad} do not exist")
        keep = np.ones(g.num_edges, bool)
        keep[rows] = False
        self._commit(_with_columns(g, edges={k: v[keep] for k, v in g.edges.items()}))

    def approve_links(self, pairs: Any, approved: bool = True) -> None:
        """Mark existing links (parent, child) as approved (or not, ``approved=False``)."""
        g = self._annotations
        rows, found = g.edge_rows(pairs)
        if not np.all(found):
            bad = np.asarray(pairs, np.int64).reshape(-1, 2)[~found][:5].tolist()
            raise GraphError(f"links {bad} do not exist; create them with add_link(parent, child)")
        col = approved_mask(g)
        col[rows] = bool(approved)
        graph = _with_columns(g, edges={"approved": col})
        if approved:
            src, tgt = graph.edge_index()
            indeg = np.bincount(tgt[col], minlength=graph.num_nodes)
            outdeg = np.bincount(src[col], minlength=graph.num_nodes)
            if np.any(indeg > 1) or np.any(outdeg > 2):
                raise GraphError(
                    "approved links must form a lineage forest (≤ 1 approved parent, ≤ 2 "
                    "approved children per spot); remove the conflicting link first"
                )
        self._commit(graph)

    # ------------------------------------------------------------------ detection
    @property
    def _detection_path(self) -> Path:
        """``models/detection.pt`` (``models/indicator.pt`` for ``detection.kind: indicator``)."""
        return self.folder / storage.MODELS / f"{detector_name(self.config.detection)}.pt"

    @property
    def detection_model(self) -> Any:
        """The detection network of ``detection.kind`` (loaded from :attr:`_detection_path`;
        None before training; the joint network with ``motion.joint``)."""
        if is_joint(self.config.motion):
            return self.flow_model
        if self._det_model is None:
            path = self._detection_path
            if path.is_file():
                self._det_model = load_detector(path, self.config.detection)
        return self._det_model

    def _training_spots(self) -> TrackGraph:
        g = self._annotations
        return g.subgraph(nodes=reviewed_mask(g.nodes["tag"]))

    def train_detection(
        self,
        incremental: bool = True,
        frame: int | None = None,
        *,
        steps: int | None = None,
        epochs: int | None = None,
        progress: bool = False,
    ) -> dict[str, Any]:
        """Update the detection model from the reviewed spots (never from ``unlabeled``).

        A new model gets the self-supervised prior first (``config.prior``). With
        ``config.detection.kind == 'classical'`` there is nothing to train: an info line is
        logged and ``mode`` is ``'classical'`` (0 steps); :meth:`predict` detects with the
        classical detector.

        Parameters
        ----------
        incremental : bool
            True: ``steps`` optimisation steps on crops of one frame (ELEPHANT's live
            mode); False: batch epochs over every frame with reviewed spots.
        frame : int, optional
            Frame of an incremental update (default: the cursor :attr:`frame`).
        steps, epochs : int, optional
            Override ``config.detection.train.incremental_steps`` / ``epochs``.
        progress : bool
            Progress bars.

        Returns
        -------
        dict
            ``mode``, ``frame``, ``steps``, ``loss`` (last step), ``seconds``, ``spots``.
        """
        start = time.perf_counter()
        spots = self._training_spots()
        if self.config.detection.kind == "classical":
            logger.info(
                "detection.kind is 'classical' (threshold + watershed): it needs no training; "
                "predict() detects with it (set detection.kind: ellipsoid to train a network)"
            )
            return {
                "mode": "classical",
                "frame": None if frame is None else self._check_frame(frame),
                "steps": 0,
                "loss": float("nan"),
                "seconds": time.perf_counter() - start,
                "spots": int(spots.num_nodes),
            }
        if is_joint(self.config.motion):
            raise InvalidInputError(
                "motion.joint: true trains the indicator together with the movement vectors: "
                "call train_motion() (points and approved links), or set motion.joint: false"
            )
        t = None
        if incremental:
            t = self._check_frame(self.frame if frame is None else frame)
            if not np.any(spots.t == t):
                raise InvalidInputError(
                    f"frame {t} has no reviewed spots to learn from: add spots (add_spot) or "
                    "proofread predictions (proofread) in that frame first"
                )
        elif spots.num_nodes == 0:
            raise InvalidInputError(
                "no reviewed spots in any frame: add spots or proofread predictions first"
            )
        cfg = self.config.detection
        model = self.detection_model
        fresh = model is None
        if fresh:
            model = new_detector(cfg, self.voxel_size, two_d=self.shape[1] == 1)
            self._det_model = model
        if self._trainer is None or self._trainer.model is not model:
            self._trainer = detection_trainer(model, cfg, self.voxel_size)
        trainer = self._trainer
        if fresh and self.config.prior and cfg.kind == "ellipsoid":  # the indicator has none
            trainer.prior(self.images, progress=progress)
        before = len(trainer.history["loss"])
        if incremental:
            trainer.incremental(self.images, spots, frame=t, steps=steps, progress=progress)
        else:
            trainer.batch(self.images, spots, epochs=epochs, progress=progress)
        trainer.save(
            self._detection_path, meta={"voxel_size": [float(v) for v in self.voxel_size]}
        )
        losses = trainer.history["loss"][before:]
        return {
            "mode": "incremental" if incremental else "batch",
            "frame": t,
            "steps": len(losses),
            "loss": float(losses[-1]) if losses else float("nan"),
            "seconds": time.perf_counter() - start,
            "spots": int(spots.num_nodes),
        }

    def predict(self, frame: int | None = None, *, progress: bool = False) -> TrackGraph:
        """Detect spots in one frame and merge them with the annotations (ELEPHANT's rules).

        The frame's reviewed tags are reset pessimistically, its unreviewed
        non-approved spots deleted, and each new prediction either re-finds a spot (fn →
        tp, tn → fp, tb → fb; the prediction is dropped) or is added as ``unlabeled``
        (see :func:`celltrack.project.tags.merge_predictions`).

        With ``config.detection.kind == 'classical'`` the classical detector
        (:func:`celltrack.detect.classical.detect_classical`) finds the spots: no model
        is needed.

        Returns
        -------
        TrackGraph
            The frame's spots after the merge (copy).
        """
        t = self._check_frame(self.frame if frame is None else frame)
        cfg = self.config.detection
        model = None if cfg.kind == "classical" else self.detection_model
        if model is None and cfg.kind != "classical":
            how = "train_motion() (motion.joint)" if is_joint(self.config.motion) else (
                "train_detection()"
            )
            raise CelltrackError(
                f"no detection model yet: call {how} after annotating a few nuclei (or set "
                "detection.kind: classical to detect without training)"
            )
        cfg = self._calibrated(model, cfg)
        pred = detect_spots(
            model, self.images, cfg, voxel_size=self.voxel_size, frames=[t], progress=progress
        )
        graph, stats = merge_predictions(
            self._annotations,
            pred,
            t,
            suppression_distance_um(cfg),
            next_id=self._next_id(),
        )
        self._commit(graph)
        self.last_predict_stats = stats
        logger.info("frame %d: %s", t, stats)
        return self.spots(t)

    def _calibrated(self, model: Any, cfg: Any) -> Any:
        """``cfg`` with the spot threshold and sizes fitted to the reviewed nuclei.

        The pipeline's detector calibrates on the annotated frames it processes; a
        prediction of one unannotated frame would get none. So the frame with the most
        reviewed nuclei is predicted once with them (:func:`celltrack.detect.detect` with
        ``annotations``), and the threshold, size bounds and suppression distance it
        chose are reused until the model or that frame's reviews change. Only for the
        ellipsoid detector with ``spots.calibrate`` on.
        """
        if cfg.kind != "ellipsoid" or not cfg.spots.calibrate:
            return cfg
        reviewed = self._training_spots()
        nuclei = np.isin(tags_of(reviewed), DRAWN_NUCLEUS_TAGS)
        if not nuclei.any():
            return cfg
        frames, counts = np.unique(reviewed.t[nuclei], return_counts=True)
        ref = int(frames[np.argmax(counts)])
        marks = reviewed.subgraph(nodes=reviewed.t == ref)
        key = (
            id(model),
            len(self._trainer.history["loss"]) if self._trainer is not None else -1,
            ref,
            marks.positions.tobytes() + np.asarray(marks.nodes["tag"]).astype(str).tobytes(),
        )
        if self._calibration is not None and self._calibration[0] == key:
            return self._calibration[1]
        found = detect_spots(
            model, self.images, cfg, voxel_size=self.voxel_size, annotations=marks, frames=[ref]
        )
        used = found.attrs.get("calibration", {})
        fitted = {
            k: used[k]
            for k in ("threshold", "r_min_um", "r_max_um", "suppression_distance_um")
            if k in used
        }
        calibrated = cfg.model_copy(update={"spots": cfg.spots.model_copy(update=fitted)})
        logger.info("detection calibrated on frame %d: %s", ref, fitted)
        self._calibration = (key, calibrated)
        return calibrated

    # ------------------------------------------------------------------ motion
    @property
    def _motion_path(self) -> Path:
        """``models/flow.pt``, ``models/movement.pt`` or ``models/joint.pt`` by motion kind."""
        return self.folder / storage.MODELS / f"{motion_name(self.config.motion)}.pt"

    @property
    def flow_model(self) -> Any:
        """The motion network of ``motion.kind`` (ELEPHANT's flow U-Net or Linajea's
        movement-vector / joint network; None before :meth:`train_motion`)."""
        if self._flow_model is None:
            path = self._motion_path
            if path.is_file():
                self._flow_model = load_motion_model(path, self.config.motion)
        return self._flow_model

    def approved_links(self) -> TrackGraph:
        """The annotation graph restricted to its approved links (all nodes kept)."""
        g = self._annotations
        return g.subgraph(edges=approved_mask(g))

    def train_motion(self, *, epochs: int | None = None, progress: bool = False) -> dict[str, Any]:
        """Train the motion model from the approved links between consecutive frames.

        ``motion.kind: flow`` fine-tunes ELEPHANT's backward flow, ``movement_vectors``
        Linajea's movement vectors; with ``motion.joint`` one network learns the cell
        indicator (from the reviewed spots) and the movement vectors together and also
        serves :meth:`predict`. Interrupted training resumes from
        ``models/.<name>.partial.pt``; the finished model replaces ``models/<name>.pt``
        (name flow, movement or joint) atomically.
        """
        start = time.perf_counter()
        g = self.approved_links()
        if g.num_edges:
            src, tgt = g.edge_index()
            g = g.subgraph(edges=(g.t[tgt] - g.t[src]) == 1)
        if g.num_edges == 0:
            raise InvalidInputError(
                "no approved link between consecutive frames: approve links "
                "(approve_links / add_link) before training the flow model"
            )
        cfg = self.config.motion
        if epochs is not None:
            cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": epochs})})
        partial = self._motion_path.with_name(f".{self._motion_path.stem}.partial.pt")
        partial.parent.mkdir(parents=True, exist_ok=True)
        if is_joint(cfg):
            model, history = train_joint_model(
                self.images,
                self._training_spots(),
                self.voxel_size,
                self.config.detection,
                cfg,
                checkpoint=partial,
                progress=progress,
            )
        else:
            model, history = train_motion_model(
                self.images, g, self.voxel_size, cfg, checkpoint=partial, progress=progress,
                model=self.flow_model,
            )
        os.replace(partial, self._motion_path)
        self._flow_model = model
        last = history[-1]["loss"] if history else float("nan")
        return {
            "links": int(g.num_edges),
            "epochs": len(history),
            "loss": float(last),
            "seconds": time.perf_counter() - start,
        }

    def train_flow(self, *, epochs: int | None = None, progress: bool = False) -> dict[str, Any]:
        """:meth:`train_motion` (the name from before movement vectors existed)."""
        return self.train_motion(epochs=epochs, progress=progress)

    # ------------------------------------------------------------------ linking
    def _linker(self, linker: Any) -> Any:
        if linker is None or (isinstance(linker, str) and linker == self.config.linker.kind):
            return resolve_linker(self.config.linker)
        return resolve_linker(linker)

    def link(
        self,
        linker: Any = None,
        *,
        kind: str | None = None,
        frames: tuple[int, int] | None = None,
        use_flow: bool = True,
        blockwise: Any = None,
        progress: bool = False,
    ) -> LinkResult:
        """Link the nuclei (tags tp, fn, unlabeled), keeping every approved link.

        Parameters
        ----------
        linker : Linker, config, kind name or dict, optional
            Default ``config.linker``; e.g. ``"ilp"``, ``"greedy"``, ``"flow_nn"`` or any
            registered kind.
        kind : str, optional
            Same as passing the kind name as ``linker``.
        frames : (int, int), optional
            Inclusive frame range to link (default all).
        use_flow : bool
            Add flow-predicted parent positions when a flow model exists.
        blockwise : BlockwiseConfig, optional
            Solve the candidate graph block-wise (candidate-graph linkers).
        progress : bool
            Progress bars.

        Returns
        -------
        LinkResult
            The solver's result through the link stage (:func:`celltrack.solve.stage.link_stage`:
            approved links kept and pinned, tp/fn spots pinned in). Nodes the linker made
            (e.g. interpolated ones) get fresh project ids; the graph is saved as
            ``tracks.geff``, and its links replace the annotation graph's non-approved links
            in the linked frames (approve them with :meth:`approve_links`).
        """
        if kind is not None:
            if linker is not None:
                raise InvalidInputError("give either linker or kind, not both")
            linker = kind
        g = self._annotations
        spots, candidates = self._link_inputs(frames, use_flow, progress)
        linker = self._linker(linker)
        result = link_stage(
            spots,
            g,
            candidates=candidates,
            linker=linker,
            blockwise=blockwise,
            progress=progress,
        )
        linked = spots.ids
        tracks = renumber_created(result.graph, linked, self._next_id())
        tracks.attrs["voxel_size"] = [float(v) for v in self.voxel_size]
        storage.save_graph(tracks, self.folder / storage.TRACKS)
        self._tracks = tracks
        self._commit(merge_links(g, tracks, linked))
        return dataclasses.replace(result, graph=tracks.copy())

    def _link_inputs(
        self, frames: tuple[int, int] | None, use_flow: bool, progress: bool
    ) -> tuple[TrackGraph, Any]:
        """The spots to link (with flow-predicted parents) and the candidate config."""
        g = self._annotations
        spots = g
        if frames is not None:
            lo, hi = (self._check_frame(f) for f in frames)
            spots = g.subgraph(nodes=(g.t >= lo) & (g.t <= hi))
        spots = linkable_spots(spots)
        if use_flow and self.flow_model is not None:
            spots = predict_parent_positions(
                self.flow_model, self.images, spots, self.voxel_size, self.config.motion,
                progress=progress,
            )
        candidates = self.config.candidates
        if candidates.field_of_view_um is None:
            fov = field_of_view(self.shape, self.voxel_size)
            candidates = candidates.model_copy(update={"field_of_view_um": fov})
        return spots, candidates

    def fit_costs(
        self,
        *,
        frames: tuple[int, int] | None = None,
        use_flow: bool = True,
        progress: bool = False,
        **options: Any,
    ) -> Any:
        """Learn the ILP's cost weights from the approved links, and link with them from now on.

        The approved links and their spots are the annotated lineage fragments; the rest
        of the candidate graph is unannotated (a structured SVM in sparse mode:
        :func:`celltrack.solve.fit_costs`). An annotated spot's other candidate links count
        as wrong, so approve every link of a spot you annotate. The learned
        :class:`~celltrack.solve.ILPConfig` replaces ``config.linker`` (saved in
        ``project.json``); :meth:`link` uses it.

        Parameters
        ----------
        frames : (int, int), optional
            Inclusive frame range of the candidate graph (default all).
        use_flow : bool
            Use flow-predicted parent positions when a flow model exists (as :meth:`link`).
        progress : bool
            Progress bars.
        **options
            Passed to :func:`celltrack.solve.fit_costs` (e.g. ``max_iterations``,
            ``time_limit_s``); ``sparse`` defaults to True.

        Returns
        -------
        FitResult
            ``config`` (the learned ILPConfig), ``weights`` and the loss history.

        Raises
        ------
        InvalidInputError
            If no link is approved.
        """
        from celltrack.solve import ILPConfig

        g = self._annotations
        if not approved_mask(g).any():
            raise InvalidInputError(
                "no approved links to learn linking costs from: approve a few lineage "
                "fragments first (approve_links / add_link)"
            )
        base = self.config.linker if self.config.linker.kind == "ilp" else ILPConfig()
        spots, candidates = self._link_inputs(frames, use_flow, progress)
        graph = link_graph(spots, g, candidates=candidates, linker=base, progress=progress)
        result = learn_costs(graph, g, base, **options)
        self.set_config(self.config.model_copy(update={"linker": result.config}))
        logger.info("learned ILP costs in %.1f s: %s", result.seconds, result.weights)
        return result

    # ------------------------------------------------------------------ export
    def export(
        self,
        path: str | Path,
        format: str | None = None,
        *,
        what: str = "tracks",
        radius_um: float | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Write the tracks (or the annotations) with :func:`celltrack.io.write_tracks`.

        Parameters
        ----------
        path : str or Path
            Output (``.geff``/``.zarr`` store, CTC folder, TrackMate ``.xml``, ``.csv`` or
            ``.json`` file).
        format : {"geff", "ctc", "trackmate", "csv", "json"}, optional
            Default: from the suffix of ``path``.
        what : {"tracks", "annotations"}
            The last :meth:`link` result, or the annotation graph with its tags.
        radius_um : float, optional
            CTC only: paint spheres of this radius instead of the covariances.
        overwrite : bool
            Replace an existing file or folder at ``path`` (never done otherwise).

        Returns
        -------
        Path
            The written path.
        """
        from celltrack.io import write_tracks

        if what not in ("tracks", "annotations"):
            raise InvalidInputError(f"what must be 'tracks' or 'annotations', got {what!r}")
        if what == "tracks":
            if self._tracks is None:
                raise CelltrackError("no tracks yet: call link() first (or what='annotations')")
            graph = self._tracks
        else:
            graph = self._annotations
        return write_tracks(
            graph,
            path,
            format,
            overwrite=overwrite,
            shape=self.shape,
            voxel_size=self.voxel_size,
            radius_um=radius_um,
        )
