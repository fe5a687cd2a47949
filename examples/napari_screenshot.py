"""The README's napari screenshot: the plugin after one round of the interactive loop.

On the synthetic embryo (seed 0) it creates a project, clicks the ground-truth nuclei of
frame 0 into the spots layer, trains the detector in the widget's background worker
(the self-supervised prior, then batch epochs), predicts every frame, accepts the
predictions that match a nucleus and rejects the others in frame 1, links with greedy
NN and saves the window (viewer and dock widget) to ``docs/napari.png``. Needs
``celltrack[napari]`` and a screen: ``xvfb-run -a python examples/napari_screenshot.py``
on a machine without one (about 1.5 min on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
import torch

from celltrack.detect import DetectionConfig
from celltrack.flow import FlowConfig
from celltrack.napari.widget import CelltrackWidget
from celltrack.project import ProjectConfig
from celltrack.synth import SynthConfig, make_embryo

OUT = Path(__file__).resolve().parents[1] / "docs" / "napari.png"


def _wait(widget: CelltrackWidget) -> None:
    from qtpy.QtWidgets import QApplication

    while widget.jobs.running is not None:
        QApplication.processEvents()
        time.sleep(0.05)
    if widget.jobs.last_error:
        raise RuntimeError(widget.jobs.last_error)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="PNG to write")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = make_embryo(SynthConfig(seed=0))
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1500, 950)
    widget = CelltrackWidget(viewer)
    viewer.window.add_dock_widget(widget, name="celltrack")
    with tempfile.TemporaryDirectory() as tmp:
        session = widget.create_project(
            Path(tmp) / "embryo.ctproj", data.image, data.voxel_size,
            config=ProjectConfig(detection=DetectionConfig.cpu(), motion=FlowConfig.cpu()),
        )
        project, layer = session.project, session.spots_layer
        gt0 = data.gt.subgraph(nodes=data.gt.t == 0)
        layer.mode = "add"
        for zyx in gt0.positions:
            layer.add(np.r_[0.0, zyx])
        layer.mode = "select"
        widget.train("detection", "batch")  # a new model: self-supervised prior first
        _wait(widget)
        widget.predict("all frames")
        _wait(widget)
        g = project.annotations
        gt1 = data.gt.subgraph(nodes=data.gt.t == 1).positions
        rows = np.flatnonzero(g.t == 1)
        near = np.array([np.linalg.norm(gt1 - g.positions[r], axis=1).min() < 3.0 for r in rows])
        for decision, chosen in (("accept", rows[near]), ("reject", rows[~near])):
            if chosen.size:
                layer.selected_data = set(chosen.tolist())
                session.proofread_selected(decision)
        widget.link("greedy")
        _wait(widget)
        layer.selected_data = set()
        viewer.dims.set_current_step(0, 1)
        viewer.dims.set_point(1, float(np.median(gt1[:, 0])))
        shot = viewer.screenshot(canvas_only=False, flash=False)
    import imageio.v3 as iio

    args.out.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.out, shot)
    print(f"wrote {args.out} ({shot.shape[1]} × {shot.shape[0]} px): {project.tag_counts()}")
    viewer.close()


if __name__ == "__main__":
    main()
