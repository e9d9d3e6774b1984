"""Folding the weight quantize ops of an exported INT8 graph into int8 initializers.

torch's ONNX exporter writes a PT2E weight as ``float initializer -> QuantizeLinear [-> Clip] ->
DequantizeLinear``. ONNX Runtime wants the int8 tensor itself in front of the DequantizeLinear: that
is the QDQ form its graph optimizer fuses into QLinearConv / QGemm, and it stores a quarter of the
bytes. The values are computed exactly as the PyTorch graph does (round half to even, then clamp),
so the learned scales are kept bit for bit.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

_INT_TYPES = {onnx.TensorProto.INT8: np.int8, onnx.TensorProto.UINT8: np.uint8}


def fold_weight_quantization(model: onnx.ModelProto) -> int:
    """Replace each constant weight's QuantizeLinear (and Clip) by its int8 result; returns the count."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    constants = {**{n: numpy_helper.to_array(i) for n, i in initializers.items()}, **_constant_nodes(graph)}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    producers = {out: node for node in graph.node for out in node.output}
    removed: list[onnx.NodeProto] = []
    folded = 0
    for node in list(graph.node):
        if node.op_type != "DequantizeLinear":
            continue
        chain = _quantize_chain(node.input[0], producers, constants, consumers)
        if chain is None:
            continue
        quantize, clip = chain
        values = _quantized_values(quantize, clip, constants, _axis(quantize))
        name = f"{quantize.input[0]}_int8"
        graph.initializer.append(numpy_helper.from_array(values, name))
        node.input[0] = name
        removed.extend(n for n in (quantize, clip) if n is not None)
        folded += 1
    for node in removed:
        graph.node.remove(node)
    _drop_unused_initializers(graph)
    return folded


def _quantize_chain(name, producers, constants, consumers):
    """(QuantizeLinear, Clip or None) when ``name`` is a quantized constant used only here."""
    node = producers.get(name)
    clip = None
    if node is not None and node.op_type == "Clip":
        if consumers.get(name, 0) != 1 or any(i and i not in constants for i in node.input[1:]):
            return None
        clip, name = node, node.input[0]
        node = producers.get(name)
    if node is None or node.op_type != "QuantizeLinear" or consumers.get(name, 0) != 1:
        return None
    if any(i not in constants for i in node.input if i):
        return None
    return node, clip


def _quantized_values(quantize, clip, constants, axis: int) -> np.ndarray:
    weight = constants[quantize.input[0]].astype(np.float64)
    scale = constants[quantize.input[1]].astype(np.float64)
    zero_point = constants[quantize.input[2]]
    dtype = zero_point.dtype.type
    info = np.iinfo(dtype)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * weight.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zero_point.astype(np.int64).reshape(shape)
    else:
        zp = zero_point.astype(np.int64)
    values = np.clip(np.rint(weight / scale) + zp, info.min, info.max)
    if clip is not None:
        low = constants[clip.input[1]] if len(clip.input) > 1 and clip.input[1] else info.min
        high = constants[clip.input[2]] if len(clip.input) > 2 and clip.input[2] else info.max
        values = np.clip(values, low, high)
    return values.astype(dtype)


def _axis(node) -> int:
    for attribute in node.attribute:
        if attribute.name == "axis":
            return attribute.i
    return 1


def _constant_nodes(graph) -> dict[str, np.ndarray]:
    values = {}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def _drop_unused_initializers(graph) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
