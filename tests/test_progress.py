"""celltrack.progress: tqdm bars that also report to a listener (the napari plugin's bar)."""

import threading

import numpy as np
import torch

from celltrack.nn.history import TrainingHistory
from celltrack.nn.training import TrainingState, fit_epochs
from celltrack.progress import ProgressEvent, progress_bar, report, report_progress


def test_hidden_bar_reports_every_item_and_its_end():
    events: list[ProgressEvent] = []
    with report_progress(events.append):
        out = [x * 2 for x in progress_bar(range(4), desc="frames", disable=True)]
    assert out == [0, 2, 4, 6]
    assert [e.n for e in events] == [1, 2, 3, 4, 4]
    assert all(e.total == 4 and e.desc == "frames" for e in events)


def test_manual_updates_and_no_listener_outside_the_block():
    events: list[ProgressEvent] = []
    with report_progress(events.append):
        bar = progress_bar(total=3, desc="tiles", disable=True)
        bar.update(2)
        bar.close()
        report("incremental", 0, 1, loss=0.5, step=3)
    report("ignored", 1, 1)  # outside: nobody listens
    assert [(e.desc, e.n) for e in events] == [("tiles", 2), ("tiles", 2), ("incremental", 0)]
    assert events[-1].info == {"loss": 0.5, "step": 3.0}


def test_listener_belongs_to_its_thread():
    events: list[ProgressEvent] = []
    with report_progress(events.append):
        worker = threading.Thread(target=lambda: report("elsewhere", 1, 1))
        worker.start()
        worker.join()
        report("here", 1, 1)
    assert [e.desc for e in events] == ["here"]


def test_training_reports_loss_per_step():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    state = TrainingState(
        torch.optim.SGD(model.parameters(), lr=0.1), np.random.default_rng(0), TrainingHistory()
    )
    x, y = torch.randn(8, 2), torch.randn(8, 1)

    def loss_of(_batch):
        loss = torch.nn.functional.mse_loss(model(x), y)
        return loss, {}

    events: list[ProgressEvent] = []
    with report_progress(events.append):
        fit_epochs(
            model, state, mode="batch", epochs=2, batches=lambda e, rng: range(3),
            loss_of=loss_of, lr_of=lambda e, i: 0.1, progress=False,
        )
    steps = [e for e in events if "loss" in e.info]
    assert len(steps) == 6
    assert [int(e.info["step"]) for e in steps] == [1, 2, 3, 1, 2, 3]
    assert steps[-1].info["loss"] < steps[0].info["loss"]  # it learns
    assert events[-1].n == 2 and events[-1].total == 2  # the epoch bar ends at 2/2


def test_remaining_time_is_said_once_for_a_long_bar(monkeypatch):
    import celltrack.progress as progress

    clock = iter([0.0, 6.0, 12.0, 18.0])
    monkeypatch.setattr(progress, "_now", lambda: next(clock))
    lines: list[str] = []
    eta = progress.RemainingTime(lines.append, "train_detection")
    for n in (0, 2, 4, 6):  # 2 epochs per 6 s, 40 in all
        eta(ProgressEvent("batch", n, 40))
    assert lines == ["   train_detection: batch 2/40 after 6 s; about 2 min left"]


def test_remaining_time_stays_quiet_for_short_or_open_ended_work(monkeypatch):
    import celltrack.progress as progress

    clock = iter(float(t) for t in range(0, 100, 6))
    monkeypatch.setattr(progress, "_now", lambda: next(clock))
    lines: list[str] = []
    eta = progress.RemainingTime(lines.append, "detect")
    for n in (0, 5, 9):  # 10 frames: 1 frame per 1.2 s, < 20 s left
        eta(ProgressEvent("detect", n, 10))
    for n in (0, 1, 2):
        eta(ProgressEvent("tiles", n, None))  # no total: nothing to extrapolate
    assert lines == []


def test_the_stage_slot_holds_one_listener_beside_the_outer_one():
    from celltrack.progress import set_stage_listener

    outer: list[str] = []
    first: list[str] = []
    second: list[str] = []
    with report_progress(lambda e: outer.append(e.desc)):
        set_stage_listener(lambda e: first.append(e.desc))
        report("a", 1, 2)
        set_stage_listener(lambda e: second.append(e.desc))  # replaces, never stacks
        report("b", 1, 2)
        set_stage_listener(None)
        report("c", 1, 2)
    assert outer == ["a", "b", "c"] and first == ["a"] and second == ["b"]
