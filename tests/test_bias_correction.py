"""Bias correction: each int8 layer's bias takes the mean output shift its rounded weights cause, so a
post-training-quantized depthwise network stops drifting from its float model."""

from __future__ import annotations

import pytest
import torch
from int8_fixtures import SmallNet, example_batch
from torch import nn

import edgekd as ek
from edgekd.quantize import QuantizationScheme, calibrate, convert, prepare


class _Drifting(nn.Module):
    """A depthwise conv whose small taps all round the same way: a dominant centre sets each channel's
    weight scale and the eight small taps, a third of a step, round to zero. Their lost contribution does
    not average out over positive (post-ReLU) inputs: the layer's int8 output drifts by a fixed amount."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 4)
        with torch.no_grad():
            self.depthwise.weight.fill_(0.3 / 63)
            self.depthwise.weight[:, :, 1, 1] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.depthwise(self.stem(x))), 1))


def _drifting_net() -> nn.Module:
    torch.manual_seed(0)
    return _Drifting().eval()


def _ptq(model: nn.Module, data: ek.data.DataBundle, correct: bool):
    example = example_batch(data)
    observed = prepare(model, example, qat=False, weight_range="narrow")
    calibrate(observed, data.train, 8, torch.device("cpu"))
    return convert(observed, example, QuantizationScheme("ptq"), correct_on=data.train if correct else None)


def _mean_shift(model: nn.Module, quantized: nn.Module, data: ek.data.DataBundle) -> torch.Tensor:
    """The INT8 model's mean output minus the float model's, per logit, on the test images."""
    x = torch.cat([batch[0] for batch in data.test])
    with torch.no_grad():
        return (quantized(x) - model(x)).mean(0)


def test_corrected_biases_bring_the_int8_models_mean_output_back_to_the_float_models(tiny_images):
    model = _drifting_net()
    plain, corrected = _ptq(model, tiny_images, False), _ptq(model, tiny_images, True)
    assert plain.scheme.bias_corrected_layers == 0
    assert corrected.scheme.bias_corrected_layers == 3  # stem, depthwise, head
    before = _mean_shift(model, plain, tiny_images).abs().mean()
    after = _mean_shift(model, corrected, tiny_images).abs().mean()
    assert after < 0.5 * before, (float(before), float(after))


@pytest.mark.slow
def test_the_quantize_stage_corrects_biases_after_ptq_and_says_so_but_not_after_qat(tiny_images, tmp_path):
    from int8_fixtures import quantize_run

    teacher = SmallNet()
    ptq = quantize_run(teacher, tiny_images, tmp_path / "ptq", ek.Quantize(epochs=0), export=[])
    row = {r["stage"]: r for r in ptq.report["ledger"]}["quantize"]
    assert row["details"]["bias_corrected_layers"] >= 4 and "biases corrected in" in row["notes"]
    off = quantize_run(teacher, tiny_images, tmp_path / "off", ek.Quantize(epochs=0, bias_correction=False), export=[])
    assert "bias_corrected_layers" not in {r["stage"]: r for r in off.report["ledger"]}["quantize"]["details"]
