"""Rewrites of an exported INT8 ONNX graph that ONNX Runtime needs to run it as integer kernels.

Weights: torch's ONNX exporter writes a PT2E weight as ``float initializer -> QuantizeLinear [-> Clip] ->
DequantizeLinear``. ONNX Runtime wants the int8 tensor itself in front of the DequantizeLinear: that
is the QDQ form its graph optimizer fuses into QLinearConv / QGemm, and it stores a quarter of the
bytes. The values are computed exactly as the PyTorch graph does (round half to even, then clamp),
so the learned scales are kept bit for bit.

Activations: the TFLite scheme quantizes activations to int8, and ONNX Runtime's x86 kernels fuse
int8 activations poorly (residual adds and the convs beside them stay float, layout transposes pile
up), while uint8 activations with int8 weights (U8S8) fuse into QLinearConv / QLinearAdd throughout.
Shifting an activation's quantize/dequantize pair to uint8 with the zero point raised by 128 is
exact: every quantized value moves by 128 and its dequantized value is unchanged.

Pooling: a mean over the spatial axes comes out of the exporter as ReduceMean, which ONNX Runtime
runs in float between a dequantize and a quantize; written as GlobalAveragePool it is fused into
QLinearGlobalAveragePool. Same arithmetic, three nodes fewer.
"""

from __future__ import annotations

import platform

import numpy as np
import onnx
from onnx import numpy_helper

from edgekd.catalog import catalog
from edgekd.utils.environment import X86_MACHINES
from edgekd.utils.naming import check_choice

_INT_TYPES = {onnx.TensorProto.INT8: np.int8, onnx.TensorProto.UINT8: np.uint8}


def fold_weight_quantization(model: onnx.ModelProto) -> int:
    """Replace each constant weight's QuantizeLinear (and Clip) by its int8 result; returns the count."""
    graph = model.graph
    constants, readers, producers = _constants(graph), _readers(graph), _producers(graph)
    consumers = {name: len(nodes) for name, nodes in readers.items()}
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


def _constants(graph) -> dict[str, np.ndarray]:
    """Every constant tensor by name: initializers and Constant nodes."""
    return {**{i.name: numpy_helper.to_array(i) for i in graph.initializer}, **_constant_nodes(graph)}


def _readers(graph) -> dict[str, list[onnx.NodeProto]]:
    """The nodes that read each tensor."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def _producers(graph) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


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


def resolve_activation_type(requested: str, machine: str | None = None) -> str:
    """``auto`` -> what ONNX Runtime runs fastest on the exporting machine's architecture.

    uint8 on x86 (its U8S8 kernels); int8 elsewhere, where ONNX Runtime's ARM kernels run S8S8 as
    well as U8S8 and int8 keeps the file identical in kind to the TFLite artifact."""
    if check_choice("activations", requested, catalog("formats").get("onnx").choices["activations"]) != "auto":
        return requested
    machine = (machine or platform.machine()).lower()
    return "uint8" if machine in X86_MACHINES else "int8"


def shift_activations_to_uint8(model: onnx.ModelProto) -> int:
    """Turn every int8 activation quantize/dequantize pair into uint8 (zero point + 128); returns the count.

    A pair is rewritten only when every reader of the quantized tensor is a DequantizeLinear with the
    same zero point, and the tensor is not a graph output, so the interface and any int8 tensor read
    by something else stay as they are. Weight quantization (int8 initializers) is left alone."""
    graph = model.graph
    constants, readers = _constants(graph), _readers(graph)
    outputs = {o.name for o in graph.output}
    names = _all_names(graph)
    shifted_zero_points: dict[int, str] = {}
    rewritten: set[str] = set()
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in constants or len(node.input) < 3:
            continue
        zero_point = constants.get(node.input[2])
        quantized = node.output[0]
        if zero_point is None or zero_point.dtype != np.int8 or zero_point.size != 1 or quantized in outputs:
            continue
        dequantizers = readers.get(quantized, [])
        if not dequantizers or not all(_dequantizes_with(d, zero_point, constants) for d in dequantizers):
            continue
        value = int(zero_point.reshape(-1)[0])
        if value not in shifted_zero_points:
            name = _fresh_name(f"activation_zero_point_u8_{value + 128}", names)
            graph.initializer.append(numpy_helper.from_array(np.array(value + 128, dtype=np.uint8), name))
            names.add(name)
            shifted_zero_points[value] = name
        for quantize_or_dequantize in (node, *dequantizers):
            quantize_or_dequantize.input[2] = shifted_zero_points[value]
        _set_output_dtype(node)
        rewritten.add(quantized)
    _retype_value_info(graph, rewritten)
    _drop_unused_initializers(graph)
    return len(rewritten)


def _dequantizes_with(node: onnx.NodeProto, zero_point: np.ndarray, constants: dict[str, np.ndarray]) -> bool:
    if node.op_type != "DequantizeLinear" or len(node.input) < 3:
        return False
    theirs = constants.get(node.input[2])
    return theirs is not None and theirs.dtype == np.int8 and np.array_equal(theirs, zero_point)


def _set_output_dtype(node: onnx.NodeProto) -> None:
    """Opset 21's ``output_dtype`` must agree with the zero point when present."""
    for attribute in node.attribute:
        if attribute.name == "output_dtype" and attribute.i:
            attribute.i = onnx.TensorProto.UINT8


