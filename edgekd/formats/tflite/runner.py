"""TFLite files: run in LiteRT (XNNPACK; ``tflite_runtime`` if that is what is installed), counted
for the roofline estimate. Their shapes are static: another batch size means resizing the inputs."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from edgekd.errors import first_line
from edgekd.formats.runner import Runner, RuntimeLoadError, TensorSpec
from edgekd.utils.quiet import native_stderr_captured, quiet_import

_CONV_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL"}


class LiteRTRunner(Runner):
    format = "tflite"

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu") -> None:
        if device != "cpu":
            raise RuntimeLoadError("LiteRT runs on the CPU here")
        interpreter_module = litert_interpreter()
        try:
            with native_stderr_captured():  # LiteRT announces its XNNPACK delegate on fd 2 every time
                self.interpreter = interpreter_module.Interpreter(model_path=str(path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except Exception as exc:  # noqa: BLE001
            raise RuntimeLoadError(f"{path}: LiteRT cannot load it: {first_line(exc)}") from exc
        self._describe()

    def _describe(self) -> None:
        names = _signature_names(self.interpreter)
        inputs = sorted(self.interpreter.get_input_details(), key=lambda d: d["index"])
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: _output_order(names.get(d["index"]), d))
        self.inputs = [_spec(d, names.get(d["index"])) for d in inputs]
        self.outputs = [_spec(d, names.get(d["index"])) for d in outputs]
        self._input_indices = {spec.name: d["index"] for spec, d in zip(self.inputs, inputs)}
        self._output_indices = [d["index"] for d in outputs]
        self.fixed_batch = int(self.inputs[0].shape[0]) if self.inputs[0].shape else None

    def resize(self, batch: int) -> None:
        if batch == self.fixed_batch:
            return
        try:
            for spec in self.inputs:
                self.interpreter.resize_tensor_input(self._input_indices[spec.name], [batch, *spec.shape[1:]])
            self.interpreter.allocate_tensors()
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"the model cannot run at batch {batch}: {first_line(exc)}") from exc
        self._describe()

    def prepare(self, x):
        self._set(self.feed(x))
        return self.interpreter.invoke

    def _call(self, feed: dict[str, np.ndarray]):
        self._set(feed)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(index) for index in self._output_indices]

    def _set(self, feed: dict[str, np.ndarray]) -> None:
        for name, array in feed.items():
            self.interpreter.set_tensor(self._input_indices[name], array)


def _output_order(name: str | None, detail: dict) -> tuple:
    """The model's output order: the converter names them ``output_0``, ``output_1``... in its signature,
    which the interpreter's own list does not follow."""
    match = re.fullmatch(r"output_(\d+)", name or "")
    return (0, int(match.group(1))) if match else (1, detail["index"])


def _signature_names(interpreter) -> dict[int, str]:
    """Tensor index -> the name the converter's signature gives it (the model's argument name)."""
    try:
        signatures = interpreter._get_full_signature_list()  # noqa: SLF001 - the only index-to-name map
    except Exception:  # noqa: BLE001 - older interpreters: fall back on tensor names
        return {}
    if len(signatures) != 1:
        return {}
    signature = next(iter(signatures.values()))
    return {index: name for part in ("inputs", "outputs") for name, index in signature.get(part, {}).items()}


def _spec(detail: dict, name: str | None) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    dtype = np.dtype(detail["dtype"]).name
    quantized = scale != 0.0 and dtype in ("int8", "uint8", "int16")
    return TensorSpec(
        name or detail["name"],
        [int(d) for d in detail["shape"]],
        dtype,
        float(scale) if quantized else None,
        int(zero_point) if quantized else None,
    )


def litert_interpreter():
    try:
        return quiet_import("ai_edge_litert.interpreter")
    except ImportError:
        try:
            return quiet_import("tflite_runtime.interpreter")
        except ImportError as exc:
            raise RuntimeLoadError("no TFLite interpreter installed: pip install ai-edge-litert") from exc


def import_runtime() -> None:
    litert_interpreter()


def _schema():
    return quiet_import("ai_edge_litert.schema_py_generated")


def fixed_batch(path: Path) -> int | None:
    try:
        graph = _schema().ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0).subgraphs[0]
        tensor = graph.tensors[graph.inputs[0]]
    except Exception:  # noqa: BLE001 - an unreadable header is reported when the file is opened
        return None
    signature = tensor.shapeSignature
    return None if signature is not None and int(signature[0]) == -1 else int(tensor.shape[0])


def file_cost(path: Path) -> dict:
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    names = {getattr(schema.BuiltinOperator, k): k for k in dir(schema.BuiltinOperator) if not k.startswith("_")}
    graph = model.subgraphs[0]
    macs, int8, weight_bytes = 0, False, 0
    for operator in graph.operators:
        code = model.operatorCodes[operator.opcodeIndex]
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode))
        if name not in _CONV_OPS:
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
        elif name == "BATCH_MATMUL":  # attention's products of two activations, or an activation and a weight
            left = [int(d) for d in graph.tensors[operator.inputs[0]].shape]
            adjoint = bool(getattr(operator.builtinOptions, "adjX", False))
            macs += math.prod(out) * (left[-2] if adjoint else left[-1]) if left else 0
        else:
            macs += math.prod(out) * kernel[-1]
    io = [graph.tensors[i] for i in list(graph.inputs) + list(graph.outputs)]
    io_bytes = sum(math.prod(int(d) for d in t.shape) * _itemsize(schema, t.type) for t in io)
    return {"macs": int(macs), "bytes": int(weight_bytes + io_bytes), "int8": int8}


def _itemsize(schema, code: int) -> int:
    sizes = {schema.TensorType.INT8: 1, schema.TensorType.UINT8: 1, schema.TensorType.INT64: 8}
    return sizes.get(code, 4)
