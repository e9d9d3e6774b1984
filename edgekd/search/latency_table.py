"""Per-layer latency, measured once per layer shape and cached per target, format and machine.

NetAdapt's lookup table: each convolution or linear layer of a candidate model, at its channel counts
and input size, is exported alone to the shipped format and timed in that format's runtime with the
target's thread count; a model's table latency is the sum over its layers. The sum leaves out what
sits between layers (activations, pooling, quantize steps) and the runtime's fixed cost per call, so
the search scales it by the ratio of a whole-model measurement to the table sum, refitted on every
file it measures; the table ranks candidates, the whole-model measurements decide.

Exporting one layer to TFLite takes about a second, and a search asks for hundreds of channel counts.
Within a family (same kind, kernel, stride, padding, grouping and input size: only the channel counts
differ) a layer's time follows its multiply-accumulates, so a shape whose MACs lie between two measured
members of its family is interpolated between them; a shape outside the measured range is measured.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import tempfile
from pathlib import Path

import torch
from torch import nn

from edgekd.errors import ConfigError
from edgekd.inputs import ModelInputs, forward, rows
from edgekd.search.measurement import FileTimer
from edgekd.targets import Target
from edgekd.train import distributed
from edgekd.utils.environment import cpu_model
from edgekd.utils.fileio import atomic_write_text
from edgekd.utils.modes import inference

TABLE_VERSION = 1
TIMED_RUNS, TIMED_SECONDS = 30, 0.2
INTERPOLATION_SPAN = 4.0  # neighbours further apart than this ratio of MACs are too far to interpolate between


def layer_shapes(model: nn.Module, example: ModelInputs) -> list[dict]:
    """Each Conv2d / Linear layer the model runs on one sample of ``example``: its shape and input size."""
    found: list[dict] = []

    def record(module: nn.Module, args: tuple) -> None:
        if isinstance(module, nn.Conv2d):
            found.append({
                "kind": "conv2d", "in": module.in_channels, "out": module.out_channels,
                "kernel": list(module.kernel_size), "stride": list(module.stride), "padding": list(module.padding)
                if not isinstance(module.padding, str) else module.padding, "dilation": list(module.dilation),
                "groups": module.groups, "bias": module.bias is not None, "input": list(args[0].shape[1:]),
            })  # fmt: skip
        elif isinstance(module, nn.Linear):
            found.append({"kind": "linear", "in": module.in_features, "out": module.out_features,
                          "bias": module.bias is not None, "input": list(args[0].shape[1:])})  # fmt: skip

    handles = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with inference(model):
            forward(model, rows(example, slice(0, 1)))
    finally:
        for handle in handles:
            handle.remove()
    return found


def _family(shape: dict) -> str:
    """What a layer's time depends on besides its channel counts (depthwise layers are their own family)."""
    depthwise = shape.get("groups", 1) > 1 and shape["groups"] == shape["in"]
    rest = {k: v for k, v in shape.items() if k not in ("in", "out", "groups")}
    # the input's positions, not its channels (last for a linear layer, first for a convolution)
    rest["input"] = rest["input"][:-1] if shape["kind"] == "linear" else rest["input"][1:]
    return json.dumps({**rest, "depthwise": depthwise, "grouped": shape.get("groups", 1) > 1}, sort_keys=True)


