"""A :class:`~celltrack.project.Project` shown in a napari viewer, edited with mouse and keys.

:class:`ProjectSession` owns four layers — the movie (scaled to µm), the spots (a Points
layer coloured by tag, hover shows id / tag / score), the annotated links and the last
linking result (Tracks layers) — and turns what a person does to them into Project
edits, each saved before the call returns:

================================  ==============================================
in the viewer                      Project edit
================================  ==============================================
click in the spots layer's add     ``add_spot`` (radius: :attr:`radius_um`; ``[``/``]``
mode (napari's ``2`` key)          change it)
shift-drag in any mode             ``add_spot`` with the drag length as radius
drag selected spots (select mode)  ``move_spot`` (on release)
delete selected (napari's ``⌫``)   ``remove_spots``
``a`` / ``r``                      ``proofread(selected, "accept" / "reject")``
``l``                              ``add_link``: two selected spots in different frames,
                                   or one spot then (after changing frame) its child
``u`` / ``shift-u``                ``undo`` / ``redo``
a Tracks layer of another tracker  ``add_annotations`` (:meth:`ProjectSession.import_tracks`)
================================  ==============================================

The layers are rebuilt from the Project after every edit, so what is shown is always what
is saved. While a background job rewrites the annotations (prediction, linking), edits are
refused with a message: :attr:`locked` names the job.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any

import numpy as np

from celltrack.errors import CelltrackError
from celltrack.graph.tags import tags_of
from celltrack.model_kinds import point_radius_um
from celltrack.napari.layers import (
    is_two_d,
    lazy_movie,
    movie_scale,
    spot_colors,
    spot_coordinates,
    spot_diameters_um,
    spot_features,
    track_layer_data,
)
from celltrack.project import Project

__all__ = ["ProjectSession"]

logger = logging.getLogger(__name__)

SPOTS, LINKS, TRACKS, MOVIE = "spots", "links", "tracks", "movie"
#: Smallest radius (µm) a shift-drag sets; shorter drags use :attr:`ProjectSession.radius_um`.
MIN_DRAG_RADIUS_UM = 0.5


def _notify(message: str) -> None:
    """Show a message in napari's notification area (and the log)."""
    from napari.utils.notifications import show_warning

    logger.warning(message)
    show_warning(message)


