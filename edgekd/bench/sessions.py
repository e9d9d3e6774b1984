"""A prepared inference call per runtime, the thing the worker times.

ONNX Runtime (CPU EP, CUDA EP on a GPU), LiteRT (XNNPACK; ``tflite_runtime`` if that is what is
installed) and PyTorch (a ``torch.export`` archive, ``.pt2``). Inputs are set once and the call is
what an app repeats: ``session.run`` / ``invoke`` / ``module(x)``. Int8-input models get their
inputs quantized with the model's own scale and zero point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.quiet import quiet_import
from edgekd.runtimes import (
    LiteRTRunner,
    OnnxRunner,
    RuntimeLoadError,
    dequantize,
    litert_interpreter,
    quantize,
)

SUFFIX_RUNTIME = {".onnx": "onnx", ".tflite": "tflite", ".pt2": "torch"}


class Session:
    input_shape: list
    input_dtype: str
    batch: int

    def threads_applied(self) -> int | None:
        """The thread count read back from the runtime, where it exposes one."""
        return None

    def prepare(self, x: np.ndarray):
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def synchronize(self) -> None:
        pass

    def time_calls(self, call, runs: int, min_s: float, loop) -> list[float]:
        return loop(call, runs, min_s)


class OnnxSession(Session):
    def __init__(self, path: str, device: str, threads: int, batch: int) -> None:
        providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        if device == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeLoadError("ONNX Runtime has no CUDA execution provider (pip install 'edgekd[gpu]')")
        self.runner = OnnxRunner(path, threads=threads, providers=providers)
        self.input_shape, self.input_dtype, self.batch = self.runner.input.shape, self.runner.input.dtype, batch
        if self.runner.fixed_batch not in (None, batch):
            raise ValueError(f"the model's batch size is fixed at {self.runner.fixed_batch}")

    def threads_applied(self) -> int | None:
        return self.runner.session.get_session_options().intra_op_num_threads

    def prepare(self, x: np.ndarray):
        session, feed = self.runner.session, {self.runner.input.name: x}
        return lambda: session.run(None, feed)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.runner.run(x)


class LiteRTSession(Session):
    def __init__(self, path: str, threads: int, batch: int) -> None:
        self.runner = LiteRTRunner(path, threads=threads)
        interpreter, detail = self.runner.interpreter, self.runner.interpreter.get_input_details()[0]
        if batch != self.runner.fixed_batch:
            try:
                interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
                interpreter.allocate_tensors()
            except Exception as exc:  # noqa: BLE001
                raise ValueError(f"the model cannot run at batch {batch}: {exc}") from exc
        self.input_shape = [batch, *[int(d) for d in detail["shape"][1:]]]
        self.input_dtype, self.batch = self.runner.input.dtype, batch

    def prepare(self, x: np.ndarray):
        interpreter = self.runner.interpreter
        spec = self.runner.input
        interpreter.set_tensor(self.runner.input_index, quantize(x, spec) if spec.quantized else x)
        return interpreter.invoke

    def predict(self, x: np.ndarray) -> np.ndarray:
        interpreter, spec = self.runner.interpreter, self.runner.input
        if len(x) != self.batch:  # the last, short chunk: pad to the compiled batch, keep the real rows
            padded = np.concatenate([x, np.zeros((self.batch - len(x), *x.shape[1:]), np.float32)])
            return self.predict(padded)[: len(x)]
        interpreter.set_tensor(self.runner.input_index, quantize(x, spec) if spec.quantized else x)
        interpreter.invoke()
        out = interpreter.get_tensor(self.runner.output_index)
        return dequantize(out, self.runner.output) if self.runner.output.quantized else out


class TorchSession(Session):
    def __init__(self, path: str, device: str, threads: int, batch: int) -> None:
        import torch

        from edgekd.quantize.model import QUANTIZE_OPS  # noqa: F401 - registers the int8 ops a .pt2 may use
        from edgekd.quantize.safe_archive import check_archive

        torch.set_num_threads(threads)
        check_archive(path)
        try:
            program = torch.export.load(path)
        except Exception as exc:  # noqa: BLE001
            raise RuntimeLoadError(f"{path}: not a torch.export archive: {exc}") from exc
        self.torch, self.device = torch, torch.device(device)
        self.module = program.module().to(self.device)
        spec = program.graph_signature.user_inputs[0]
        placeholder = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == spec)
        shape = list(placeholder.meta["val"].shape)
        self.input_shape = [batch, *[int(d) if str(d).isdigit() else 1 for d in shape[1:]]]
        self.input_dtype, self.batch = "float32", batch

    def threads_applied(self) -> int | None:
        return self.torch.get_num_threads()

    def prepare(self, x: np.ndarray):
        tensor = self.torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        module, no_grad = self.module, self.torch.no_grad

        def call():
            with no_grad():
                return module(tensor)

        return call

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self.module(self.torch.from_numpy(np.ascontiguousarray(x)).to(self.device)).float().cpu().numpy()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def time_calls(self, call, runs: int, min_s: float, loop) -> list[float]:
        if self.device.type != "cuda":
            return loop(call, runs, min_s)
        return _cuda_event_times(self.torch, call, runs, min_s)


def _cuda_event_times(torch, call, runs: int, min_s: float) -> list[float]:
    """GPU time per call from CUDA events, after a synchronize, so launch queues do not hide work."""
    import time

    times, deadline = [], time.perf_counter() + min_s
    while len(times) < runs or time.perf_counter() < deadline:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def import_runtime(runtime: str) -> None:
    """Import the runtime before the memory baseline, so its own import is not counted as the model's."""
    if runtime == "onnx":
        quiet_import("onnxruntime")
    elif runtime == "tflite":
        litert_interpreter()
    else:
        import torch  # noqa: F401

        from edgekd.quantize import model  # noqa: F401 - registers the int8 ops a .pt2 may use


def runtime_of(path: str | Path) -> str | None:
    return SUFFIX_RUNTIME.get(Path(path).suffix.lower())


def open_session(path: str, runtime: str, device: str, threads: int, batch: int) -> Session:
    if runtime == "onnx":
        return OnnxSession(path, device, threads, batch)
    if runtime == "tflite":
        if device != "cpu":
            raise ValueError("LiteRT runs on the CPU here")
        return LiteRTSession(path, threads, batch)
    return TorchSession(path, device, threads, batch)
