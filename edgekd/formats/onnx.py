"""ONNX files: run in ONNX Runtime (CPU, or CUDA on a GPU), counted for the roofline estimate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgekd.errors import first_line
from edgekd.runtimes import Runner, RuntimeLoadError, TensorSpec
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
        self._first_output = [self.outputs[0].name]

    def threads_applied(self) -> int | None:
        return self.session.get_session_options().intra_op_num_threads

    def _call(self, feed: dict[str, np.ndarray]):
        return self.session.run(self._first_output, feed)[0]


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


def file_cost(path: Path) -> dict:
    import onnx
    from onnx import numpy_helper, shape_inference

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
    io = list(model.graph.input) + list(model.graph.output)
    io_bytes = sum(_itemsize(v) * math.prod(d.dim_value or 1 for d in v.type.tensor_type.shape.dim) for v in io)
    return {"macs": int(macs), "bytes": int(weight_bytes + io_bytes), "int8": int8}


def _itemsize(value) -> int:
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)).itemsize
