"""Running an exported file in its own runtime: ONNX Runtime for ``.onnx``, LiteRT for ``.tflite``.

The parity gate, the artifact accuracy and the benchmark harness all go through these runners, so
an artifact is always judged by the runtime an app will load it with. Int8 inputs are quantized
with the model's own scale and zero point and int8 outputs dequantized, so callers pass and get
float arrays whatever the file's interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.errors import EdgekdError, first_line
from edgekd.quiet import native_stderr_captured, quiet_import

SUFFIXES = {".onnx": "onnx", ".tflite": "tflite"}


class RuntimeLoadError(EdgekdError):
    """A file that its runtime cannot load (missing, truncated, not a model)."""


@dataclass
class TensorSpec:
    name: str
    shape: list[int | str]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None


class Runner:
    """Runs a batch of float inputs through an exported model; returns float outputs."""

    format: str
    input: TensorSpec
    output: TensorSpec

    def run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OnnxRunner(Runner):
    format = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None, providers: list[str] | None = None) -> None:
        ort = quiet_import("onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        path = _existing(path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise RuntimeLoadError(f"{path}: ONNX Runtime cannot load it: {first_line(exc)}") from exc
        first_in, first_out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input = TensorSpec(first_in.name, list(first_in.shape), _ort_dtype(first_in.type))
        self.output = TensorSpec(first_out.name, list(first_out.shape), _ort_dtype(first_out.type))
        self.fixed_batch = first_in.shape[0] if isinstance(first_in.shape[0], int) else None

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            return np.concatenate([self.run(x[i : i + self.fixed_batch]) for i in range(0, len(x), self.fixed_batch)])
        return self.session.run([self.output.name], {self.input.name: x})[0]


class LiteRTRunner(Runner):
    format = "tflite"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        interpreter_module = litert_interpreter()
        path = _existing(path)
        try:
            with native_stderr_captured():  # LiteRT announces its XNNPACK delegate on fd 2 every time
                self.interpreter = interpreter_module.Interpreter(model_path=str(path), num_threads=threads)
                self.interpreter.allocate_tensors()
        except Exception as exc:  # noqa: BLE001
            raise RuntimeLoadError(f"{path}: LiteRT cannot load it: {first_line(exc)}") from exc
        self.input = _litert_spec(self.interpreter.get_input_details()[0])
        self.output = _litert_spec(self.interpreter.get_output_details()[0])
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]
        self.fixed_batch = int(self.input.shape[0])

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        step = self.fixed_batch
        return np.concatenate([self._invoke(x[i : i + step]) for i in range(0, len(x), step)])

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        if self.input.quantized:
            x = quantize(x, self.input)
        self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(x))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output_index)
        return dequantize(out, self.output) if self.output.quantized else out.astype(np.float32)


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    info = np.iinfo(np.dtype(spec.dtype))
    return np.clip(np.round(x / spec.scale) + spec.zero_point, info.min, info.max).astype(spec.dtype)


def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    return ((q.astype(np.float32) - spec.zero_point) * spec.scale).astype(np.float32)


def open_runner(path: str | Path, threads: int | None = None) -> Runner:
    """The runner for a file, chosen by its suffix."""
    kind = SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        raise RuntimeLoadError(f"{path}: not a model file edgekd can run (expected {', '.join(SUFFIXES)})")
    return OnnxRunner(path, threads) if kind == "onnx" else LiteRTRunner(path, threads)


def litert_interpreter():
    try:
        return quiet_import("ai_edge_litert.interpreter")
    except ImportError:
        try:
            return quiet_import("tflite_runtime.interpreter")
        except ImportError as exc:
            raise RuntimeLoadError("no TFLite interpreter installed: pip install ai-edge-litert") from exc


def _litert_spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    dtype = np.dtype(detail["dtype"]).name
    quantized = scale != 0.0 and dtype in ("int8", "uint8", "int16")
    return TensorSpec(
        detail["name"],
        [int(d) for d in detail["shape"]],
        dtype,
        float(scale) if quantized else None,
        int(zero_point) if quantized else None,
    )


def _ort_dtype(type_name: str) -> str:
    return {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}.get(type_name, type_name)


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be a model at all (missing, empty), or None."""
    path = Path(path)
    if not path.is_file():
        return f"{path}: no such file"
    if path.stat().st_size == 0:
        return f"{path}: empty file"
    return None


def _existing(path: str | Path) -> Path:
    problem = file_problem(path)
    if problem:
        raise RuntimeLoadError(problem)
    return Path(path)
