"""``torch.export`` archives (``.pt2``): the PyTorch reference in the benchmark, on CPU or CUDA.

Archives are checked before loading (:mod:`edgekd.quantize.safe_archive`): loading one runs no
pickled code, but a truncated or foreign file must still fail as one line.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgekd.errors import first_line
from edgekd.formats.runner import Runner, RuntimeLoadError, TensorSpec


class TorchRunner(Runner):
    format = "pt2"

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu") -> None:
        import torch

        from edgekd.quantize.model import QUANTIZE_OPS  # noqa: F401 - registers the int8 ops a .pt2 may use
        from edgekd.quantize.safe_archive import check_archive

        if threads:
            torch.set_num_threads(threads)
        check_archive(path)
        try:
            program = torch.export.load(str(path))
        except Exception as exc:  # noqa: BLE001
            raise RuntimeLoadError(f"{path}: not a torch.export archive: {first_line(exc)}") from exc
        self.torch, self.device = torch, torch.device(device)
        self.module = program.module().to(self.device)
        values = {n.name: n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"}
        self.inputs = [_spec(name, values.get(name)) for name in program.graph_signature.user_inputs]
        self.outputs = [TensorSpec(name, [], "float32") for name in program.graph_signature.user_outputs]
        self._keyword = _keyword_inputs(program)

    def threads_applied(self) -> int | None:
        return self.torch.get_num_threads()

    def prepare(self, x):
        tensors = self._tensors(self.feed(x))
        module, no_grad, keyword = self.module, self.torch.no_grad, self._keyword

        def call():
            with no_grad():
                return module(**tensors) if keyword else module(*tensors.values())

        return call

    def _call(self, feed: dict[str, np.ndarray]):
        tensors = self._tensors(feed)
        with self.torch.no_grad():
            out = self.module(**tensors) if self._keyword else self.module(*tensors.values())
        from edgekd.outputs import tensors_in

        return [tensor.float().cpu().numpy() for tensor in tensors_in(out)]

    def _tensors(self, feed: dict[str, np.ndarray]) -> dict:
        return {name: self.torch.from_numpy(array).to(self.device) for name, array in feed.items()}

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def time_calls(self, call, runs: int, min_s: float, loop) -> list[float]:
        if self.device.type != "cuda":
            return loop(call, runs, min_s)
        return _cuda_event_times(self.torch, call, runs, min_s)


def _spec(name: str, value) -> TensorSpec:
    if value is None:
        return TensorSpec(name, [], "float32")
    shape = [int(d) if str(d).isdigit() else str(d) for d in value.shape]
    return TensorSpec(name, shape, str(value.dtype).removeprefix("torch."))


def _keyword_inputs(program) -> bool:
    """Whether the archive was captured with keyword inputs (then it is called with them)."""
    spec = getattr(program, "call_spec", None) or getattr(program, "_in_spec", None)
    in_spec = getattr(spec, "in_spec", spec)
    try:
        args_spec, kwargs_spec = in_spec.children_specs
        return kwargs_spec.num_leaves > 0 and args_spec.num_leaves == 0
    except (AttributeError, ValueError):
        return False


def fixed_batch(path: Path) -> int | None:
    return None  # a .pt2 archive runs the batch it is given


def file_cost(path: Path) -> dict:
    raise ValueError("no cost counter for .pt2 archives; estimates cover ONNX and TFLite files")


def import_runtime() -> None:
    import torch  # noqa: F401

    from edgekd.quantize import model  # noqa: F401 - registers the int8 ops a .pt2 may use


def _cuda_event_times(torch, call, runs: int, min_s: float) -> list[float]:
    """GPU time per call from CUDA events, after a synchronize, so launch queues do not hide work."""
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
