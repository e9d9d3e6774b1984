"""One measurement in a fresh process: one artifact, one target, one batch size.

Run as ``python -m edgekd.bench.worker SPEC.json RESULT.json``. The process pins itself, caps its
memory, imports the runtime (and nothing heavier: torch only for ``.pt2`` files), then reports init
time, first-inference time, the latency statistics of the timed runs, its peak memory over its own
baseline after imports, and the accuracy of the file on the test inputs it was given. Nothing else
runs in this process, so the figures are the file's own.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from edgekd.bench import memory
from edgekd.bench.stats import histogram, summarize
from edgekd.errors import first_line
from edgekd.formats import max_input_shapes
from edgekd.utils.quiet import quiet_third_party


def pin(cores: int | None) -> list[int]:
    """Restrict this process to the first ``cores`` allowed CPUs; returns the affinity read back."""
    if not hasattr(os, "sched_setaffinity"):
        return []
    if cores:
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, allowed[:cores])
    return sorted(os.sched_getaffinity(0))


def timed_loop(call, min_runs: int, min_s: float) -> list[float]:
    """Call until both ``min_runs`` calls and ``min_s`` seconds are done; per-call times in ms."""
    times = []
    clock = time.perf_counter_ns
    deadline = clock() + int(min_s * 1e9)
    while len(times) < min_runs or clock() < deadline:
        start = clock()
        call()
        times.append((clock() - start) / 1e6)
    return times


def measure(spec: dict) -> dict:
    affinity = pin(spec.get("pin_cores"))
    cap = memory.apply_cap(spec.get("memory_limit_mb"))
    from edgekd.formats import format_of
    from edgekd.formats.runner import open_runner

    fmt = format_of(spec["artifact"])
    fmt.import_runtime()  # after pinning and the cap, before the baseline
    baseline = memory.rss_bytes()
    started = time.perf_counter()
    runner = open_runner(spec["artifact"], spec["threads"], spec["device"], spec["batch"])
    init_s = time.perf_counter() - started
    x = _inputs(spec, runner.inputs)
    call = runner.prepare(x)
    started = time.perf_counter()
    call()
    runner.synchronize()
    first_ms = (time.perf_counter() - started) * 1e3
    timed_loop(call, spec["warmup_runs"], spec["warmup_s"])
    times = runner.time_calls(call, spec["runs"], spec["min_s"], timed_loop)
    peak = memory.peak_rss_bytes()
    first_input = next(iter(x.values()))
    result = {
        "init_s": init_s,
        "first_inference_ms": first_ms,
        "latency": summarize(times),
        "latency_histogram": histogram(times),
        "peak_memory_bytes": max(peak - baseline, 0),
        "baseline_rss_bytes": baseline,
        "memory_cap": cap,
        "affinity": affinity,
        "threads": spec["threads"],
        "threads_read_back": runner.threads_applied(),  # None: LiteRT has no API to read it back
        "input_shape": list(first_input.shape),
        "input_dtype": runner.inputs[0].dtype,
        "inputs": {name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in runner.feed(x).items()},
    }
    if spec.get("data"):
        judged = _accuracy(runner, spec["data"], spec["batch"], spec.get("outputs"))
        result["accuracy" if "top1" in judged else "scored"] = judged
    if cap.get("limit_bytes") and cap["method"] == "rss-check" and peak > cap["limit_bytes"]:
        result["over_memory_cap"] = True
    return result


def _inputs(spec: dict, inputs: list) -> dict[str, np.ndarray]:
    """The rows the timed call runs: the first test inputs when data is given, else seeded values."""
    batch = spec["batch"]
    if spec.get("data"):
        arrays = _data_inputs(spec["data"], inputs)
        feed = {}
        for name, array in arrays.items():
            head = array[:batch]  # only the rows timed are read: the file is memory-mapped, not loaded
            if len(head) < batch:
                head = np.concatenate([head] * -(-batch // len(head)))[:batch]
            feed[name] = np.ascontiguousarray(head)
        return feed
    generator = np.random.default_rng(0)
    feed = {}
    longest = max_input_shapes(spec["artifact"])  # free axes timed at their longest
    for model_input in inputs:
        sizes = longest.get(model_input.name, [1] * (len(model_input.shape) - 1))
        shape = [batch, *[d if isinstance(d, int) and d > 0 else m for d, m in zip(model_input.shape[1:], sizes)]]
        integer = np.issubdtype(np.dtype(model_input.dtype), np.integer) and not model_input.quantized
        # token ids and masks of 1 are valid for any vocabulary; images get seeded noise
        feed[model_input.name] = (
            np.ones(shape, np.dtype(model_input.dtype))
            if integer
            else generator.standard_normal(shape).astype(np.float32)
        )
    return feed


def _data_inputs(data: dict, inputs: list) -> dict[str, np.ndarray]:
    """The saved test inputs, one memory-mapped array per model input, checked against the file."""
    arrays = {name: np.load(path, mmap_mode="r") for name, path in data["inputs"].items()}
    if len(arrays) != len(inputs):
        raise ValueError(f"the data has {len(arrays)} input(s) ({', '.join(arrays)}), the model {len(inputs)}")
    for (name, array), model_input in zip(arrays.items(), inputs):
        expected = [d if isinstance(d, int) and d > 0 else None for d in model_input.shape[1:]]
        given = list(array.shape[1:])
        if len(given) != len(expected) or any(e is not None and e != g for e, g in zip(expected, given)):
            shown = [e if e is not None else "any" for e in expected]
            what = "inputs are" if len(arrays) == 1 else f"input '{name}' is"
            raise ValueError(f"the data's {what} shaped {given}, the model expects {shown}")
    return arrays


def _accuracy(runner, data: dict, batch: int, outputs_path: str | None = None) -> dict:
    """A classifier's top-1 here; for another task (``outputs_path`` given) every output of the file is
    saved there (an ``.npz``, in the file's order) and the parent judges them by the task's own metrics."""
    arrays, y = _data_inputs(data, runner.inputs), np.load(data["y"])
    correct, parts = 0, []
    for start in range(0, len(y), batch):
        chunk = {name: np.ascontiguousarray(a[start : start + batch]) for name, a in arrays.items()}
        if outputs_path is None:
            correct += int((runner.run(chunk).argmax(-1) == y[start : start + batch]).sum())
        else:
            parts.append([output.astype(np.float32) for output in runner.run_all(chunk)])
    if outputs_path is not None:
        np.savez(outputs_path, *[np.concatenate(column) for column in zip(*parts)])
        return {"samples": int(len(y)), "outputs": outputs_path}
    return {"top1": correct / len(y), "samples": int(len(y))}


def main() -> None:
    quiet_third_party()  # this process is ours: its stderr carries no converter chatter
    spec_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    spec = json.loads(spec_path.read_text())
    try:
        payload = {"ok": True, "result": measure(spec)}
    except Exception as exc:  # noqa: BLE001 - the parent reports it as one line for this artifact
        payload = {"ok": False, "error": first_line(exc), "traceback": traceback.format_exc()[-2000:]}
    out_path.write_text(json.dumps(payload))


if __name__ == "__main__":
    main()
