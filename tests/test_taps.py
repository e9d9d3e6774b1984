"""Forward-hook taps, adapters built by a dry forward pass, and the errors for bad tap names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import edgekd as ek
from edgekd.distill import DistillObjective, FeatureTaps, build_adapters
from edgekd.errors import ConfigError


def test_taps_record_named_module_outputs():
    model = ek.models.get("mnist-mobilenet")
    taps = FeatureTaps(model, ["blocks.1", "head"], "student")
    model(torch.zeros(2, 1, 28, 28))
    features = taps.pop()
    assert features["blocks.1"].shape == (2, 24, 7, 7)
    assert features["head"].shape == (2, 128, 4, 4)
    assert taps.pop() == {}
    taps.remove()
    model(torch.zeros(1, 1, 28, 28))
    assert taps.pop() == {}


def test_adapters_match_channels_and_resolution():
    student, teacher = ek.models.get("mnist-mobilenet"), ek.models.get("mnist-resnet")
    sample = torch.zeros(2, 1, 28, 28)
    adapters = build_adapters(student, teacher, {"blocks.3": "layer2", "blocks.1": "layer3"}, sample)
    conv = adapters["blocks__3"].project
    assert isinstance(conv, nn.Conv2d) and (conv.in_channels, conv.out_channels) == (48, 64)
    out = adapters["blocks__1"](torch.zeros(2, 24, 7, 7))
    assert out.shape == (2, 128, 4, 4)  # teacher layer3's channels, at its (smaller) 4x4 resolution
    assert adapters["blocks__3"](torch.zeros(2, 48, 4, 4)).shape == (2, 64, 4, 4)
    teacher_map = torch.arange(49.0).reshape(1, 1, 7, 7).expand(2, 64, 7, 7)
    pooled = adapters["blocks__3"].match_teacher(teacher_map)  # teacher layer2 is 7x7: pooled to 4x4
    assert pooled.shape == (2, 64, 4, 4) and pooled[0, 0, 0, 0] == teacher_map[0, 0, :2, :2].mean()


def test_linear_adapter_for_flat_features_and_identity_when_equal():
    student, teacher = ek.models.get("hinton-student"), ek.models.get("hinton-teacher")
    adapters = build_adapters(student, teacher, {"features": "features"}, torch.zeros(2, 1, 28, 28))
    assert isinstance(adapters["features"].project, nn.Linear)
    same = build_adapters(teacher, teacher, {"features": "features"}, torch.zeros(2, 1, 28, 28))
    assert isinstance(same["features"].project, nn.Identity)


def test_unknown_tap_lists_nearest_valid_names():
    model = ek.models.get("mnist-mobilenet")
    with pytest.raises(ConfigError) as info:
        FeatureTaps(model, ["block.3"], "student")
    message = str(info.value)
    assert "student module 'block.3' does not exist" in message
    assert "blocks.3" in message


def test_feature_objective_trains_adapters_with_the_student():
    student, teacher = ek.models.get("mnist-mobilenet"), ek.models.get("mnist-resnet")
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    objective = DistillObjective([teacher], student, x[:2], features={"blocks.3": "layer2"})
    loss, logits = objective(student, x, y, None)
    loss.backward()
    adapter = objective.extra_modules["blocks__3"].project
    assert adapter.weight.grad is not None and adapter.weight.grad.abs().sum() > 0
    assert student.blocks[3].body[0][0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
    objective.close()
    assert not student.blocks[3]._forward_hooks


def test_cached_teacher_outputs_give_the_same_loss(tiny_images):
    from edgekd.distill.teacher_cache import TeacherCache

    teacher = nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.ReLU(), nn.Linear(16, 4))
    student = nn.Sequential(nn.Flatten(), nn.Linear(144, 4))
    x, y, index = next(iter(tiny_images.train))
    cache = TeacherCache(tiny_images.train.dataset_size)
    objective = DistillObjective([teacher], student, x[:2], features={"1": "1"}, feature_loss="cosine", cache=cache)
    first, _ = objective(student, x, y, index)
    assert cache.lookup(index) is not None
    with torch.no_grad():
        teacher[1].weight.add_(1.0)  # a changed teacher would change the loss unless the cache is used
    second, _ = objective(student, x, y, index)
    assert second.item() == pytest.approx(first.item())


def test_cache_turns_itself_off_above_its_memory_limit():
    from edgekd.distill.teacher_cache import TeacherCache

    cache = TeacherCache(dataset_size=1000, limit_bytes=1000)
    cache.put(torch.arange(4), {"logits/0": torch.zeros(4, 10)})
    assert not cache.enabled and cache.lookup(torch.arange(4)) is None
