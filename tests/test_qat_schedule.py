"""The QAT schedule: after the named epochs BatchNorm keeps its statistics and the observers their scales,
while the weights go on learning."""

from __future__ import annotations

import pytest
import torch
from int8_fixtures import example_batch, quantize_run

import edgekd as ek
from edgekd.errors import ConfigError
from edgekd.quantize import prepare


def _statistics(observed) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in observed.graph.named_buffers() if "running_mean" in name}


def _scales(observed) -> list[torch.Tensor]:
    return [m.scale.clone() for m in observed.graph.modules() if hasattr(m, "observer_enabled")]


def test_frozen_statistics_and_scales_stay_put_in_training_form_and_move_when_not(small_net, tiny_images):
    x = torch.cat([batch[0] for batch in tiny_images.train][:2]) * 3.0  # other statistics, a wider range
    moved = {}
    for frozen in (False, True):
        observed = prepare(small_net, example_batch(tiny_images), qat=True)
        observed.batchnorm_frozen = observed.observers_frozen = frozen
        observed.train()
        observed(x[:8])  # the observers take a first range
        statistics, scales = _statistics(observed), _scales(observed)
        assert statistics and scales
        observed(x)
        moved[frozen] = (
            any(not torch.equal(v, _statistics(observed)[k]) for k, v in statistics.items()),
            any(not torch.equal(a, b) for a, b in zip(scales, _scales(observed))),
        )
    assert moved == {False: (True, True), True: (False, False)}


@pytest.mark.parametrize(
    "options", [{"epochs": 2, "freeze_batchnorm_after": 2}, {"epochs": 3, "freeze_observers_after": 0}]
)
def test_a_freeze_that_would_change_nothing_is_one_line(options):
    key = next(k for k in options if k.startswith("freeze"))
    with pytest.raises(ConfigError, match=f"{key}: must be an epoch from 1 to epochs - 1"):
        ek.Quantize(**options)


@pytest.mark.slow
def test_the_quantize_stage_freezes_on_schedule_and_says_so(small_net, tiny_images, tmp_path):
    stage = ek.Quantize(epochs=3, freeze_batchnorm_after=1, freeze_observers_after=2)
    result = quantize_run(small_net, tiny_images, tmp_path / "run", stage, export=[])
    row = {r["stage"]: r for r in result.report["ledger"]}["quantize"]
    assert "BatchNorm frozen after epoch 1, observers frozen after epoch 2" in row["notes"]
    assert row["details"]["freeze_observers_after"] == 2 and row["test_accuracy"] > 0.8
