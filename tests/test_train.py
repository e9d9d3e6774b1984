"""The Trainer: it learns, keeps the best epoch, stops early, and stops cleanly on a NaN loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import edgekd as ek
from edgekd.errors import ConfigError, TrainingError
from edgekd.models.checkpoint import safe_load
from edgekd.train import CrossEntropy


def _small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 144, 4))


def test_trainer_learns_and_writes_checkpoints(tiny_images, tmp_path):
    model = _small_net()
    before = ek.evaluate(model, tiny_images.test)
    history = ek.Trainer(ek.TrainConfig(epochs=3, lr=1e-2), checkpoint_dir=tmp_path, quiet=True).fit(model, tiny_images)
    assert ek.evaluate(model, tiny_images.test) > max(0.9, before)
    assert len(history.epochs) == 3 and history.best_epoch is not None
    assert safe_load(tmp_path / "last.pt")["epoch"] == 3
    assert set(safe_load(tmp_path / "best.pt")["model"]) == set(model.state_dict())


def test_same_seed_gives_the_same_weights(tiny_images):
    results = []
    for _ in range(2):
        torch.manual_seed(1)
        model = _small_net()
        ek.Trainer(ek.TrainConfig(epochs=1), quiet=True, seed=3).fit(model, tiny_images)
        results.append(model[0].weight.detach().clone())
    assert torch.equal(results[0], results[1])


class _RecordsBatches(CrossEntropy):
    """Cross-entropy that notes the sample indices of every batch it trains on."""

    def __init__(self) -> None:
        self.seen: list[list[int]] = []

    def __call__(self, model, x, y, index):
        self.seen.append(index.tolist())
        return super().__call__(model, x, y, index)


def _batch_order(data, seed: int) -> list[list[int]]:
    objective = _RecordsBatches()
    ek.Trainer(ek.TrainConfig(epochs=2), quiet=True, seed=seed).fit(_small_net(), data, objective)
    return objective.seen


def test_a_seed_sets_the_batch_order_not_only_the_init(tiny_images):
    """Seeds of one study must differ in what they train on; seed 0 keeps the loader's own orders."""
    zero, one, zero_again = (_batch_order(tiny_images, seed) for seed in (0, 1, 0))
    assert zero == zero_again
    assert one != zero and one[0] not in zero  # no epoch of seed 1 repeats one of seed 0
    tiny_images.train.run_seed, tiny_images.train.epoch = 0, 0
    assert [index.tolist() for _, _, index in tiny_images.train] == zero[: len(tiny_images.train)]


class _NaNAfter(CrossEntropy):
    """Cross-entropy that turns NaN at a given global step."""

    def __init__(self, step: int) -> None:
        self.step, self.calls = step, 0

    def __call__(self, model, x, y, index):
        self.calls += 1
        loss, logits = super().__call__(model, x, y, index)
        return (loss * float("nan") if self.calls >= self.step else loss), logits


def test_nan_guard_stops_names_the_step_and_keeps_the_last_good_weights(tiny_images, tmp_path):
    model = _small_net()
    steps_per_epoch = len(tiny_images.train)
    trainer = ek.Trainer(ek.TrainConfig(epochs=3), checkpoint_dir=tmp_path, quiet=True)
    with pytest.raises(TrainingError, match="loss is nan at epoch 2, step 3;.*best.pt") as info:
        trainer.fit(model, tiny_images, _NaNAfter(steps_per_epoch + 3))
    assert "\n" not in str(info.value)
    good = safe_load(tmp_path / "best.pt")
    assert good["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.equal(model.state_dict()["0.weight"], good["model"]["0.weight"])


def test_early_stopping_after_patience_epochs(tiny_images):
    class Frozen(CrossEntropy):
        def __call__(self, model, x, y, index):
            loss, logits = super().__call__(model, x, y, index)
            return loss * 0.0, logits  # no learning: validation accuracy never improves

    history = ek.Trainer(ek.TrainConfig(epochs=10, patience=2), quiet=True).fit(_small_net(), tiny_images, Frozen())
    assert history.stopped_early and len(history.epochs) == 2 and history.best_epoch == 0


@pytest.mark.parametrize("schedule", ["cosine", "step", "constant"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_every_optimizer_and_schedule_runs(tiny_images, optimizer, schedule):
    config = ek.TrainConfig(epochs=2, optimizer=optimizer, schedule=schedule, lr=1e-2, grad_clip=1.0, gamma=0.5)
    trainer = ek.Trainer(config, quiet=True)
    model = _small_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = trainer.fit(model, tiny_images)
    built = trainer._optimizer(list(_small_net().parameters()))
    assert type(built).__name__.lower() == optimizer
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # it stepped
    first, second = (e.lr for e in history.epochs)
    if schedule == "constant":
        assert first == second == pytest.approx(1e-2)
    else:
        assert second < first <= 1e-2  # cosine decays, step halves each epoch


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"epochs": -1}, "epochs"),
        ({"lr": 0}, "lr"),
        ({"optimizer": "lamb"}, "optimizer"),
        ({"patience": 0}, "patience"),
    ],
)
def test_bad_train_config_names_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=f"^{key}: "):
        ek.TrainConfig(**kwargs)
