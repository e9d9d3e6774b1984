"""ExecuTorch files: run in ExecuTorch's Python runtime (the XNNPACK delegate and the portable kernels an app
links). Their shapes are fixed at the batch they were written with; the runner feeds them row by row."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.errors import first_line
from edgekd.formats.executorch.runtime import INSTALL, available
from edgekd.formats.runner import Runner, RuntimeLoadError, TensorSpec
from edgekd.utils.quiet import native_stderr_captured, quiet_import

SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
                11: "bool"}  # fmt: skip


class ExecuTorchRunner(Runner):
    format = "executorch"

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu") -> None:
        if device != "cpu":
            raise RuntimeLoadError("ExecuTorch runs on the CPU here")
        runtime = executorch_runtime()
        if threads:
            _set_threads(threads)
        try:
            with native_stderr_captured():  # the runtime logs each missing kernel on fd 2
                self.program = runtime.load_program(str(path))  # the method reads from it: keep it alive
                self.method = self.program.load_method("forward")
        except Exception as exc:  # noqa: BLE001
            raise RuntimeLoadError(f"{path}: ExecuTorch cannot load it: {first_line(exc)}") from exc
        meta = self.program.metadata("forward")
        self.inputs = [_spec(f"input_{i}", meta.input_tensor_meta(i)) for i in range(meta.num_inputs())]
        self.outputs = [_spec(f"output_{i}", meta.output_tensor_meta(i)) for i in range(meta.num_outputs())]
        self.fixed_batch = int(self.inputs[0].shape[0]) if self.inputs and self.inputs[0].shape else None
        self._threads = threads
        import torch

        self.torch = torch

    def threads_applied(self) -> int | None:
        return _thread_count()

    def prepare(self, x):
        tensors = [self.torch.from_numpy(array) for array in self.feed(x).values()]
        method = self.method
        return lambda: method.execute(tensors)

    def _call(self, feed: dict[str, np.ndarray]):
        outputs = self.method.execute([self.torch.from_numpy(array) for array in feed.values()])
        return [output.numpy() for output in outputs]


def _spec(name: str, meta) -> TensorSpec:
    return TensorSpec(name, [int(d) for d in meta.sizes()], SCALAR_TYPES.get(int(meta.dtype()), "float32"))


def executorch_runtime():
    """ExecuTorch's runtime (torch is imported first, as its bindings need); one line when it is missing."""
    if not available():
        raise RuntimeLoadError(f"ExecuTorch is not installed: {INSTALL}")
    quiet_import("torch")
    return quiet_import("executorch.runtime").Runtime.get()


def _threadpool():
    return quiet_import("executorch.extension.pybindings.portable_lib")


def _set_threads(threads: int) -> None:
    try:
        _threadpool()._unsafe_reset_threadpool(int(threads))  # noqa: SLF001 - the runtime's only thread control
    except Exception:  # noqa: BLE001 - the count read back says what was applied
        pass


def _thread_count() -> int | None:
    try:
        return int(_threadpool()._threadpool_get_thread_count())  # noqa: SLF001
    except Exception:  # noqa: BLE001
        return None


def import_runtime() -> None:
    executorch_runtime()


def fixed_batch(path: Path) -> int | None:
    try:
        meta = executorch_runtime().load_program(str(path)).metadata("forward")
        return int(meta.input_tensor_meta(0).sizes()[0])
    except Exception:  # noqa: BLE001 - an unreadable file is reported when it is opened
        return None


def file_cost(path: Path) -> dict:
    raise ValueError("ExecuTorch files are not counted for the roofline estimate")
