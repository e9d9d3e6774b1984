"""What running an exported file means, whatever its format: the contract every runner keeps.

The parity gate, the artifact accuracy and the benchmark harness all go through runners, so an
artifact is always judged by the runtime an app will load it with. Each format's runner lives with
the rest of that format (:mod:`edgekd.formats`). Callers pass float (or integer token) arrays, one
per model input, and get float outputs: int8 inputs are quantized with the file's own scale and
zero point and int8 outputs dequantized, whatever the file's interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.errors import EdgekdError

Inputs = np.ndarray | Mapping[str, np.ndarray]  # one array, or one per input name


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
    """One loaded file: batches of inputs in, its outputs out as float arrays (:meth:`run` gives the first,
    the logits of a one-output model; :meth:`run_all` every output, in the model's order).

    Subclasses fill ``inputs``/``outputs`` and ``fixed_batch`` (None when any batch size runs) and
    implement ``_call`` on one batch that fits the file, returning every output in ``outputs`` order;
    batching, feeding by name and int8 interfaces are handled here once."""

    format: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    fixed_batch: int | None = None

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    @property
    def output(self) -> TensorSpec:
        return self.outputs[0]

    def run(self, x: Inputs) -> np.ndarray:
        """The first output for all rows of ``x``, in chunks of the file's fixed batch size."""
        return self.run_all(x)[0]

    def run_all(self, x: Inputs) -> list[np.ndarray]:
        """Every output for all rows of ``x``, in ``outputs`` order."""
        feed = self.feed(x)
        rows = batch_size(feed)
        step = self.fixed_batch
        if step is None or rows == step:
            return self._outputs(self._call(feed))
        parts = []
        for start in range(0, rows, step):
            chunk = {name: array[start : start + step] for name, array in feed.items()}
            short = step - batch_size(chunk)
            if short:  # the last, short chunk: pad to the compiled batch, keep the real rows
                chunk = {name: np.concatenate([a, np.repeat(a[-1:], short, 0)]) for name, a in chunk.items()}
            parts.append([output[: step - short] for output in self._outputs(self._call(chunk))])
        return [np.concatenate(outputs) for outputs in zip(*parts)]

    def prepare(self, x: Inputs) -> Callable[[], object]:
        """The call an app repeats, with its inputs already set: what the benchmark times."""
        feed = self.feed(x)
        return lambda: self._call(feed)

    def feed(self, x: Inputs) -> dict[str, np.ndarray]:
        """``x`` as {file input name: array in the file's dtype}; one array feeds the first input."""
        if not isinstance(x, Mapping):
            x = {self.inputs[0].name: x}
        feed = {}
        for position, spec in enumerate(self.inputs):
            array = x.get(spec.name)
            if array is None:
                array = _by_position(x, position, spec, self.inputs)
            feed[spec.name] = self._typed(np.asarray(array), spec)
        return feed

    def resize(self, batch: int) -> None:
        """Make the file run at ``batch`` rows per call; ValueError when its batch size is fixed."""
        if self.fixed_batch not in (None, batch):
            raise ValueError(f"the model's batch size is fixed at {self.fixed_batch}")

    def threads_applied(self) -> int | None:
        """The thread count read back from the runtime, where it exposes one."""
        return None

    def synchronize(self) -> None:
        """Wait for queued device work (GPU runtimes); nothing to do on the CPU."""

    def time_calls(self, call, runs: int, min_s: float, loop) -> list[float]:
        return loop(call, runs, min_s)

    def _call(self, feed: dict[str, np.ndarray]):
        raise NotImplementedError

    def _outputs(self, raw: list) -> list[np.ndarray]:
        arrays = zip((np.asarray(out) for out in raw), self.outputs)
        return [dequantize(a, spec) if spec.quantized else a.astype(np.float32) for a, spec in arrays]

    @staticmethod
    def _typed(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
        if spec.quantized:
            return np.ascontiguousarray(quantize(array.astype(np.float32), spec))
        return np.ascontiguousarray(array, dtype=np.dtype(spec.dtype))


def _by_position(x: Mapping[str, np.ndarray], position: int, spec: TensorSpec, specs: list[TensorSpec]) -> np.ndarray:
    """A converter may rename inputs (``args_0``); the model's own names then match by order."""
    names = list(x)
    if len(names) == len(specs):
        return x[names[position]]
    raise ValueError(f"no array for the file's input '{spec.name}' (given: {', '.join(names) or 'none'})")


def batch_size(feed: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(feed.values())))


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    info = np.iinfo(np.dtype(spec.dtype))
    return np.clip(np.round(x / spec.scale) + spec.zero_point, info.min, info.max).astype(spec.dtype)


def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    return ((q.astype(np.float32) - spec.zero_point) * spec.scale).astype(np.float32)


def open_runner(path: str | Path, threads: int | None = None, device: str = "cpu", batch: int | None = None) -> Runner:
    """The runner for a file, chosen by its suffix; ``batch`` resizes it where the format can."""
    from edgekd.formats import format_of  # the format table imports no runtime

    fmt = format_of(path)
    if fmt is None:
        from edgekd.formats import suffixes

        raise RuntimeLoadError(f"{path}: not a model file edgekd can run (expected {', '.join(suffixes())})")
    problem = file_problem(path)
    if problem:
        raise RuntimeLoadError(problem)
    runner = fmt.runner_class()(Path(path), threads=threads, device=device)
    if batch is not None:
        runner.resize(batch)
    return runner


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be a model at all (missing, empty), or None."""
    path = Path(path)
    if not path.is_file():
        return f"{path}: no such file"
    if path.stat().st_size == 0:
        return f"{path}: empty file"
    return None
