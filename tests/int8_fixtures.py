"""A small trained CNN and its INT8 forms, shared by the quantize and export tests (built once)."""

from __future__ import annotations

import torch
from torch import nn

import edgekd as ek


class SmallNet(nn.Module):
    """conv-bn-relu6, a depthwise conv with a residual add, pooling and a linear head: the op mix of
    a mobile CNN at toy size."""

    def __init__(self, width: int = 16, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU6())
        self.depthwise = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.project = nn.Sequential(nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.project(self.depthwise(x))
        return self.head(torch.flatten(self.pool(x), 1))


def trained_small_net(data: ek.data.DataBundle, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = SmallNet()
    ek.Trainer(ek.TrainConfig(epochs=3, lr=1e-2), quiet=True).fit(model, data)
    return model.eval()


def quantize_run(teacher: nn.Module, data: ek.data.DataBundle, out_dir, stage, **pipeline_options):
    """A two-epoch student through one Quantize stage in a Pipeline (and whatever options are given)."""
    student = SmallNet()
    ek.Trainer(ek.TrainConfig(epochs=2, lr=1e-2), quiet=True).fit(student, data)
    pipe = ek.Pipeline(teacher, student, data, [stage], out_dir=out_dir, quiet=True, **pipeline_options)
    return pipe.run()


def example_batch(data: ek.data.DataBundle):
    return ek.data.example_inputs(data.val)


def ptq(model: nn.Module, data: ek.data.DataBundle, exclude: list[str] | None = None, weight_range: str = "auto"):
    from edgekd.quantize import QuantizationScheme, calibrate, convert, prepare

    example = example_batch(data)
    observed = prepare(model, example, qat=False, exclude=exclude or [], weight_range=weight_range)
    calibrate(observed, data.train, 8, torch.device("cpu"))
    return convert(observed, example, QuantizationScheme("ptq", exclude or []))