def layer_macs(shape: dict) -> float:
    """Multiply-accumulates of one sample through the layer (output positions x weights per output)."""
    if shape["kind"] == "linear":
        positions = math.prod(shape["input"][:-1]) if len(shape["input"]) > 1 else 1
        return positions * shape["in"] * shape["out"]
    height, width = shape["input"][1:]
    kernel, stride, dilation = shape["kernel"], shape["stride"], shape["dilation"]
    padding = shape["padding"] if not isinstance(shape["padding"], str) else [k // 2 for k in kernel]
    out_h = (height + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    return out_h * out_w * shape["out"] * (shape["in"] // shape["groups"]) * kernel[0] * kernel[1]


def _layer(shape: dict) -> nn.Module:
    if shape["kind"] == "linear":
        return nn.Linear(shape["in"], shape["out"], bias=shape["bias"])
    return nn.Conv2d(shape["in"], shape["out"], tuple(shape["kernel"]), tuple(shape["stride"]),
                     shape["padding"] if isinstance(shape["padding"], str) else tuple(shape["padding"]),
                     tuple(shape["dilation"]), shape["groups"], bias=shape["bias"])  # fmt: skip


class LatencyTable:
    """Milliseconds per layer shape on one target in one format, kept in ``folder`` across runs."""

    def __init__(self, target: Target, fmt: str, folder: Path, time_file: FileTimer | None = None) -> None:
        """``time_file`` times a one-layer file in its runtime (:class:`~edgekd.search.measurement.Measurement`);
        without it, shapes the table does not hold cannot be measured."""
        self.target, self.fmt, self.time_file = target, fmt, time_file or _no_timer
        machine = hashlib.sha256(cpu_model().encode()).hexdigest()[:8]
        self.path = folder / f"{fmt}-{target.name}-{target.thread_count}t-{machine}-v{TABLE_VERSION}.json"
        self.entries: dict[str, float] = self._read()
        self.families: dict[str, list[tuple[float, float]]] = {}  # family -> (MACs, ms) of its measured shapes
        for key, ms in self.entries.items():
            self._index(json.loads(key), ms)

    def _index(self, shape: dict, ms: float) -> None:
        self.families.setdefault(_family(shape), []).append((layer_macs(shape), ms))

    def _read(self) -> dict[str, float]:
        try:
            return {str(k): float(v) for k, v in json.loads(self.path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def latency(self, shape: dict) -> float:
        """The layer's milliseconds: measured on first use, or interpolated within its family."""
        key = json.dumps(shape, sort_keys=True)
        if key not in self.entries and (between := self._interpolated(shape)) is not None:
            return between
        if key not in self.entries:  # under torchrun rank 0 times the layer and keeps the table file
            self.entries[key] = distributed.agree(self._measure(shape) if distributed.is_main() else None)
            self._index(shape, self.entries[key])
            if distributed.is_main():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(self.path, json.dumps(self.entries, indent=0, sort_keys=True))
        return self.entries[key]

    def _interpolated(self, shape: dict) -> float | None:
        """Linear in MACs between the nearest measured family members below and above, if close enough."""
        macs = layer_macs(shape)
        below, above = None, None
        for point in self.families.get(_family(shape), []):
            if point[0] <= macs and (below is None or point[0] > below[0]):
                below = point
            if point[0] >= macs and (above is None or point[0] < above[0]):
                above = point
        if below is None or above is None or above[0] > INTERPOLATION_SPAN * max(below[0], 1):
            return None
        if above[0] == below[0]:
            return below[1]
        return below[1] + (above[1] - below[1]) * (macs - below[0]) / (above[0] - below[0])

    def total(self, model: nn.Module, example: ModelInputs) -> float:
        return sum(self.latency(shape) for shape in layer_shapes(model, example))

    def _measure(self, shape: dict) -> float:
        layer = _layer(shape).eval()
        x = torch.randn(1, *shape["input"])
        with tempfile.TemporaryDirectory(prefix="edgekd-layer-") as scratch:
            path = Path(scratch) / f"layer.{self.fmt}"
            _export_alone(layer, x, path, self.fmt)
            times = self.time_file(path, x.numpy(), self.target.thread_count, TIMED_RUNS, TIMED_SECONDS)
        return statistics.median(times)


def _export_alone(layer: nn.Module, x: torch.Tensor, path: Path, fmt: str) -> None:
    """One FP32 layer as a file, without parity gate or manifest: a timing fixture, never shipped."""
    from edgekd.utils.quiet import native_stderr_captured, quiet_import

    with torch.no_grad(), native_stderr_captured(replay=False):
        if fmt == "onnx":
            torch.onnx.export(layer, (x,), str(path), dynamo=False, input_names=["input"])
        else:
            quiet_import("litert_torch").convert(layer, (x,)).export(str(path))


def _no_timer(path: Path, *_) -> list[float]:
    raise ConfigError(f"{path.name}: this latency table was opened without a timer; pass time_file")
