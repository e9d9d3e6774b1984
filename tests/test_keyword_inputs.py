"""Models called with keyword inputs (token ids + attention mask, or pixel_values) through every stage."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from int8_fixtures import ptq
from keyword_models import CLASSES, LENGTH, TokenClassifier, token_data
from torch import nn

import edgekd as ek
from edgekd import bench
from edgekd.errors import DataError
from edgekd.formats.runner import open_runner
from edgekd.inputs import Signature, split_batch
from edgekd.models.cost import count_macs
from edgekd.targets import load_target

ONES = np.ones((8, 4))


@pytest.fixture(scope="module")
def tokens() -> ek.data.DataBundle:
    return token_data()


@pytest.fixture(scope="module")
def token_teacher(tokens) -> nn.Module:
    torch.manual_seed(0)
    teacher = TokenClassifier(64)
    ek.Trainer(ek.TrainConfig(epochs=4, lr=1e-2), quiet=True).fit(teacher, tokens)
    return teacher.eval()


def test_named_arrays_keep_token_ids_as_integers_and_describe_every_input(tokens):
    x, y, index = split_batch(next(iter(tokens.train)))
    assert set(x) == {"input_ids", "attention_mask"} and x["input_ids"].dtype == torch.int64 and index is not None
    assert tokens.signature.keyword and tokens.signature.names == ["input_ids", "attention_mask"]
    described = tokens.describe()["inputs"]
    assert described[0] == {"name": "input_ids", "shape": ["batch", LENGTH], "dtype": "int64"}
    zeros = tokens.signature.zeros(3)
    assert zeros["attention_mask"].shape == (3, LENGTH) and zeros["input_ids"].dtype == torch.int64
    assert count_macs(TokenClassifier(32), tokens.signature) > 0


def test_hugging_face_style_batches_carry_their_labels_among_the_inputs():
    ids, labels = torch.ones(4, LENGTH, dtype=torch.long), torch.tensor([0, 1, 2, 0])
    x, y, index = split_batch({"input_ids": ids, "attention_mask": ids, "labels": labels})
    assert set(x) == {"input_ids", "attention_mask"} and torch.equal(y, labels) and index is None
    model = TokenClassifier(8).eval()
    batches = [{"input_ids": ids, "attention_mask": ids, "labels": labels}]
    assert 0.0 <= ek.evaluate(model, batches) <= 1.0
    with pytest.raises(ValueError, match="needs a 'labels' entry; it has input_ids"):
        split_batch({"input_ids": ids})


@pytest.mark.parametrize(
    ("train", "test", "message"),
    [
        (
            {"input_ids": np.ones((8, 4))},
            {"ids": np.ones((8, 4))},
            r"\(input_ids\) and test inputs \(ids\)",
        ),
        ({"input_ids": np.ones(8)}, {"input_ids": np.ones(8)}, r"input 'input_ids': expected a batch"),
        ({"input_ids": np.array([["a"] * 4] * 8)}, {"input_ids": np.array([["a"] * 4] * 8)}, "neither integer"),
        ({"input_ids": np.ones((8, 4))}, {"input_ids": np.ones((8, 5))}, "train and test differ in shape"),
        (
            {"a": np.ones((8, 4)), "b": np.ones((7, 4))},
            {"a": np.ones((8, 4)), "b": np.ones((8, 4))},
            "differ in length",
        ),
    ],
)
def test_bad_named_arrays_are_named(train, test, message):
    with pytest.raises(DataError, match=message):
        ek.data.from_named_arrays(train, np.zeros(8), test, np.zeros(8))


@pytest.mark.slow
def test_a_token_model_goes_through_distill_prune_qat_and_both_exporters(tokens, token_teacher, tmp_path):
    torch.manual_seed(0)
    student = TokenClassifier(32)
    target = load_target("cpu")
    target.runs, target.min_s, target.warmup_runs, target.warmup_s, target.batch_sizes = 3, 0.0, 1, 0.0, [1]
    result = ek.Pipeline(
        teacher=token_teacher,
        student=student,
        data=tokens,
        stages=[ek.Distill(epochs=2, lr=1e-2), ek.Prune(ratio=0.3, epochs=1, lr=5e-3), ek.Quantize(epochs=1)],
        export=["onnx", "tflite"],
        targets=[target],
        out_dir=tmp_path / "run",
        quiet=True,
    ).run()
    rows = {row["stage"]: row for row in result.report["ledger"]}
    assert rows["prune"]["params"] < rows["distill"]["params"]
    for fmt, token_dtype in (("onnx", "int64"), ("tflite", "int32")):  # LiteRT has no int64 tensors by default
        manifest = json.loads(result.artifacts[fmt].with_name(f"model.{fmt}.json").read_text())
        assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask"]
        assert {i["dtype"] for i in manifest["inputs"]} == {token_dtype} and manifest["precision"] == "int8"
        assert manifest["model_inputs"]["keyword"] and manifest["normalization"] is None
        assert manifest["parity"]["passed"] and rows[fmt]["test_accuracy"] > 1.5 / CLASSES
    onnx_manifest = json.loads(result.artifacts["onnx"].with_name("model.onnx.json").read_text())
    assert onnx_manifest["inputs"][0]["shape"] == ["batch", LENGTH]
    measured = {r["artifact"]: r for r in result.report["bench"]["results"] if r["status"] == "ok"}
    assert set(measured) == {"model.onnx", "model.tflite", "model.pt2"}
    for name, fmt in (("model.onnx", "onnx"), ("model.tflite", "tflite")):
        assert measured[name]["accuracy"]["top1"] == pytest.approx(rows[fmt]["test_accuracy"])
        assert set(measured[name]["inputs"]) == {"input_ids", "attention_mask"}


@pytest.mark.slow
def test_a_runner_fed_the_wrong_inputs_names_what_it_needs(tokens, token_teacher, tmp_path):
    artifact = ek.export.to_onnx(token_teacher, ek.data.example_inputs(tokens.val), tmp_path / "fp32.onnx", data=tokens)
    runner = open_runner(artifact.path)
    assert [spec.name for spec in runner.inputs] == ["input_ids", "attention_mask"]
    ids = np.ones((2, LENGTH), np.int64)
    assert runner.run({"input_ids": ids, "attention_mask": ids}).shape == (2, CLASSES)
    with pytest.raises(ValueError, match=r"no array for the file's input 'input_ids' \(given: tokens\)"):
        runner.run({"tokens": ids})


@dataclass
class Output:
    logits: torch.Tensor


class PixelModel(nn.Module):
    """A Hugging Face style image classifier: ``forward(pixel_values)`` returning an object with ``.logits``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Linear(8, 4)

    def forward(self, pixel_values: torch.Tensor) -> Output:
        return Output(self.head(self.body(pixel_values).mean((-1, -2))))


