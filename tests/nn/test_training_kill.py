"""SIGKILL during training, then resume: the result equals an uninterrupted run, bit for bit."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch

    torch.set_num_threads(1)
    VS = (2.0, 1.0, 1.0)


    def movie():
        zz, yy, xx = np.meshgrid(*[np.arange(s) * v for s, v in zip((6, 32, 32), VS)],
                                 indexing="ij")
        img = np.full((2, 6, 32, 32), 10.0, np.float32)
        for t in range(2):
            for c in ((6.0, 10.0 + 2 * t, 10.0), (6.0, 22.0, 20.0 - 2 * t)):
                d2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
                img[t] += 100 * np.exp(-d2 / 18.0)
        return img


    def links():
        from celltrack.geometry import covariance_from_radii
        from celltrack.graph import TrackGraph

        pos = np.array([[6.0, 10.0, 10.0], [6.0, 22.0, 20.0], [6.0, 12.0, 10.0],
                        [6.0, 22.0, 18.0]])
        return TrackGraph.from_positions(
            [0, 0, 1, 1], pos, covariance=covariance_from_radii(np.full((4, 3), 4.0)),
            tag=np.array(["tp"] * 4),
        ).add_edges({"source": [0, 1], "target": [2, 3], "approved": [True, True]})


    def train(stage, checkpoint, resume):
        if stage == "detection":
            from celltrack.detect import DetectionConfig, ModelConfig, TrainConfig
            from celltrack.detect import train_detection

            cfg = DetectionConfig(model=ModelConfig(widths=(4, 8)), train=TrainConfig(
                crop_shape=(6, 24, 24), prior_crops=2, prior_learning_rates=(1e-2,),
                epochs=12, crops_per_frame=2, seed=0))
            return train_detection(movie(), links(), VS, cfg, checkpoint=checkpoint,
                                   resume=resume).model
        from celltrack.config.flow import FlowConfig, FlowTrainConfig
        from celltrack.flow import train_flow

        cfg = FlowConfig.cpu(train=FlowTrainConfig(epochs=12, crops_per_frame=2, batch_size=2,
                                                   crop_shape=(4, 16, 16), seed=3))
        return train_flow(movie(), links(), VS, cfg, checkpoint=checkpoint,
                          resume=resume).model


    if __name__ == "__main__":
        train(sys.argv[1], sys.argv[2], resume=False)
    """
)


def _load(path):
    spec = importlib.util.spec_from_file_location("kill_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("stage", "seed"), [("detection", 0), ("flow", 1)])
def test_a_sigkilled_training_resumes_to_the_uninterrupted_result(tmp_path, stage, seed):
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    checkpoint = tmp_path / "model.pt"
    proc = subprocess.Popen([sys.executable, str(script), stage, str(checkpoint)])
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(np.random.default_rng(seed).uniform(0.0, 0.4))  # somewhere in the epochs
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "training ended before the kill: make it longer"
    assert checkpoint.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    module = _load(script)
    resumed = module.train(stage, checkpoint, resume=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name not in
                leftovers]
    full = module.train(stage, tmp_path / "uninterrupted.pt", resume=False)
    for p, q in zip(resumed.parameters(), full.parameters()):
        assert torch.equal(p, q)