class ProjectSession:
    """A Project and the napari layers that show it.

    Parameters
    ----------
    viewer : napari.Viewer
        Where to show the project.
    project : Project
        The project to edit (every edit is saved at once).
    radius_um : float, optional
        Radius (µm) of spots added by a click (default: the detection config's point
        radius).

    Attributes
    ----------
    radius_um : float
        Radius (µm) of clicked spots; ``[`` and ``]`` change it by 10 %.
    locked : str or None
        Name of the job that now rewrites the annotations (edits are refused), or None.
    on_edit : list of callable
        Called with the edited frame after every edit (the widget's live training).
    """

    def __init__(self, viewer: Any, project: Project, *, radius_um: float | None = None) -> None:
        self.viewer = viewer
        self.project = project
        self.two_d = is_two_d(project.shape)
        self.radius_um = float(
            point_radius_um(project.config.detection) if radius_um is None else radius_um
        )
        self.locked: str | None = None
        self._lock = threading.Lock()
        self.on_edit: list[Callable[[int], None]] = []
        self.link_source: int | None = None
        self._ids = np.zeros(0, np.int64)
        self._syncing = False
        self._dragging = False
        self._moved: set[int] = set()
        self._shown_links: dict[str, np.ndarray | None] = {}
        self._add_layers()

    # ------------------------------------------------------------------ layers
    @property
    def spots_layer(self) -> Any:
        """The Points layer of the spots."""
        return self.viewer.layers[SPOTS]

    @property
    def ids(self) -> np.ndarray:
        """Spot id of each row of the spots layer, shape (N,)."""
        return self._ids.copy()

    def _add_layers(self) -> None:
        p = self.project
        scale = movie_scale(p.voxel_size, self.two_d)
        first = np.asarray(p.images[p.frame])
        low, high = np.percentile(first, (1.0, 99.8))  # nuclei bright, not saturated
        self.viewer.add_image(
            lazy_movie(p.images),
            name=MOVIE,
            scale=scale,
            colormap="gray",
            contrast_limits=(float(low), float(max(high, low + 1))),
        )
        ndim = 3 if self.two_d else 4
        layer = self.viewer.add_points(
            np.zeros((0, ndim)),
            ndim=ndim,
            name=SPOTS,
            border_color="white",
            border_width=0.05,
            opacity=0.7,
            out_of_slice_display=not self.two_d,
        )
        layer.events.data.connect(self._on_layer_data)
        layer.mouse_drag_callbacks.append(self._drag)
        for key, action in (
            ("a", lambda _layer: self.proofread_selected("accept")),
            ("r", lambda _layer: self.proofread_selected("reject")),
            ("l", lambda _layer: self.link_selected()),
            ("u", lambda _layer: self.undo()),
            ("Shift-u", lambda _layer: self.redo()),
            ("[", lambda _layer: self.scale_radius(1 / 1.1)),
            ("]", lambda _layer: self.scale_radius(1.1)),
        ):
            layer.bind_key(key, action, overwrite=True)
        self.viewer.tooltip.visible = True
        self.viewer.dims.axis_labels = ("t", "y", "x") if self.two_d else ("t", "z", "y", "x")
        self.refresh()
        self.viewer.layers.selection.active = layer

    def refresh(self) -> None:
        """Rebuild every layer from the Project."""
        self.refresh_spots()
        self.refresh_tracks()

    def refresh_spots(self) -> None:
        """Rebuild the spots layer (and the links layer) from the annotations."""
        g = self.project.annotations
        layer = self.spots_layer
        selected_ids = set(self._ids[sorted(i for i in layer.selected_data if i < len(self._ids))])
        coords = spot_coordinates(g, self.two_d)
        sizes = spot_diameters_um(g, self.radius_um)
        self._syncing = True
        try:
            # napari already added / removed / moved the rows a click changed, and a
            # proofread changes only colours: re-set positions and sizes only if they differ
            if not np.array_equal(np.asarray(layer.data), coords):
                layer.data = coords
            if not np.array_equal(np.asarray(layer.size), sizes):
                layer.size = sizes
            layer.features = spot_features(g)
            layer.face_color = spot_colors(tags_of(g)) if g.num_nodes else "white"
            self._ids = np.asarray(g.ids, np.int64)
            layer.selected_data = set(np.flatnonzero(np.isin(self._ids, list(selected_ids))))
        finally:
            self._syncing = False
        self._set_tracks(LINKS, g, colormap="turbo")

    def refresh_tracks(self) -> None:
        """Rebuild the tracks layer from the last linking result."""
        self._set_tracks(TRACKS, self.project.tracks, colormap="hsv")

    def _set_tracks(self, name: str, graph: Any, *, colormap: str) -> None:
        """Show ``graph``'s links in the Tracks layer ``name`` (updated in place: cheap)."""
        drawn = None
        if graph is not None:  # what the layer draws: the links and where their spots are
            drawn = np.concatenate(
                [graph.edges["source"], graph.edges["target"], graph.positions.ravel()]
            )
        shown = self._shown_links.get(name)
        if shown is not None and drawn is not None and np.array_equal(shown, drawn):
            return  # a tag changed: nothing to redraw
        self._shown_links[name] = drawn
        data = track_layer_data(graph, self.two_d)
        if data is None:
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            return
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.graph = {}  # the old graph may name tracks the new data lacks
            layer.data = data[0]
            layer.graph = data[1]
            return
        active = self.viewer.layers.selection.active
        self.viewer.add_tracks(
            data[0], graph=data[1], name=name, colormap=colormap, tail_length=3, head_length=0
        )
        if active is not None and active in self.viewer.layers:
            self.viewer.layers.selection.active = active

    # ------------------------------------------------------------------ edits
    def _edit(self, what: str, edit: Callable[[], Any], frame: int | None = None) -> Any:
        """Run one Project edit, then show the result; refuse it while a job holds the data."""
        if not self._lock.acquire(blocking=False):
            _notify(f"{self.locked} is rewriting the annotations: {what} again when it is done")
            self.refresh_spots()
            return None
        try:
            result = edit()
        except CelltrackError as err:
            _notify(f"{what}: {err}")
            self.refresh_spots()
            return None
        finally:
            self._lock.release()
        self.refresh_spots()
        if frame is not None:
            for callback in list(self.on_edit):
                callback(int(frame))
        return result

    def current_frame(self) -> int:
        """The frame on screen (the viewer's time slider)."""
        return int(np.rint(self.viewer.dims.current_step[0]))

    def _position_um(self, coords: np.ndarray) -> tuple[int, np.ndarray]:
        """Frame and (z, y, x) µm of a layer row ``[t, (z), y, x]``."""
        coords = np.asarray(coords, np.float64)
        t = int(np.rint(coords[0]))
        zyx = np.r_[0.0, coords[1:]] if self.two_d else coords[1:4]
        return t, zyx

    def add_spot(self, t: int, position_um: Any, radius_um: float | None = None) -> int | None:
        """Add a nucleus (tag ``fn``) at (z, y, x) µm in frame ``t``; returns its id."""
        radius = self.radius_um if radius_um is None else float(radius_um)
        return self._edit(
            "add a nucleus",
            lambda: self.project.add_spot(int(t), np.asarray(position_um, float), radius),
            frame=t,
        )

    def selected_ids(self) -> np.ndarray:
        """Ids of the selected spots (sorted by row)."""
        rows = sorted(i for i in self.spots_layer.selected_data if i < len(self._ids))
        return self._ids[rows]

    def proofread_selected(self, decision: str) -> None:
        """Accept (tag ``tp``) or reject (tag ``fp``) the selected spots."""
        ids = self.selected_ids()
        if ids.size == 0:
            _notify(f"select spots to {decision} first (select mode: napari's 3 key)")
            return
        row = min(i for i in self.spots_layer.selected_data if i < len(self._ids))
        frame = int(np.rint(self.spots_layer.data[row, 0]))  # a row is [t, (z), y, x]
        self._edit(f"{decision} spots", lambda: self.project.proofread(ids, decision), frame)

    def delete_selected(self) -> None:
        """Delete the selected spots and their links."""
        ids = self.selected_ids()
        if ids.size:
            self._edit("delete spots", lambda: self.project.remove_spots(ids))

    def link_selected(self) -> None:
        """Link two selected spots of different frames, or chain from :attr:`link_source`.

        With one spot selected: the first press remembers it as the parent; after
        moving to a later frame and selecting the child, the second press links them and
        the child becomes the next parent (so a track is drawn press by press).
        """
        ids = self.selected_ids()
        g = self.project.annotations
        if ids.size == 2:
            t = g.t[g.index_of(ids)]
            if t[0] == t[1]:
                _notify("the two selected spots are in the same frame: a link joins two frames")
                return
            parent, child = (ids if t[0] < t[1] else ids[::-1]).tolist()
        elif ids.size == 1 and self.link_source is None:
            self.link_source = int(ids[0])
            return
        elif ids.size == 1:
            parent, child = self.link_source, int(ids[0])
            if parent == child:
                return
        else:
            _notify("select one spot (then its child in a later frame) or two spots, then press l")
            return
        child_frame = int(g.t[g.index_of([child])[0]])
        done = self._edit(
            "link", lambda: self.project.add_link(int(parent), int(child)) or True, child_frame
        )
        self.link_source = int(child) if done else None

    def undo(self) -> bool:
        """Undo the last annotation edit; False when there is none."""
        return bool(self._edit("undo", self.project.undo))

    def redo(self) -> bool:
        """Redo the last undone edit; False when there is none."""
        return bool(self._edit("redo", self.project.redo))

    @contextlib.contextmanager
    def exclusive(self, job: str) -> Iterator[None]:
        """Hold the annotations for ``job`` (edits are refused meanwhile; any thread).

        Waits for an edit in progress to finish first (edits take milliseconds).
        """
        with self._lock:
            self.locked = job
            try:
                yield
            finally:
                self.locked = None

    def import_tracks(self, layer: Any, *, approved: bool = False) -> np.ndarray | None:
        """Add the points and links of a napari Tracks layer (e.g. another tracker's).

        The layer's rows ``[track_id, t, (z), y, x]`` are taken in world coordinates (the
        layer's scale and translate applied, so µm when it is scaled like the movie).
        Spots come in as unreviewed predictions (tag ``unlabeled``) and links as
        ``approved`` (default False: to proofread). One undo step; returns the new ids.
        """
        from celltrack.io.napari_tracks import from_napari_tracks

        data = np.array(layer.data, dtype=np.float64)
        scale, translate = np.asarray(layer.scale, float), np.asarray(layer.translate, float)
        data[:, 1:] = data[:, 1:] * scale + translate  # columns after track_id: t, (z), y, x
        features = dict(layer.features)  # keep what the project stores: sizes and scores
        kept = {k: np.asarray(v) for k, v in features.items() if k == "score" or k[:4] == "cov_"}
        graph = from_napari_tracks(data, layer.graph, kept)
        return self._edit(
            f"import {getattr(layer, 'name', 'tracks')}",
            lambda: self.project.add_annotations(graph, tag="unlabeled", approved=approved),
        )

    def scale_radius(self, factor: float) -> None:
        """Change the radius of clicked spots (and resize the selected ones) by ``factor``."""
        self.radius_um = float(np.clip(self.radius_um * factor, 0.1, 1e3))
        ids = self.selected_ids()
        if ids.size:
            def resize() -> None:
                with self.project.batch():
                    g = self.project.annotations
                    for node, pos in zip(ids.tolist(), g.positions[g.index_of(ids)]):
                        self.project.move_spot(node, pos, radius_um=self.radius_um)

            self._edit("resize spots", resize)

    # ------------------------------------------------------------------ layer events
    def _on_layer_data(self, event: Any) -> None:
        """Turn napari's own point edits (add mode, delete key, dragging) into Project edits."""
        if self._syncing:
            return
        action = str(getattr(event, "action", ""))
        indices = [int(i) for i in getattr(event, "data_indices", ())]
        data = np.asarray(self.spots_layer.data)
        if action.endswith("removed"):
            # indices are rows before the removal, which self._ids still describes
            ids = self._ids[[i for i in indices if 0 <= i < len(self._ids)]]
            if ids.size:
                self._edit("delete spots", lambda: self.project.remove_spots(ids))
        elif action.endswith("added"):
            rows = [i % len(data) for i in indices]
            if len(data) - len(rows) != len(self._ids):
                self.refresh_spots()  # data replaced wholesale: show the project again
                return
            for row in rows:
                t, zyx = self._position_um(data[row])
                self.add_spot(t, zyx)
        elif action.endswith("changed"):
            if len(data) != len(self._ids):
                self.refresh_spots()
                return
            self._moved.update(i for i in indices if 0 <= i < len(data))
            if not self._dragging:
                self.flush_moves()

    def flush_moves(self) -> None:
        """Save the positions of spots dragged in the layer (``move_spot`` per moved spot)."""
        rows, self._moved = sorted(self._moved), set()
        if not rows:
            return
        data = np.asarray(self.spots_layer.data)
        # layer rows are the annotation graph's rows (both ordered by id)
        current = spot_coordinates(self.project.annotations, self.two_d)
        moved = [r for r in rows if not np.allclose(data[r], current[r])]
        if not moved:
            return

        def move() -> None:
            with self.project.batch():
                for row in moved:
                    _t, zyx = self._position_um(data[row])
                    self.project.move_spot(int(self._ids[row]), zyx)

        self._edit("move spots", move)

    def _drag(self, layer: Any, event: Any) -> Generator[None, None, None]:
        """Shift-drag adds a nucleus with the drag length as radius; drags end moves."""
        start = np.asarray(layer.world_to_data(event.position), np.float64)
        adding = "Shift" in {str(m) for m in getattr(event, "modifiers", ())}
        self._dragging = True
        yield
        end = start
        while event.type == "mouse_move":
            end = np.asarray(layer.world_to_data(event.position), np.float64)
            yield
        self._dragging = False
        if adding:
            self.add_by_drag(start, end)
        self.flush_moves()

    def add_by_drag(self, start: np.ndarray, end: np.ndarray) -> int | None:
        """Add a nucleus centred at layer row ``start`` with radius ``|end − start|`` (µm)."""
        t, centre = self._position_um(start)
        _t, edge = self._position_um(end)
        radius = float(np.linalg.norm(edge - centre))
        return self.add_spot(t, centre, radius if radius >= MIN_DRAG_RADIUS_UM else None)
