"""Project.predict calibrates the detector on the most-reviewed frame, as the pipeline does."""

from __future__ import annotations

import numpy as np

import celltrack.project.project as project_module


def test_unannotated_frames_get_the_threshold_fitted_on_the_reviewed_frame(
    project, tiny_data, gt_frame, monkeypatch
):
    pos, cov, _ = gt_frame(tiny_data, 0)
    project.add_spots(0, pos, covariance=cov)
    project.train_detection(frame=0)
    calls = []
    real = project_module.detect_spots

    def spy(model, images, cfg, **kwargs):
        calls.append((kwargs["frames"], kwargs.get("annotations") is not None))
        out = real(model, images, cfg, **kwargs)
        if kwargs.get("annotations") is not None:  # the calibration run
            out.attrs["calibration"]["threshold"] = 0.987  # mark what it chose
        else:
            calls[-1] += (cfg.spots.threshold,)
        return out

    monkeypatch.setattr(project_module, "detect_spots", spy)
    project.predict(2)
    project.predict(3)  # same model, same reviews: the calibration is reused
    assert calls == [([0], True), ([2], False, 0.987), ([3], False, 0.987)]

    project.proofread(project.spots(0).ids[:1], "reject")  # the reviews changed: recalibrate
    project.predict(2)
    assert calls[3] == ([0], True)
    project.train_detection(frame=0)  # a new model: recalibrate
    project.predict(2)
    assert [c[:2] for c in calls[5:]] == [([0], True), ([2], False)]
    assert np.isclose(calls[-1][2], 0.987)
