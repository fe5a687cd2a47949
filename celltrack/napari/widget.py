"""The celltrack dock widget: project, annotate, train, predict, link, export.

Every button calls one method of :class:`CelltrackWidget` (``create_project``,
``open_project``, ``train``, ``predict``, ``link``, ``export``), so scripts and tests drive
the widget exactly as a person does. Edits go through
:class:`~celltrack.napari.session.ProjectSession`; long calls run in a
:class:`~celltrack.napari.jobs.JobRunner` worker with a progress bar and the loss.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from celltrack.errors import CelltrackError, InvalidInputError
from celltrack.io.tracks import WRITE_FORMATS
from celltrack.napari.jobs import JobRunner
from celltrack.napari.session import ProjectSession
from celltrack.progress import ProgressEvent
from celltrack.project import Project
from celltrack.solve.base import linker_kinds

__all__ = ["CelltrackWidget"]

logger = logging.getLogger(__name__)

TRAIN_TARGETS = ("detection", "motion")
TRAIN_MODES = ("incremental", "batch")
PREDICT_SCOPES = ("current frame", "frame range", "all frames")


def _button(text: str, action: Callable[[], Any], tip: str = "") -> QPushButton:
    button = QPushButton(text)
    button.clicked.connect(lambda _checked=False: action())
    button.setToolTip(tip)
    return button


class CelltrackWidget(QWidget):
    """Dock widget of the interactive loop (napari calls it with the viewer).

    Parameters
    ----------
    napari_viewer : napari.Viewer
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session: ProjectSession | None = None
        self.jobs = JobRunner()
        self.jobs.progress.connect(self._on_progress)
        self.jobs.started.connect(lambda name: self._set_status(f"{name}…", busy=True))
        self.jobs.finished.connect(self._on_finished)
        self.jobs.failed.connect(self._on_failed)
        self._edits_since_training = 0
        layout = QVBoxLayout(self)
        for box in (
            self._project_box(),
            self._annotate_box(),
            self._train_box(),
            self._predict_box(),
            self._link_box(),
            self._export_box(),
        ):
            layout.addWidget(box)
        self.progress_bar = QProgressBar()
        self.status = QLabel("open or create a project")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        layout.addStretch(1)
        napari_viewer.layers.events.inserted.connect(self._list_tracks_layers)
        napari_viewer.layers.events.removed.connect(self._list_tracks_layers)
        self._list_tracks_layers()

    # ------------------------------------------------------------------ sections
    def _project_box(self) -> QGroupBox:
        box = QGroupBox("Project")
        form = QFormLayout(box)
        self.movie_path = QLineEdit()
        self.movie_path.setPlaceholderText("movie: TIFF, OME-Zarr, CTC folder, …")
        self.axes = QLineEdit()
        self.axes.setPlaceholderText("from the file (e.g. TZYX, TYX)")
        self.voxel = [QDoubleSpinBox() for _ in range(3)]
        voxel_row = QHBoxLayout()
        for spin, name in zip(self.voxel, "zyx"):
            spin.setRange(0.001, 1000.0)
            spin.setDecimals(3)
            spin.setValue(1.0)
            spin.setSuffix(" µm")
            spin.setToolTip(f"voxel size along {name} (µm)")
            voxel_row.addWidget(spin)
        self.project_folder = QLineEdit()
        self.project_folder.setPlaceholderText("folder.ctproj")
        form.addRow("movie", self._with_browse(self.movie_path, folder=False))
        form.addRow("axes", self.axes)
        form.addRow("voxel z, y, x", voxel_row)
        form.addRow("project", self._with_browse(self.project_folder, folder=True))
        buttons = QHBoxLayout()
        buttons.addWidget(_button("Create", self._create_from_form, "new project from the movie"))
        buttons.addWidget(_button("Open", self._open_from_form, "resume the project folder"))
        form.addRow(buttons)
        return box

    def _with_browse(self, edit: QLineEdit, *, folder: bool) -> QHBoxLayout:
        def browse() -> None:
            path = (
                QFileDialog.getExistingDirectory(self, "Choose a folder")
                if folder
                else QFileDialog.getOpenFileName(self, "Choose a movie")[0]
            )
            if path:
                edit.setText(path)

        row = QHBoxLayout()
        row.addWidget(edit)
        row.addWidget(_button("…", browse))
        return row

    def _annotate_box(self) -> QGroupBox:
        box = QGroupBox("Annotate (keys in the spots layer)")
        form = QFormLayout(box)
        self.radius = QDoubleSpinBox()
        self.radius.setRange(0.1, 1000.0)
        self.radius.setSuffix(" µm")
        self.radius.setToolTip("radius of clicked nuclei ([ and ] change it)")
        self.radius.valueChanged.connect(self._radius_changed)
        form.addRow("radius", self.radius)
        row = QHBoxLayout()
        for text, key, action in (
            ("Accept", "a", lambda: self._session().proofread_selected("accept")),
            ("Reject", "r", lambda: self._session().proofread_selected("reject")),
            ("Delete", "⌫", lambda: self._session().delete_selected()),
            ("Link", "l", lambda: self._session().link_selected()),
            ("Undo", "u", lambda: self._session().undo()),
            ("Redo", "shift-u", lambda: self._session().redo()),
        ):
            row.addWidget(_button(text, action, f"key: {key}"))
        form.addRow(row)
        self.counts = QLabel("")
        form.addRow(self.counts)
        return box

    def _train_box(self) -> QGroupBox:
        box = QGroupBox("Train")
        form = QFormLayout(box)
        self.train_target = QComboBox()
        self.train_target.addItems(TRAIN_TARGETS)
        self.train_mode = QComboBox()
        self.train_mode.addItems(TRAIN_MODES)
        self.train_amount = QSpinBox()
        self.train_amount.setRange(0, 100000)
        self.train_amount.setSpecialValueText("from config")
        self.train_amount.setToolTip("steps (incremental) or epochs (batch); 0: the config's")
        self.prior = QCheckBox("self-supervised prior for a new detector")
        self.prior.setChecked(True)
        self.live = QCheckBox("live: retrain and predict the frame after every")
        self.live_every = QSpinBox()
        self.live_every.setRange(1, 1000)
        self.live_every.setValue(5)
        self.live_every.setSuffix(" edits")
        live_row = QHBoxLayout()
        live_row.addWidget(self.live)
        live_row.addWidget(self.live_every)
        self.loss = QLabel("loss: –")
        form.addRow("model", self.train_target)
        form.addRow("mode", self.train_mode)
        form.addRow("steps / epochs", self.train_amount)
        form.addRow(self.prior)
        form.addRow(live_row)
        form.addRow(_button("Train", self._train_from_form))
        form.addRow(self.loss)
        return box

    def _predict_box(self) -> QGroupBox:
        box = QGroupBox("Predict nuclei")
        form = QFormLayout(box)
        self.predict_scope = QComboBox()
        self.predict_scope.addItems(PREDICT_SCOPES)
        self.predict_from = QSpinBox()
        self.predict_to = QSpinBox()
        row = QHBoxLayout()
        row.addWidget(self.predict_from)
        row.addWidget(QLabel("to"))
        row.addWidget(self.predict_to)
        form.addRow("frames", self.predict_scope)
        form.addRow("range", row)
        form.addRow(_button("Predict", self._predict_from_form))
        return box

    def _link_box(self) -> QGroupBox:
        box = QGroupBox("Link")
        form = QFormLayout(box)
        self.linker = QComboBox()
        self.linker.addItems(linker_kinds())
        self.learn_costs = QCheckBox("learn ILP costs from the approved links first")
        form.addRow("linker", self.linker)
        form.addRow(self.learn_costs)
        form.addRow(_button("Link", self._link_from_form))
        self.tracks_layer = QComboBox()
        self.tracks_layer.setToolTip("a Tracks layer in the viewer (e.g. another tracker's)")
        row = QHBoxLayout()
        row.addWidget(self.tracks_layer)
        row.addWidget(_button("Import", self._import_from_form, "as spots and links to proofread"))
        form.addRow("tracks layer", row)
        return box

    def _export_box(self) -> QGroupBox:
        box = QGroupBox("Export")
        form = QFormLayout(box)
        self.export_format = QComboBox()
        self.export_format.addItems(WRITE_FORMATS)
        self.export_what = QComboBox()
        self.export_what.addItems(("tracks", "annotations"))
        self.export_path = QLineEdit()
        self.export_path.setPlaceholderText("tracks.geff, ctc folder, tracks.xml, …")
        form.addRow("format", self.export_format)
        form.addRow("what", self.export_what)
        form.addRow("to", self._with_browse(self.export_path, folder=False))
        form.addRow(_button("Export", self._export_from_form))
        return box

    # ------------------------------------------------------------------ form handlers
    def _guarded(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except CelltrackError as err:
            self._set_status(str(err))
            return None

    def _create_from_form(self) -> None:
        voxel = [spin.value() for spin in self.voxel]
        self._guarded(
            lambda: self.create_project(
                self.project_folder.text(), self.movie_path.text(), voxel,
                axes=self.axes.text() or None,
            )
        )

    def _open_from_form(self) -> None:
        self._guarded(lambda: self.open_project(self.project_folder.text()))

    def _train_from_form(self) -> None:
        amount = self.train_amount.value() or None
        self._guarded(
            lambda: self.train(
                self.train_target.currentText(), self.train_mode.currentText(), amount
            )
        )

    def _predict_from_form(self) -> None:
        scope = self.predict_scope.currentText()
        self._guarded(
            lambda: self.predict(scope, (self.predict_from.value(), self.predict_to.value()))
        )

    def _link_from_form(self) -> None:
        self._guarded(
            lambda: self.link(self.linker.currentText(), learn_costs=self.learn_costs.isChecked())
        )

    def _import_from_form(self) -> None:
        self._guarded(lambda: self.import_tracks(self.tracks_layer.currentText()))

    def _export_from_form(self) -> None:
        self._guarded(
            lambda: self.export(
                self.export_path.text(),
                self.export_format.currentText(),
                what=self.export_what.currentText(),
            )
        )

    # ------------------------------------------------------------------ actions
    def _session(self) -> ProjectSession:
        if self.session is None:
            raise InvalidInputError("open or create a project first (Project section)")
        return self.session

    def create_project(
        self,
        folder: str | Path,
        movie: str | Path | Any,
        voxel_size: Sequence[float] | None,
        *,
        axes: str | None = None,
        config: Any = None,
    ) -> ProjectSession:
        """Start a project in ``folder`` from a movie (file or array) and show it."""
        if not str(folder):
            raise InvalidInputError("choose a project folder (e.g. embryo.ctproj)")
        project = Project.create(folder, movie, voxel_size, config, axes=axes)
        return self._show(project)

    def open_project(self, folder: str | Path) -> ProjectSession:
        """Resume the project in ``folder`` and show it."""
        if not str(folder):
            raise InvalidInputError("choose the project folder to open")
        return self._show(Project.open(folder))

    def _show(self, project: Project) -> ProjectSession:
        for name in ("movie", "spots", "links", "tracks"):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        self.session = ProjectSession(self.viewer, project)
        self.session.on_edit.append(self._after_edit)
        self.radius.setValue(self.session.radius_um)
        for spin, value in zip(self.voxel, project.voxel_size):
            spin.setValue(float(value))
        self.project_folder.setText(str(project.folder))
        self.linker.setCurrentText(project.config.linker.kind)
        last = project.shape[0] - 1
        for spin in (self.predict_from, self.predict_to):
            spin.setRange(0, last)
        self.predict_to.setValue(last)
        self.viewer.dims.set_current_step(0, project.frame)
        self._update_counts()
        self._set_status(repr(project))
        return self.session

    def _radius_changed(self, value: float) -> None:
        if self.session is not None:
            self.session.radius_um = float(value)

    def _after_edit(self, frame: int) -> None:
        self._update_counts()
        self._edits_since_training += 1
        if self.live.isChecked() and self._edits_since_training >= self.live_every.value():
            if self.jobs.running is None:
                self.train_live(frame)

    def train(
        self, target: str = "detection", mode: str = "incremental", amount: int | None = None
    ) -> bool:
        """Train the detection or motion model in the background.

        Parameters
        ----------
        target : {"detection", "motion"}
        mode : {"incremental", "batch"}
            Detection only: incremental steps on the frame on screen (ELEPHANT's live
            update) or batch epochs over every frame with reviewed spots.
        amount : int, optional
            Steps (incremental) or epochs (batch, motion); default the config's.

        Returns
        -------
        bool
            Whether the job started (False while another one runs).
        """
        session = self._session()
        project = session.project
        if target not in TRAIN_TARGETS or mode not in TRAIN_MODES:
            raise InvalidInputError(
                f"train target must be one of {TRAIN_TARGETS} and mode one of {TRAIN_MODES}"
            )
        if project.config.prior != self.prior.isChecked():
            project.set_config(project.config.model_copy(update={"prior": self.prior.isChecked()}))
        frame = session.current_frame()

        def work() -> dict[str, Any]:
            if target == "motion":
                return project.train_motion(epochs=amount)
            if mode == "incremental":
                return project.train_detection(True, frame, steps=amount)
            return project.train_detection(False, epochs=amount)
        self._edits_since_training = 0
        return self._start(f"train {target} ({mode})", work, self._show_training)

    def train_live(self, frame: int) -> bool:
        """One live round: incremental training on ``frame``, then its prediction."""
        session = self._session()
        project = session.project
        self._edits_since_training = 0

        def work() -> Any:
            result = project.train_detection(True, frame)
            with session.exclusive("live prediction"):
                project.predict(frame)
            return result

        def done(result: Any) -> str:
            session.refresh_spots()
            self._update_counts()
            return self._show_training(result)

        return self._start("live training", work, done)

    def predict(self, scope: str = "current frame", frames: tuple[int, int] | None = None) -> bool:
        """Predict nuclei in the frame on screen, a frame range (inclusive) or every frame."""
        session = self._session()
        project = session.project
        if scope == "current frame":
            todo = [session.current_frame()]
        elif scope == "frame range":
            lo, hi = frames if frames is not None else (0, project.shape[0] - 1)
            todo = list(range(int(lo), int(hi) + 1))
        elif scope == "all frames":
            todo = list(range(project.shape[0]))
        else:
            raise InvalidInputError(f"predict scope must be one of {PREDICT_SCOPES}, got {scope!r}")

        def work() -> None:
            from celltrack.progress import progress_bar

            with session.exclusive("prediction"):
                for t in progress_bar(todo, desc="predict", disable=True):
                    project.predict(t)

        def done(_result: Any) -> str:
            session.refresh_spots()
            self._update_counts()
            return f"predicted {len(todo)} frame(s): {self.counts.text()}"

        return self._start(f"predict {len(todo)} frame(s)", work, done)

    def link(self, kind: str | None = None, *, learn_costs: bool = False) -> bool:
        """Link the nuclei with a linker kind (``greedy``, ``flow_nn``, ``ilp``, …).

        With ``learn_costs``, the ILP's costs are first fitted to the approved links
        (:meth:`Project.fit_costs`) and the ILP links with them.
        """
        session = self._session()
        project = session.project
        kind = kind or project.config.linker.kind

        def work() -> Any:
            with session.exclusive("linking"):
                if learn_costs:
                    project.fit_costs()
                    return project.link("ilp")
                return project.link(kind)

        def done(_result: Any) -> str:
            session.refresh()
            tracks = project.tracks
            n = 0 if tracks is None else tracks.num_edges
            return f"linked: {n} links ({'learned ILP costs' if learn_costs else kind})"

        name = "learn costs and link" if learn_costs else f"link ({kind})"
        return self._start(name, work, done)

    def _start(
        self, name: str, work: Callable[[], Any], done: Callable[[Any], str] | None = None
    ) -> bool:
        """Run ``work`` as a job; ``done(result)`` (GUI thread) returns the status line."""

        def finish(result: Any) -> None:
            self._set_status((done(result) if done is not None else None) or f"{name}: done")

        return self.jobs.start(name, work, finish)

    def import_tracks(self, layer_name: str) -> int:
        """Bring the Tracks layer ``layer_name`` into the project (spots and links to review).

        Returns the number of spots added.
        """
        session = self._session()
        from napari.layers import Tracks

        if layer_name not in self.viewer.layers or not isinstance(
            self.viewer.layers[layer_name], Tracks
        ):
            raise InvalidInputError(f"there is no Tracks layer named {layer_name!r} to import")
        ids = session.import_tracks(self.viewer.layers[layer_name])
        self._update_counts()
        added = 0 if ids is None else len(ids)
        self._set_status(f"imported {added} spots from {layer_name}")
        return added

    def export(self, path: str | Path, format: str | None = None, *, what: str = "tracks") -> Path:
        """Write the tracks (or annotations) as GEFF, CTC, TrackMate XML, CSV or JSON."""
        if not str(path):
            raise InvalidInputError("choose where to export (the 'to' field)")
        out = self._session().project.export(path, format, what=what, overwrite=True)
        self._set_status(f"wrote {out}")
        return out

    # ------------------------------------------------------------------ feedback
    def _list_tracks_layers(self, _event: Any = None) -> None:
        """Offer the viewer's Tracks layers (but the project's own) for import."""
        from napari.layers import Tracks

        names = [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Tracks) and layer.name not in ("links", "tracks")
        ]
        self.tracks_layer.clear()
        self.tracks_layer.addItems(names)

    def _update_counts(self) -> None:
        if self.session is None:
            return
        counts = self.session.project.tag_counts()
        self.counts.setText(", ".join(f"{tag} {n}" for tag, n in counts.items() if n) or "no spots")

    def _set_status(self, text: str, *, busy: bool = False) -> None:
        self.status.setText(text)
        if busy:
            self.progress_bar.setRange(0, 0)  # busy until the first progress event

    def _on_progress(self, event: ProgressEvent) -> None:
        if event.total:
            self.progress_bar.setRange(0, int(event.total))
            self.progress_bar.setValue(min(int(event.n), int(event.total)))
        if "loss" in event.info:
            step = int(event.info.get("step", 0))
            self.loss.setText(f"loss: {event.info['loss']:.4f} ({event.desc}, step {step})")

    def _on_finished(self, name: str, seconds: float) -> None:
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(1)
        self._set_status(f"{self.status.text()} ({name}: {seconds:.1f} s)")

    def _on_failed(self, name: str, message: str) -> None:
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self._set_status(f"{name} failed: {message}")
        if self.session is not None:
            self.session.refresh()

    def _show_training(self, result: Any) -> str:
        """Show a training result's last loss; returns the status line."""
        if not isinstance(result, dict) or "loss" not in result:
            return ""
        self.loss.setText(f"loss: {result['loss']:.4f} (last step)")
        done = result.get("steps", result.get("epochs", 0))
        return f"trained: {done} {'steps' if 'steps' in result else 'epochs'}"
