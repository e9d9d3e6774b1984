"""Empirical bias correction: the shift int8 weights give each output channel's mean, measured and removed.

Rounding a layer's weights to int8 changes what it computes by ``(W - W_int8) x``. Over a wide layer the
errors of many weights average out; over a depthwise conv's nine taps, scaled by a folded BatchNorm, they
do not, and each channel's output mean moves. The next layers read the moved means as signal, and a
depthwise network that is accurate in float can fall far after post-training quantization (Nagel et al.,
"Data-Free Quantization Through Weight Equalization and Bias Correction", 2019). The expected shift
``E[(W - W_int8) x]`` is measured on calibration batches, with each layer fed what the int8 graph feeds it,
and subtracted through the layer's float bias (which the files then add on the int32 grid).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.fx import GraphModule, Node

from edgekd.inputs import forward, split_batch, to_device
from edgekd.quantize.bias import accumulator_step, graph_attribute

_QUANTIZE = {
    torch.ops.quantized_decomposed.quantize_per_tensor.default,
    torch.ops.quantized_decomposed.quantize_per_channel.default,
}


class _ShiftMeter:
    """Stands in for a conv / linear op while the graph runs: computes the op as it is and adds up the
    output each channel would gain from the float weights, ``op(x, W - W_int8)``."""

    def __init__(self, op, float_weight: torch.Tensor, channel_axis: int) -> None:
        self.op, self.float_weight, self.channel_axis = op, float_weight, channel_axis
        self.total: torch.Tensor | None = None
        self.count = 0

    def __call__(self, x, weight, bias=None, *rest):
        shift = self.op(x, self.float_weight.to(weight.dtype) - weight, None, *rest).double()
        channels = shift.movedim(self.channel_axis, -1).reshape(-1, shift.shape[self.channel_axis])
        total = channels.sum(0)
        self.total = total if self.total is None else self.total + total
        self.count += len(channels)
        return self.op(x, weight, bias, *rest)

    def mean(self) -> torch.Tensor | None:
        return None if self.total is None or not self.count else self.total / self.count


def _measured(meter: _ShiftMeter):
    """The meter as a plain function: what an FX graph can call by name."""

    def measured_layer(*args):
        return meter(*args)

    return measured_layer


def _float_weight(graph: GraphModule, weight: Node) -> torch.Tensor | None:
    """The float tensor a dequantized weight was quantized from (``None`` if it is stored as int8 already)."""
    quantized = weight.args[0] if weight.args else None
    if not isinstance(quantized, Node) or quantized.target not in _QUANTIZE:
        return None
    source = quantized.args[0]
    if not isinstance(source, Node) or source.op != "get_attr":
        return None
    return graph_attribute(graph, source.target)


@torch.no_grad()
def correct_biases(graph: GraphModule, batches: Iterable, limit: int) -> int:
    """Move each int8 conv / linear's float bias by the mean output shift its int8 weights cause, measured
    on up to ``limit`` of ``batches`` run through ``graph`` (a converted PT2E graph, on the CPU); returns how
    many layers were corrected. Layers without a bias are left as they are."""
    meters: dict[Node, tuple[_ShiftMeter, object]] = {}
    for node in graph.graph.nodes:
        if accumulator_step(graph, node) is None:
            continue
        float_weight = _float_weight(graph, node.args[1])
        if float_weight is None:
            continue
        channel_axis = -1 if node.target == torch.ops.aten.linear.default else 1
        meter = _ShiftMeter(node.target, float_weight, channel_axis)
        meters[node] = (meter, node.target)
        node.target = _measured(meter)
    if not meters:
        return 0
    graph.recompile()
    try:
        for seen, batch in enumerate(batches):
            if seen >= limit:
                break
            forward(graph, to_device(split_batch(batch, labels=False)[0], "cpu"))
    finally:
        for node, (_, op) in meters.items():
            node.target = op
        graph.recompile()
    corrected = 0
    for node, (meter, _) in meters.items():
        shift = meter.mean()
        if shift is None:
            continue
        bias = graph_attribute(graph, node.args[2].target)
        bias.add_(shift.reshape(bias.shape).to(bias.dtype))
        corrected += 1
    return corrected