def _retype_value_info(graph, names: set[str]) -> None:
    for value in graph.value_info:
        if value.name in names:
            value.type.tensor_type.elem_type = onnx.TensorProto.UINT8


def _fresh_name(base: str, taken: set[str]) -> str:
    name, count = base, 0
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    return name


def pool_as_global_average(model: onnx.ModelProto) -> int:
    """Rewrite ``DequantizeLinear -> ReduceMean(spatial axes) -> QuantizeLinear`` as GlobalAveragePool.

    Only a mean over every axis after (batch, channel) qualifies; with ``keepdims=0`` a Reshape to
    (batch, channels) follows, as the ReduceMean's own output. Returns the count rewritten."""
    graph = model.graph
    ranks = _ranks(model)
    constants, readers, producers = _constants(graph), _readers(graph), _producers(graph)
    rewritten = []
    for node in graph.node:
        if node.op_type != "ReduceMean":
            continue
        source = producers.get(node.input[0])
        users = readers.get(node.output[0], [])
        rank = ranks.get(node.input[0])
        if source is None or source.op_type != "DequantizeLinear" or rank is None or rank < 3:
            continue
        if not users or not all(u.op_type == "QuantizeLinear" for u in users):
            continue
        axes = _reduce_axes(node, constants)
        if axes is None or sorted(a % rank for a in axes) != list(range(2, rank)):
            continue
        rewritten.append(node)
    names = _all_names(graph)
    for node in rewritten:
        keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
        index = list(graph.node).index(node)
        output = node.output[0]
        pooled = output if keepdims else _fresh_name(f"{output}_pooled", names)
        replacement = [onnx.helper.make_node("GlobalAveragePool", [node.input[0]], [pooled], name=f"{node.name}_gap")]
        if not keepdims:
            shape = _fresh_name(f"{output}_flat_shape", names)
            names.update({pooled, shape})
            graph.initializer.append(numpy_helper.from_array(np.array([0, -1], dtype=np.int64), shape))
            replacement.append(onnx.helper.make_node("Reshape", [pooled, shape], [output], name=f"{node.name}_flatten"))
        graph.node.remove(node)
        for offset, new in enumerate(replacement):
            graph.node.insert(index + offset, new)
    _drop_unused_initializers(graph)
    return len(rewritten)


def _reduce_axes(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> list[int] | None:
    """The axes of a ReduceMean (an input from opset 18, an attribute before); None when not constant."""
    if len(node.input) > 1 and node.input[1]:
        axes = constants.get(node.input[1])
        return None if axes is None else [int(a) for a in axes.reshape(-1)]
    for attribute in node.attribute:
        if attribute.name == "axes":
            return list(attribute.ints)
    return None  # all axes: not a spatial pool


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    return {v.name: len(v.type.tensor_type.shape.dim) for v in values if v.type.tensor_type.HasField("shape")}


def _all_names(graph) -> set[str]:
    names = {i.name for i in graph.initializer} | {i.name for i in graph.input}
    return names | {out for node in graph.node for out in node.output}
