"""INT8 of the edge families users bring: TF-style padded convs, squeeze-excite with hardswish, Hugging Face."""

from __future__ import annotations

import pytest
import torch
from edge_families import MobileNetV3Block, SamePadded
from int8_fixtures import example_batch, ptq
from torch import nn

import edgekd as ek
from edgekd.export import to_onnx, to_tflite

quantize_op = torch.ops.quantized_decomposed.quantize_per_tensor.default
dequantize_op = torch.ops.quantized_decomposed.dequantize_per_tensor.default


pytestmark = pytest.mark.slow  # every case converts a real graph


def _trained(model: nn.Module, data) -> nn.Module:
    torch.manual_seed(0)
    ek.Trainer(ek.TrainConfig(epochs=3, lr=1e-2), quiet=True).fit(model, data)
    return model.eval()


def _both_files_pass(quantized, data, folder) -> None:
    example = example_batch(data)
    for artifact in (to_onnx(quantized, example, folder / "m.onnx", data=data),
                     to_tflite(quantized, example, folder / "m.tflite", data=data)):  # fmt: skip
        assert artifact.parity.passed and artifact.parity.top1_agreement >= 0.99, artifact.parity.summary()


def test_a_zero_pad_shares_its_inputs_quantization(tiny_images, tmp_path):
    torch.manual_seed(0)
    quantized = ptq(_trained(SamePadded(), tiny_images), tiny_images)
    pads = [n for n in quantized.program.graph.nodes if n.target == torch.ops.aten.pad.default]
    assert len(pads) == 2
    inner = pads[1]  # the first pads the float input; the second sits between two int8 tensors
    before = inner.args[0]
    after = [user for user in inner.users if user.target == quantize_op]
    assert before.target == dequantize_op and after
    assert all(q.args[1:3] == before.args[1:3] for q in after)  # same scale and zero point: no requantization
    _both_files_pass(quantized, tiny_images, tmp_path)


def test_squeeze_excite_and_hardswish_export_in_both_formats(tiny_images, tmp_path):
    quantized = ptq(_trained(MobileNetV3Block(), tiny_images), tiny_images)
    muls = [n for n in quantized.program.graph.nodes if n.target == torch.ops.aten.mul.Tensor]
    assert muls and all(any(u.target == quantize_op for u in m.users) for m in muls)  # the SE product is int8
    _both_files_pass(quantized, tiny_images, tmp_path)


def test_a_hugging_face_classifier_as_it_comes(tiny_images, tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.ResNetConfig(
        num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=4
    )
    teacher = _trained(transformers.ResNetForImageClassification(config), tiny_images)
    student = transformers.ResNetForImageClassification(config)
    stages = [ek.Distill(epochs=1, lr=1e-2, features={"resnet.encoder.stages.0": "resnet.encoder.stages.0"}),
              ek.Quantize(epochs=0)]  # fmt: skip
    result = ek.Pipeline(teacher, student, tiny_images, stages, out_dir=tmp_path / "hf", export=["onnx", "tflite"],
                         quiet=True, device="cpu").run()  # fmt: skip
    ledger = {row["stage"]: row for row in result.report["ledger"]}
    assert ledger["onnx"]["test_accuracy"] > 0.5 and ledger["tflite"]["test_accuracy"] > 0.5
    assert type(teacher(torch.zeros(1, 1, 12, 12))).__name__ == "ImageClassifierOutputWithNoAttention"
