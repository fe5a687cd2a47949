import numpy as np
import pytest
import torch

from celltrack.config.nn import AugmentConfig
from celltrack.errors import CheckpointError
from celltrack.nn import (
    TrainingHistory,
    TrainingState,
    TrainRecord,
    UNet,
    check_same_run,
    cosine_lr,
    crop_origin,
    fit_epochs,
    load_checkpoint,
    restore_training_state,
    sample_crop,
    sample_labelled_crop,
    save_checkpoint,
    save_training_checkpoint,
    seeded_build,
)

torch.set_num_threads(1)


def test_cosine_schedule_ends_at_the_fraction_and_is_constant_for_one_step():
    rates = [cosine_lr(1e-2, s, 5, 0.1) for s in range(5)]
    assert rates[0] == pytest.approx(1e-2) and rates[-1] == pytest.approx(1e-3)
    assert np.all(np.diff(rates) < 0)
    assert cosine_lr(1e-3, 0, 1, 0.1) == 1e-3 and cosine_lr(1e-3, 3, 5, 1.0) == 1e-3


def test_history_columns_records_and_plain_round_trip():
    h = TrainingHistory()
    h.append(TrainRecord("prior", 1, 1, 0.5, {}, 1e-2, 0.1))
    h.append(TrainRecord("batch", 1, 2, 0.25, {"dice": 0.2}, 1e-3, 0.1))
    assert h["loss"] == [0.5, 0.25] and h[1]["dice"] == 0.2 and np.isnan(h["dice"][0])
    assert TrainingHistory.from_list(h.to_list()) == h and len(h[1:]) == 1
    with pytest.raises(KeyError, match="nll"):
        h.column("nll")


def test_crops_contain_their_centre_and_keep_the_margin():
    rng = np.random.default_rng(0)
    for _ in range(200):
        centre = rng.uniform(0, [7.4, 59.4, 59.4])
        origin = crop_origin(rng, (8, 60, 60), (4, 20, 20), centre, margin=0.2)
        inside = np.round(centre) - origin
        assert np.all(inside >= 0) and np.all(inside < [4, 20, 20])
        far = (np.round(centre) >= 10) & (np.round(centre) < 50)  # the frame allows it
        assert np.all((inside[1:] >= 4) & (inside[1:] < 16) | ~far[1:])


def test_augmented_crop_moves_image_labels_and_vectors_together():
    image = np.zeros((1, 1, 40, 40), np.float32)
    image[0, 0, 18:22, 18:22] = 1.0
    labels = (image[0] > 0).astype(np.uint8)
    vectors = np.zeros((3, 1, 40, 40), np.float32)
    vectors[2][labels > 0] = 1.0
    cfg = AugmentConfig(rotation_deg=180, scale=0.2, flip=True)
    rng = np.random.default_rng(1)
    for _ in range(10):
        crop = sample_labelled_crop(
            rng, image, (1, 16, 16), np.array([[0, 20, 20]]), labels=labels,
            vectors=vectors, augment=cfg,
        )
        assert crop.image.shape == (1, 1, 16, 16) and crop.labelled
        assert np.mean((crop.image[0] > 0.5) != (crop.labels > 0)) < 0.03  # edges interpolate
        lengths = np.linalg.norm(crop.vectors[:, crop.labels > 0], axis=0)
        np.testing.assert_allclose(lengths, lengths[0], rtol=1e-5)  # rotated, not lost
    plain = sample_crop(rng, image, (1, 50, 50))
    assert plain.image.shape == (1, 1, 40, 40) and plain.labels is None


def _state(model, seed=0):
    return TrainingState(torch.optim.Adam(model.parameters(), lr=1e-2), np.random.default_rng(seed))


def _fit(model, state, epochs, **kw):
    def batches(epoch, rng):
        for _ in range(3):
            yield torch.from_numpy(rng.random((2, 1, 1, 8, 8), dtype=np.float32))

    def loss_of(x):
        return (model(x) - x).pow(2).mean(), {"mse": 0.0}

    return fit_epochs(model, state, mode="toy", epochs=epochs, batches=batches,
                      loss_of=loss_of, lr_of=lambda e, i: 1e-2 / (1 + e), **kw)


def test_training_state_round_trips_safely_and_resumes_exactly(tmp_path):
    arch = {"name": "toy"}
    def build(g):
        conv = torch.nn.Conv3d(1, 1, 3, padding=1)
        torch.nn.init.normal_(conv.weight, generator=g)
        return conv

    ref = seeded_build(0, build)
    _fit(ref, _state(ref), 3)
    model = seeded_build(0, build)
    state = _state(model)
    _fit(model, state, 1, on_epoch_end=lambda s: save_training_checkpoint(
        tmp_path / "c.pt", model, arch, s))
    payload = load_checkpoint(tmp_path / "c.pt")  # weights_only=True inside
    again = torch.nn.Conv3d(1, 1, 3, padding=1)
    again.load_state_dict(payload["state_dict"])
    resumed = _state(again, seed=99)  # the generator state comes from the checkpoint
    restore_training_state(payload, resumed)
    assert resumed.position == {"phase": "toy", "epoch": 1} and len(resumed.history) == 3
    history = _fit(again, resumed, 3)
    assert [r.step for r in history] == list(range(1, 10))
    for p, q in zip(again.parameters(), ref.parameters()):
        assert torch.equal(p, q)
    save_checkpoint(tmp_path / "plain.pt", again, arch)
    with pytest.raises(CheckpointError, match="no training state"):
        restore_training_state(load_checkpoint(tmp_path / "plain.pt"), resumed)


def test_seeded_build_is_reproducible_and_leaves_global_state():
    before = torch.random.get_rng_state()
    a = seeded_build(3, lambda g: UNet(1, 2, (2, 4), generator=g))
    b = seeded_build(3, lambda g: UNet(1, 2, (2, 4), generator=g))
    assert torch.equal(torch.random.get_rng_state(), before)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_check_same_run_names_the_difference():
    saved = {"train": {"learning_rate": 1e-3, "epochs": 2, "crop": [1, 2]}, "predict": {"a": 1}}
    same = {"train": {"learning_rate": 1e-3, "epochs": 9, "crop": (1, 2)}, "predict": {"a": 2}}
    check_same_run(saved, same, sections=["train"])  # epochs extend, predict is not training
    with pytest.raises(CheckpointError, match=r"train\.learning_rate"):
        check_same_run(saved, {"train": {**same["train"], "learning_rate": 1.0}},
                       sections=["train"])
