"""Tabular features are features, not pixels: standardized per column, described as such in the
manifest, and never called raw pixels by the benchmark's range check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import edgekd as ek
from edgekd.bench.input_range import range_warning
from edgekd.export.manifest import _normalization


@pytest.fixture(scope="module")
def columns():
    rng = np.random.default_rng(0)
    amount = rng.lognormal(6, 1, 400)  # in the hundreds to thousands
    ratio = rng.random(400)  # in [0, 1]
    x = np.stack([amount, ratio, rng.normal(50, 10, 400)], axis=1).astype("float32")
    y = (ratio > 0.9).astype(int)  # 10% positives
    return x, y


def test_each_column_is_standardized_on_its_own_scale(columns):
    x, y = columns
    data = ek.data.from_arrays(x, y, x, y, batch_size=64)
    assert len(data.mean) == 3 and data.mean[0] > 100 and 0 < data.mean[1] < 1
    features = torch.cat([batch[0] for batch in data.train])
    assert features.mean(0).abs().max() < 0.2 and (features.std(0) - 1).abs().max() < 0.2  # every column, not one


def test_integer_columns_are_counts_not_pixels():
    counts = np.tile(np.arange(10, dtype=np.uint8), (20, 1))
    data = ek.data.from_arrays(counts, np.arange(20) % 2, counts, np.arange(20) % 2)
    assert data.mean[9] == pytest.approx(9.0)  # not 9 / 255


def test_the_manifest_says_features_and_the_range_check_leaves_them_alone(columns):
    x, y = columns
    data = ek.data.from_arrays(x, y, x, y)
    normalization = _normalization(data)
    assert normalization["kind"] == "features" and "pixel_scale" not in normalization
    assert "feature[i]" in normalization["formula"] and len(normalization["std"]) == 3
    standardized = (x - np.array(data.mean)) / np.array(data.std)
    assert range_warning(normalization, standardized.astype("float32")) is None
    images = ek.data.from_arrays(np.zeros((8, 4, 4), "uint8"), np.arange(8) % 2, np.zeros((8, 4, 4), "uint8"),
                                 np.arange(8) % 2)  # fmt: skip
    assert _normalization(images)["kind"] == "image" and _normalization(images)["pixel_scale"] == 1 / 255


class TwoHeads(nn.Module):
    """A detector's shape: boxes and scores from one body."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.boxes, self.scores = nn.Linear(3, 8), nn.Linear(8, 4), nn.Linear(8, 2)

    def forward(self, x):
        hidden = torch.relu(self.body(x))
        return self.boxes(hidden), self.scores(hidden)


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["to_onnx", "to_tflite"])
def test_a_forward_with_several_outputs_is_never_shipped_as_one_silently(writer, tmp_path):
    artifact = getattr(ek.export, writer)(TwoHeads(), torch.randn(2, 3), tmp_path / f"m.{writer[3:]}")
    assert [o["model_output"] for o in artifact.manifest["outputs"]] == ["output_0", "output_1"]  # both kept


class Constant(nn.Module):
    """A scorer that learned only the base rate: its outputs move with the input, its answer never does."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        with torch.no_grad():
            self.linear.weight.copy_(0.01 * torch.randn(2, 3, generator=torch.Generator().manual_seed(0)))
            self.linear.bias.copy_(torch.tensor([5.0, 0.0]))

    def forward(self, x):
        return self.linear(x)


def test_a_majority_class_answer_is_not_reported_as_skill(columns, tmp_path, capsys):
    x, y = columns
    data = ek.data.from_arrays(x, y, x, y, batch_size=64, labels=["legit", "fraud"])
    skilled = nn.Linear(3, 2)
    mean, std = data.mean[1], data.std[1]
    with torch.no_grad():  # fraud is ratio > 0.9: on standardized inputs, logit gap 10 * (ratio - 0.9)
        skilled.weight.copy_(torch.tensor([[0.0, 0.0, 0.0], [0.0, 10 * std, 0.0]]))
        skilled.bias.copy_(torch.tensor([0.0, 10 * (mean - 0.9)]))
    result = ek.Pipeline(Constant(), skilled, data, [ek.Train(epochs=0)], out_dir=tmp_path / "run", quiet=True,
                         device="cpu").run()  # fmt: skip
    teacher, student = result.report["ledger"][0], result.report["ledger"][1]
    assert teacher["test_accuracy"] == pytest.approx(1 - y.mean())  # the base rate, reported as it is...
    assert "finds no test sample of any class but 'legit' (recall 0 for 'fraud')" in teacher["notes"]  # ...and named
    assert teacher["test_metrics"]["macro_f1"] < 0.5 and teacher["test_metrics"]["per_class_recall"] == [1.0, 0.0]
    assert student["test_metrics"]["macro_f1"] > 0.9 and "finds no test sample" not in student["notes"]
    assert 0 <= student["test_metrics"]["pr_auc"] <= 1


@pytest.mark.slow
def test_the_files_rows_carry_the_metrics_measured_on_the_files(columns, tmp_path):
    x, y = columns
    data = ek.data.from_arrays(x, y, x, y, batch_size=64)
    result = ek.Pipeline(Constant(), Constant(), data, [ek.Train(epochs=0)], out_dir=tmp_path / "run", quiet=True,
                         device="cpu", export=["onnx", "tflite"]).run()  # fmt: skip
    for fmt in ("onnx", "tflite"):
        row = next(r for r in result.report["ledger"] if r["stage"] == fmt)
        assert row["test_metrics"]["per_class_recall"] == [1.0, 0.0] and row["test_metrics"]["macro_f1"] < 0.5
        assert "finds no test sample of any class but '0'" in row["notes"]
