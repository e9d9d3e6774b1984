"""Roofline estimates for named reference phones: never measured, always labelled as estimates.

time >= max(MACs / peak MAC rate, bytes / memory bandwidth), with the MACs counted from the file's
own conv / linear layers at batch 1 and the bytes taken as its weights plus one input and output
(a lower bound: activations that spill from cache add more). Peak rates are the int8 or fp32 figure
of the phone's core, whichever matches the file's kernels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from edgekd.bench.targets import Target
from edgekd.quiet import quiet_import

_TFLITE_CONV = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def estimates_for(artifacts: list[Path], targets: list[Target]) -> list[dict]:
    rows = []
    phones = [p for t in targets for p in t.reference_phones]
    for path in artifacts:
        if not phones or not path.is_file():
            continue
        try:
            cost = file_cost(path)
        except Exception as exc:  # noqa: BLE001 - an estimate is optional; say why it is missing
            rows.append({"artifact": path.name, "error": f"cannot count MACs: {exc}"})
            continue
        for phone in phones:
            peak = (phone.peak_int8_gmacs if cost["int8"] else phone.peak_fp32_gmacs) * 1e9
            compute_ms, memory_ms = cost["macs"] / peak * 1e3, cost["bytes"] / (phone.bandwidth_gbs * 1e9) * 1e3
            rows.append({
                "artifact": path.name, "phone": phone.name, "macs": cost["macs"], "bytes": cost["bytes"],
                "precision": "int8" if cost["int8"] else "fp32", "estimate_ms": max(compute_ms, memory_ms),
                "bound": "compute" if compute_ms >= memory_ms else "memory", "kind": "roofline estimate",
            })  # fmt: skip
    return rows


def file_cost(path: Path) -> dict:
    return _onnx_cost(path) if path.suffix == ".onnx" else _tflite_cost(path)


def _onnx_cost(path: Path) -> dict:
    model = onnx.load(path)
    for value in list(model.graph.input) + list(model.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    shapes |= {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.output}
    initializers = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    macs, int8, weight_bytes = 0, False, 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        weight = node.input[1]
        source = producers.get(weight)
        if source is not None and source.op_type == "DequantizeLinear":
            weight, int8 = source.input[0], True
        if weight not in initializers:
            continue
        w = numpy_helper.to_array(initializers[weight])
        weight_bytes += w.nbytes
        out = shapes.get(node.output[0])
        if not out:
            continue
        if node.op_type == "Conv":
            macs += math.prod(out) * math.prod(w.shape[1:])
        else:
            macs += math.prod(out) * (w.shape[0] if node.op_type == "MatMul" else w.shape[-1])
    io_bytes = sum(4 * math.prod(_dims(v)) for v in list(model.graph.input) + list(model.graph.output))
    return {"macs": int(macs), "bytes": int(weight_bytes + io_bytes), "int8": int8}


def _dims(value) -> list[int]:
    return [d.dim_value or 1 for d in value.type.tensor_type.shape.dim]


def _tflite_cost(path: Path) -> dict:
    schema = quiet_import("ai_edge_litert.schema_py_generated")
    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    names = {getattr(schema.BuiltinOperator, k): k for k in dir(schema.BuiltinOperator) if not k.startswith("_")}
    graph = model.subgraphs[0]
    macs, int8, weight_bytes = 0, False, 0
    for operator in graph.operators:
        code = model.operatorCodes[operator.opcodeIndex]
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode))
        if name not in _TFLITE_CONV:
            continue
        weight = graph.tensors[operator.inputs[1]]
        out = [int(d) for d in graph.tensors[operator.outputs[0]].shape]
        kernel = [int(d) for d in weight.shape]
        data = model.buffers[weight.buffer].data
        weight_bytes += len(data) if data is not None else 0
        int8 = int8 or weight.type == schema.TensorType.INT8
        if name == "CONV_2D":
            macs += math.prod(out) * math.prod(kernel[1:])
        elif name == "DEPTHWISE_CONV_2D":
            macs += math.prod(out) * kernel[1] * kernel[2]
        else:
            macs += math.prod(out) * kernel[-1]
    io = [graph.tensors[i] for i in list(graph.inputs) + list(graph.outputs)]
    io_bytes = sum(math.prod(int(d) for d in t.shape) * np.dtype(_tflite_dtype(schema, t.type)).itemsize for t in io)
    return {"macs": int(macs), "bytes": int(weight_bytes + io_bytes), "int8": int8}


def _tflite_dtype(schema, code: int) -> str:
    return {schema.TensorType.INT8: "int8", schema.TensorType.UINT8: "uint8"}.get(code, "float32")
