"""Reference models: lookup by name or import path, the student's MAC budget, the Hinton MLPs."""

from __future__ import annotations

import pytest
import torch

import edgekd as ek
from edgekd.errors import ConfigError
from edgekd.models.cost import count_macs, count_params


def test_student_has_at_least_ten_times_fewer_macs_than_teacher():
    teacher_macs = count_macs(ek.models.get("mnist-resnet"), (1, 28, 28))
    student_macs = count_macs(ek.models.get("mnist-mobilenet"), (1, 28, 28))
    assert teacher_macs >= 10 * student_macs


def test_the_students_width_multiplier_scales_every_layer_in_multiples_of_eight():
    base, wide = ek.models.get("mnist-mobilenet"), ek.models.get("mnist-mobilenet", width=2)
    widths = [m.out_channels for m in base.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in wide.modules() if isinstance(m, torch.nn.Conv2d)] == [2 * w for w in widths]
    narrow = [
        m.out_channels for m in ek.models.get("mnist-mobilenet", width=0.3).modules() if isinstance(m, torch.nn.Conv2d)
    ]
    assert all(w % 8 == 0 and w >= 8 for w in narrow) and wide(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    for bad in (0, -1, "2", True):
        with pytest.raises(ConfigError, match="mnist-mobilenet width"):
            ek.models.get("mnist-mobilenet", width=bad)


def test_hinton_mlps_have_the_papers_layer_sizes():
    teacher, student = ek.models.get("hinton-teacher"), ek.models.get("hinton-student")
    assert count_params(teacher) == 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10
    assert count_params(student) == 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10
    assert count_macs(student, (1, 28, 28)) == 784 * 800 + 800 * 800 + 800 * 10


@pytest.mark.parametrize("name", ["mnist-resnet", "mnist-mobilenet", "mnist-vit", "hinton-teacher", "hinton-student"])
def test_reference_models_map_mnist_to_ten_logits(name):
    assert ek.models.get(name)(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_models_by_import_path_and_unknown_names():
    model = ek.models.get("torch.nn:Identity")
    assert isinstance(model, torch.nn.Identity)
    with pytest.raises(ConfigError, match="did you mean 'mnist-resnet'"):
        ek.models.get("mnist-resnt")
    with pytest.raises(ConfigError, match="cannot import module"):
        ek.models.get("no_such_package.models:net")
