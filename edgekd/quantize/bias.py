"""Biases of int8 convs and linears put on the int32 grid that integer kernels add them on.

A converted PT2E graph adds each bias in float, but TFLite and ONNX Runtime (QLinearConv, QGemm) add
``round(bias / (input_scale * weight_scale))`` in int32. The difference is at most half an
accumulator step per channel, yet where a channel's weight scale is large next to its output scale
(folded BatchNorm with a small variance, common in depthwise convs) it flips output steps, and a deep
network amplifies the flips until the PyTorch INT8 graph and the files disagree on the top class.
Snapped, the PyTorch INT8 graph computes what the files compute, so the parity gate compares like
with like and the ledger's INT8 accuracy is what the files deliver.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.fx import GraphModule, Node

_DEQUANTIZE_TENSOR = torch.ops.quantized_decomposed.dequantize_per_tensor.default
_DEQUANTIZE_CHANNEL = torch.ops.quantized_decomposed.dequantize_per_channel.default
_WEIGHTED = {
    torch.ops.aten.conv1d.default,
    torch.ops.aten.conv2d.default,
    torch.ops.aten.conv3d.default,
    torch.ops.aten.linear.default,
}
_INT32 = torch.iinfo(torch.int32)


@torch.no_grad()
def snap_biases_to_int32(graph: GraphModule) -> int:
    """Round each float bias of an int8 conv / linear in ``graph`` to its int32 grid; returns how many."""
    snapped = 0
    for node in graph.graph.nodes:
        step = accumulator_step(graph, node)
        if step is None:
            continue
        bias = graph_attribute(graph, node.args[2].target)
        levels = torch.round(bias.double().reshape(-1) / step).clamp(_INT32.min, _INT32.max)
        bias.copy_((levels * step).reshape(bias.shape).to(bias.dtype))
        snapped += 1
    return snapped


def accumulator_step(graph: GraphModule, node: Node) -> torch.Tensor | None:
    """input scale x weight scale(s) for a conv / linear with int8 input, int8 weights and a stored
    float bias; None for anything else (a float layer keeps its bias as it is)."""
    if node.op != "call_function" or node.target not in _WEIGHTED or len(node.args) < 3:
        return None
    source, weight, bias = node.args[:3]
    if not all(isinstance(n, Node) for n in (source, weight, bias)) or bias.op != "get_attr":
        return None
    if source.target != _DEQUANTIZE_TENSOR or weight.target not in (_DEQUANTIZE_TENSOR, _DEQUANTIZE_CHANNEL):
        return None
    weight_scale = weight.args[1]
    if isinstance(weight_scale, Node):
        weight_scale = graph_attribute(graph, weight_scale.target)
    step = float(source.args[1]) * torch.as_tensor(weight_scale, dtype=torch.float64).reshape(-1)
    bias_size = graph_attribute(graph, bias.target).numel()
    if step.numel() not in (1, bias_size) or not bool((step > 0).all()):
        return None
    return step


def graph_attribute(module: nn.Module, dotted: str):
    for part in dotted.split("."):
        module = getattr(module, part)
    return module
