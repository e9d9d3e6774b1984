"""BatchNorm statistics that match the weights: re-estimated after training stages, and a warning naming the cause."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import edgekd as ek
from edgekd.train.batchnorm import chance_warning, recalibrate_batchnorm


class SlowNormNet(nn.Module):
    """A conv net with TensorFlow's BatchNorm momentum (0.01 in PyTorch terms) on inputs of a large scale:
    the running statistics stay far from the batch statistics for many steps."""

    def __init__(self, momentum: float = 0.01, width: int = 8, offset: float = 3000.0) -> None:
        super().__init__()
        self.offset = offset
        self.conv = nn.Conv2d(1, width, 3, stride=3)
        self.norm = nn.BatchNorm2d(width, momentum=momentum)
        self.head = nn.Linear(width * 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm(self.conv(20.0 * x + self.offset)))
        return self.head(torch.flatten(x, 1))


def test_stale_statistics_are_reestimated_after_distill_and_noted(tiny_images, tmp_path, capsys):
    torch.manual_seed(0)
    teacher = SlowNormNet(momentum=0.1)
    ek.Trainer(ek.TrainConfig(epochs=3, lr=1e-2), quiet=True).fit(teacher, tiny_images)
    student = SlowNormNet(momentum=0.001)
    result = ek.Pipeline(teacher, student, tiny_images, [ek.Distill(epochs=2, lr=1e-2)], out_dir=tmp_path / "r",
                         quiet=True, device="cpu").run()  # fmt: skip
    row = {r["stage"]: r for r in result.report["ledger"]}["distill"]
    epochs = row["details"]["history"]["epochs"]
    assert epochs[0]["warning"] and all(e["batchnorm_refreshed"] for e in epochs)
    assert row["val_accuracy"] > 0.9 and row["test_accuracy"] > 0.9  # at chance without the re-estimate
    assert row["details"]["batchnorm_refreshed_epochs"] == [1, 2]
    assert "BatchNorm statistics re-estimated before validating 2 epochs" in row["notes"]
    warning = row["details"]["warning"]
    assert "momentum 0.001" in warning and "'norm'" in warning and "validation reaches" in warning
    assert "edgekd: warning: distill epoch 1: validation accuracy" in capsys.readouterr().err


def test_without_the_reestimate_that_student_sits_at_chance(tiny_images):
    torch.manual_seed(0)
    student = SlowNormNet(momentum=0.001)
    trainer = ek.Trainer(ek.TrainConfig(epochs=2, lr=1e-2), quiet=True)
    history = trainer.fit(student, tiny_images)
    assert history.epochs[-1].train_accuracy > 0.9 and history.best_val_accuracy > 0.9
    student.norm.reset_running_stats()  # what momentum 0.001 leaves after a few dozen steps, near enough
    assert ek.evaluate(student, tiny_images.val) < 0.4


def test_statistics_that_already_fit_are_left_alone(tiny_images, tmp_path):
    torch.manual_seed(0)
    teacher = SlowNormNet(momentum=0.1)
    ek.Trainer(ek.TrainConfig(epochs=3, lr=1e-2), quiet=True).fit(teacher, tiny_images)
    result = ek.Pipeline(teacher, SlowNormNet(momentum=0.1, offset=0.0), tiny_images, [ek.Train(epochs=3, lr=1e-2)],
                         out_dir=tmp_path / "r", quiet=True, device="cpu").run()  # fmt: skip
    row = {r["stage"]: r for r in result.report["ledger"]}["train"]
    assert "warning" not in row["details"] and row["details"]["batchnorm_refreshed_epochs"] == []
    assert row["details"]["batchnorm_refresh"]["val_before"] > 0.9 and "BatchNorm" not in row["notes"]


def test_recalibration_leaves_the_loader_and_random_streams_where_they_were(tiny_images):
    model = SlowNormNet()
    tiny_images.train.epoch = 3
    state = torch.get_rng_state()
    assert recalibrate_batchnorm(model, tiny_images.train, torch.device("cpu"), batches=4)
    assert tiny_images.train.epoch == 3 and torch.equal(torch.get_rng_state(), state)
    assert model.norm.momentum == 0.01 and model.norm.running_mean.abs().sum() > 0
    assert not recalibrate_batchnorm(nn.Linear(2, 2), tiny_images.train, torch.device("cpu"))


def test_the_chance_warning_names_what_it_can():
    assert chance_warning(SlowNormNet(), 0.95, 0.26, 4) is not None
    assert chance_warning(SlowNormNet(), 0.95, 0.80, 4) is None  # validation fine
    assert chance_warning(SlowNormNet(), 0.30, 0.25, 4) is None  # nothing learnt yet either
    assert "normalized" in chance_warning(nn.Linear(4, 4), 0.95, 0.25, 4)


@pytest.mark.slow
def test_a_qat_graph_gets_the_same_statistics_as_its_float_model(tiny_images):
    from int8_fixtures import SmallNet

    from edgekd.quantize import calibrate, prepare
    from edgekd.train.batchnorm import norm_statistics, stale_statistics_suspected

    torch.manual_seed(0)
    model = SmallNet()
    observed = prepare(model, ek.data.example_inputs(tiny_images.val), qat=True)
    calibrate(observed, tiny_images.train, 4, torch.device("cpu"))
    in_graph = norm_statistics(observed)  # no BatchNorm module left: batch_norm nodes with graph buffers
    assert [(s.name, s.module) for s in in_graph] == [(n, None) for n in ("stem.1", "depthwise.1", "project.1")]
    assert [s.momentum for s in in_graph] == [0.1] * 3  # read from each node's arguments
    assert stale_statistics_suspected(observed, 0.9, 0.25, 4)  # validation at chance in a QAT graph
    float_model = SmallNet()
    float_model.load_state_dict(model.state_dict())
    for _ in range(2):  # stable: a second estimate lands where the first did
        assert recalibrate_batchnorm(observed, tiny_images.train, torch.device("cpu"), 10)
    recalibrate_batchnorm(float_model, tiny_images.train, torch.device("cpu"), 10)
    for in_graph_stats, module_stats in zip(in_graph, norm_statistics(float_model)):
        assert torch.allclose(in_graph_stats.running_mean, module_stats.running_mean, atol=1e-5)
        assert torch.allclose(in_graph_stats.running_var, module_stats.running_var, rtol=1e-4, atol=1e-6)
    assert not observed.training  # left in eval form, as calibrate left it; fake quantization back on
    assert all(fq.fake_quant_enabled.item() for fq in observed.modules() if hasattr(fq, "fake_quant_enabled"))
