"""The conformance matrix: each family users bring goes distill -> prune -> QAT -> ONNX + TFLite (+ ExecuTorch
where its extra is installed).

Tiny configurations, built from code or configs (no download), on 4-class 28x28 images (the class
sets a bright quadrant and the overall brightness). Both files
must pass their parity gate (``publish`` refuses a file that does not), so a family that converts
but computes something else than its PyTorch INT8 graph fails here.
"""

from __future__ import annotations

import pytest
import torch
from edge_families import MobileNetV3Block
from quadrants import quadrant_images
from torch import nn

import edgekd as ek
from edgekd.formats.executorch.runtime import available as executorch_available

pytestmark = pytest.mark.slow  # every case converts a real graph


@pytest.fixture(scope="module")
def quadrants28() -> ek.data.DataBundle:
    return quadrant_images(28, 384, 160, seed=1, global_cue=0.4, name="quadrants28")


@pytest.fixture(scope="module")
def teacher(quadrants28) -> nn.Module:
    torch.manual_seed(0)
    model = ek.models.get("mnist-resnet", num_classes=4, width=8)
    ek.Trainer(ek.TrainConfig(epochs=2, lr=1e-2), quiet=True).fit(model, quadrants28)
    return model.eval()


def _hf_mobilenet_v2():
    transformers = pytest.importorskip("transformers")
    config = transformers.MobileNetV2Config(
        num_channels=1, image_size=28, depth_multiplier=0.35, num_labels=4, min_depth=4
    )
    return transformers.MobileNetV2ForImageClassification(config)


def _hf_resnet():
    transformers = pytest.importorskip("transformers")
    config = transformers.ResNetConfig(
        num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=4
    )
    return transformers.ResNetForImageClassification(config)


def _hf_vit():
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=28, patch_size=7, num_channels=1, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_labels=4,
    )  # fmt: skip
    return transformers.ViTForImageClassification(config)


def _efficientnet_lite():
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    return efficientnet.EfficientNet.from_name(
        "efficientnet-lite0", in_channels=1, num_classes=4, width_coefficient=0.25, depth_coefficient=0.3,
        image_size=28, fix_head_stem=False,
    )  # fmt: skip


FAMILIES = {
    "reference mobilenet": lambda: ek.models.get("mnist-mobilenet", num_classes=4, head=32),
    "reference resnet": lambda: ek.models.get("mnist-resnet", num_classes=4, width=8),
    "reference vit": lambda: ek.models.get("mnist-vit", num_classes=4, dim=32, depth=1, num_heads=4),
    "hugging face mobilenet v2": _hf_mobilenet_v2,
    "hugging face resnet": _hf_resnet,
    "hugging face vit": _hf_vit,
    "efficientnet-lite": _efficientnet_lite,
    "mobilenet v3 block": lambda: MobileNetV3Block(16),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_goes_through_the_whole_chain_with_files_that_agree(family, quadrants28, teacher, tmp_path):
    torch.manual_seed(0)
    student = FAMILIES[family]()
    stages = [ek.Distill(epochs=2, lr=1e-2), ek.Prune(ratio=0.3, epochs=1, lr=5e-3), ek.Quantize(epochs=1)]
    formats = ["onnx", "tflite", *(["executorch"] if executorch_available() else [])]
    result = ek.Pipeline(teacher, student, quadrants28, stages, out_dir=tmp_path / "run", export=formats,
                         quiet=True, device="cpu").run()  # fmt: skip
    ledger = {row["stage"]: row for row in result.report["ledger"]}
    assert ledger["prune"]["params"] < ledger["distill"]["params"]  # channels really went
    for fmt in formats:
        parity = ledger[fmt]["details"]["parity"]
        assert ledger[fmt]["details"]["precision"] == "int8" and parity["passed"], parity
        assert ledger[fmt]["test_accuracy"] > 0.5, f"{family} {fmt}: {ledger[fmt]['notes']}"
