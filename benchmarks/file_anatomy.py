"""Where the bytes of an ONNX or TFLite file go: kernels, biases, quantization parameters, the rest.

On a small model the fixed costs (per-channel scales and zero points, graph structure, tensor
names) are a large share of an INT8 file, so "INT8 is 4x smaller" holds for the weights, not for the
file. The demo benchmark records this breakdown next to its size ratios.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from edgekd.utils.quiet import quiet_import

_KERNEL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}


def anatomy(path: Path) -> dict[str, int]:
    return _onnx(path) if path.suffix == ".onnx" else _tflite(path)


def _onnx(path: Path) -> dict[str, int]:
    model = onnx.load(path)
    initializers = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    roles: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            for name in node.input[1:]:
                roles[name] = "quantization_params"
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            for position, name in enumerate(node.input[1:3], start=1):
                source = producers.get(name)
                name = source.input[0] if source is not None and source.op_type == "DequantizeLinear" else name
                roles.setdefault(name, "kernels" if position == 1 else "biases")
    sizes = {"kernels": 0, "biases": 0, "quantization_params": 0}
    for name, tensor in initializers.items():
        role = roles.get(name)
        if role:
            sizes[role] += len(tensor.raw_data) or tensor.ByteSize()
    sizes["graph_names_other"] = path.stat().st_size - sum(sizes.values())
    return sizes


def _tflite(path: Path) -> dict[str, int]:
    schema = quiet_import("ai_edge_litert.schema_py_generated")
    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    names = {getattr(schema.BuiltinOperator, k): k for k in dir(schema.BuiltinOperator) if not k.startswith("_")}
    sizes = {"kernels": 0, "biases": 0, "quantization_params": 0}
    for subgraph in model.subgraphs:
        for operator in subgraph.operators:
            code = model.operatorCodes[operator.opcodeIndex]
            if names.get(max(code.builtinCode, code.deprecatedBuiltinCode)) not in _KERNEL_OPS:
                continue
            for position, tensor_index in enumerate(list(operator.inputs)[1:3], start=1):
                if tensor_index < 0:
                    continue
                data = model.buffers[subgraph.tensors[tensor_index].buffer].data
                sizes["kernels" if position == 1 else "biases"] += len(data) if data is not None else 0
        for tensor in subgraph.tensors:
            q = tensor.quantization
            if q is not None and q.scale is not None:
                sizes["quantization_params"] += 4 * len(q.scale) + 8 * len(
                    q.zeroPoint if q.zeroPoint is not None else []
                )
    sizes["graph_names_other"] = path.stat().st_size - sum(sizes.values())
    return sizes
