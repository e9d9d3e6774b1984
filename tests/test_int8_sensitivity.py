"""Per-layer INT8 sensitivity and mixed precision to a budget: the layer INT8 hurts is named first, and
``max_drop`` keeps the fewest such layers in float."""

from __future__ import annotations

import pytest
import torch
from int8_fixtures import example_batch
from torch import nn

import edgekd as ek
from edgekd.quantize.sensitivity import layer_sensitivity, sqnr_db


class Outlier(nn.Module):
    """``mix`` reads an activation whose channel 0 is a thousand times the others: one per-tensor int8 scale
    leaves the other channels no levels, while ``mix`` weighs channel 0 down to the others' size."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.mix = nn.Conv2d(4, 4, 1)
        self.head = nn.Linear(4 * 144, 4)
        with torch.no_grad():
            self.stem.weight[0] *= 1000.0
            self.stem.bias[0] *= 1000.0
            self.mix.weight[:, 0] /= 1000.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.mix(torch.relu(self.stem(x))), 1))


def _trained(data) -> nn.Module:
    torch.manual_seed(0)
    model = Outlier()
    ek.Trainer(ek.TrainConfig(epochs=3, lr=3e-3), quiet=True).fit(model, data)
    return model.eval()


def test_sqnr_is_infinite_for_equal_outputs_and_falls_with_the_noise():
    x = torch.randn(64, 10)
    assert sqnr_db(x, x) == float("inf")
    assert sqnr_db(x, x + 0.01) > sqnr_db(x, x + 0.1) > 0


@pytest.mark.slow
def test_the_layer_reading_the_outlier_channel_is_named_first_and_max_drop_keeps_only_it_float(tiny_images, tmp_path):
    model = _trained(tiny_images)
    ranking = layer_sensitivity(model, tiny_images, example_batch(tiny_images))
    assert [r.layer for r in ranking][0] == "mix" and {r.layer for r in ranking} == {"stem", "mix", "head"}
    assert ranking[0].sqnr_db < ranking[1].sqnr_db - 10 and ranking[0].drop_points > 5
    result = ek.Pipeline(model, model, tiny_images, [ek.Quantize(epochs=0, max_drop=1.0)], out_dir=tmp_path / "run",
                         export=[], quiet=True, device="cpu").run()  # fmt: skip
    row = {r["stage"]: r for r in result.report["ledger"]}["quantize"]
    assert row["details"]["kept_float"] == ["mix"] and row["details"]["exclude"] == ["mix"]
    assert row["details"]["ptq_drop_points"]["with_kept_float"] <= 1.0 < row["details"]["ptq_drop_points"]["all_int8"]
    assert "most INT8-sensitive: mix" in row["notes"] and "kept mix in float" in row["notes"]
    assert [e["layer"] for e in row["details"]["sensitivity"]][0] == "mix"


def test_a_negative_budget_is_one_line():
    with pytest.raises(ek.errors.ConfigError, match="max_drop: must be >= 0 points"):
        ek.Quantize(max_drop=-1)
