"""ONNX files: run in ONNX Runtime (CPU, or CUDA on a GPU), counted for the roofline estimate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgekd.errors import first_line
from edgekd.formats import max_input_shapes
from edgekd.formats.runner import Runner, RuntimeLoadError, TensorSpec
from edgekd.utils.quiet import quiet_import

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class OnnxRunner(Runner):
    format = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu") -> None:
        ort = quiet_import("onnxruntime")
        provider = PROVIDERS.get(device)
        if provider is None or provider not in ort.get_available_providers():
            extra = " (pip install 'edgekd[gpu]')" if device == "cuda" else ""
            raise RuntimeLoadError(f"ONNX Runtime has no execution provider for device '{device}'{extra}")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=[provider])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise RuntimeLoadError(f"{path}: ONNX Runtime cannot load it: {first_line(exc)}") from exc
        self.inputs = [TensorSpec(i.name, list(i.shape), _dtype(i.type)) for i in self.session.get_inputs()]
        self.outputs = [TensorSpec(o.name, list(o.shape), _dtype(o.type)) for o in self.session.get_outputs()]
        first = self.inputs[0].shape[0] if self.inputs[0].shape else None
        self.fixed_batch = first if isinstance(first, int) else None

    def threads_applied(self) -> int | None:
        return self.session.get_session_options().intra_op_num_threads

    def _call(self, feed: dict[str, np.ndarray]):
        return self.session.run(None, feed)


def _dtype(type_name: str) -> str:
    """``tensor(float)`` -> ``float32``: the numpy name the rest of edgekd speaks."""
    names = {"float": "float32", "double": "float64", "bool": "bool"}
    inner = type_name.removeprefix("tensor(").removesuffix(")")
    return names.get(inner, inner)


def import_runtime() -> None:
    quiet_import("onnxruntime")


def fixed_batch(path: Path) -> int | None:
    import onnx

    try:
        dim = onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
    except Exception:  # noqa: BLE001 - an unreadable header is reported when the file is opened
        return None
    return dim.dim_value if dim.HasField("dim_value") else None


# Layers whose multiply-accumulates are counted: op -> (index of the activation input, of the weight input).
_COUNTED = {
    "Conv": (0, 1), "Gemm": (0, 1), "MatMul": (0, 1), "ConvInteger": (0, 1), "MatMulInteger": (0, 1),
    "QLinearConv": (0, 3), "QLinearMatMul": (0, 3),
}  # fmt: skip
# Ops between a stored weight and its layer that change neither its values' count nor their meaning.
_WEIGHT_PATH = {"DequantizeLinear", "Transpose", "Reshape", "Identity", "Cast", "Squeeze", "Unsqueeze"}


def file_cost(path: Path) -> dict:
    """MACs of one call and the bytes of its stored weights plus one input and output. Batch 1, free
    axes at their longest as the manifest gives them (else 1). A layer's weight is followed back through
    dequantize and layout ops, so QDQ files and transposed weights count; products of two activations
    (attention) count too."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(path)
    longest = max_input_shapes(path)
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        sample = longest.get(value.name, [])
        for position, dim in enumerate(dims):
            if not dim.HasField("dim_value"):  # the batch at 1, a free sequence at its longest
                dim.dim_value = sample[position - 1] if 0 < position <= len(sample) else 1
    del model.graph.value_info[:]  # shapes the exporter recorded keep the free dimensions; infer them at 1
    model = shape_inference.infer_shapes(model, data_prop=True)  # shapes computed in the graph (Reshape) too
    values = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}  # 0: unresolved
    initializers = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    macs, int8, counted = 0, False, {}
    for node in model.graph.node:
        if node.op_type not in _COUNTED:
            continue
        activation, weight_input = _COUNTED[node.op_type]
        weight, dequantized = _stored_weight(node.input[weight_input], producers, initializers)
        int8 = int8 or dequantized or node.op_type not in ("Conv", "Gemm", "MatMul")
        w = numpy_helper.to_array(weight) if weight is not None else None
        if weight is not None:
            counted[weight.name] = w.nbytes
        out = shapes.get(node.output[0])
        if not out:
            continue
        outputs = math.prod(max(d, 1) for d in out)  # a dimension left unresolved counts 1: still a lower bound
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            kernel = w.shape[1:] if w is not None else shapes.get(node.input[weight_input], [])[1:]
            macs += outputs * math.prod(max(d, 1) for d in kernel)
        else:
            left, right = shapes.get(node.input[activation]) or [], shapes.get(node.input[weight_input]) or []
            macs += outputs * max(_inner_size(node, left, right), 1)
    io = list(model.graph.input) + list(model.graph.output)
    io_bytes = sum(_itemsize(v) * math.prod(d.dim_value or 1 for d in v.type.tensor_type.shape.dim) for v in io)
    return {"macs": int(macs), "bytes": int(sum(counted.values()) + io_bytes), "int8": int8}


def _stored_weight(name: str, producers: dict, initializers: dict):
    """The initializer a layer's weight input comes from, and whether it was dequantized on the way."""
    dequantized = False
    while name not in initializers:
        node = producers.get(name)
        if node is None or node.op_type not in _WEIGHT_PATH or not node.input:
            return None, dequantized
        dequantized = dequantized or node.op_type == "DequantizeLinear"
        name = node.input[0]
    return initializers[name], dequantized


def _inner_size(node, left: list[int], right: list[int]) -> int:
    """The length of the dot product behind each output of a matrix product (0 when unresolved), read
    from its right operand where inference resolved it (a weight's always is), else from its left one."""
    if node.op_type == "Gemm":
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        from_right = (right[-1] if trans_b else right[0]) if len(right) == 2 else 0
        return from_right or ((left[0] if trans_a else left[-1]) if len(left) == 2 else 0)
    from_right = right[-2] if len(right) >= 2 else 0
    return from_right or (left[-1] if left else 0)


def _itemsize(value) -> int:
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)).itemsize