@pytest.mark.slow
def test_pixel_values_given_by_name_export_and_benchmark(tiny_images, tmp_path):
    x, y = ek.data.first_samples(tiny_images.train)
    xt, yt = ek.data.first_samples(tiny_images.test)
    data = ek.data.from_named_arrays({"pixel_values": x.numpy()}, y.numpy(), {"pixel_values": xt.numpy()}, yt.numpy())
    torch.manual_seed(0)
    model = PixelModel()
    ek.Trainer(ek.TrainConfig(epochs=2, lr=1e-2), quiet=True).fit(model, data)
    assert Signature.of(ek.data.example_inputs(data.val)).names == ["pixel_values"]
    artifact = ek.export.to_tflite(ptq(model, data), ek.data.example_inputs(data.val), tmp_path / "m.tflite", data=data)
    assert artifact.parity.passed and artifact.manifest["inputs"][0]["name"] == "pixel_values"
    report = bench.run([artifact.path], ["cpu"], data=data, quiet=True, runs=2, min_s=0.0)
    (row,) = [r for r in report["results"] if r["status"] == "ok"][:1]
    assert row["accuracy"]["top1"] == pytest.approx(artifact.test_accuracy)


def test_a_bundle_of_hugging_face_style_batches_needs_no_declared_signature(tokens):
    batches = []
    for x, y, _ in tokens.train:
        batches.append({**x, "labels": y})
    bundle = ek.data.DataBundle(
        "hf-batches", batches, batches[:4], batches[:4], (LENGTH,), CLASSES, ["a", "b", "c"], [], []
    )
    assert bundle.signature.keyword and bundle.signature.names == ["input_ids", "attention_mask"]
    torch.manual_seed(0)
    model = TokenClassifier(16)
    ek.Trainer(ek.TrainConfig(epochs=2, lr=1e-2), quiet=True).fit(model, bundle)
    assert ek.evaluate(model, bundle.test) > 1.5 / CLASSES and count_macs(model, bundle.signature) > 0
