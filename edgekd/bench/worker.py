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
from edgekd.bench.stats import summarize
from edgekd.errors import first_line


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
    from edgekd.bench.sessions import import_runtime, open_session

    import_runtime(spec["runtime"])  # after pinning and the cap, before the baseline
    baseline = memory.rss_bytes()
    started = time.perf_counter()
    session = open_session(spec["artifact"], spec["runtime"], spec["device"], spec["threads"], spec["batch"])
    init_s = time.perf_counter() - started
    x = _inputs(spec, session.input_shape)
    call = session.prepare(x)
    started = time.perf_counter()
    call()
    session.synchronize()
    first_ms = (time.perf_counter() - started) * 1e3
    timed_loop(call, spec["warmup_runs"], spec["warmup_s"])
    times = session.time_calls(call, spec["runs"], spec["min_s"], timed_loop)
    peak = memory.peak_rss_bytes()
    result = {
        "init_s": init_s,
        "first_inference_ms": first_ms,
        "latency": summarize(times),
        "peak_memory_bytes": max(peak - baseline, 0),
        "baseline_rss_bytes": baseline,
        "memory_cap": cap,
        "affinity": affinity,
        "threads": spec["threads"],
        "threads_read_back": session.threads_applied(),  # None: LiteRT has no API to read it back
        "input_shape": list(x.shape),
        "input_dtype": session.input_dtype,
    }
    if spec.get("data"):
        result["accuracy"] = _accuracy(session, spec["data"])
    if cap.get("limit_bytes") and cap["method"] == "rss-check" and peak > cap["limit_bytes"]:
        result["over_memory_cap"] = True
    return result


def _inputs(spec: dict, model_shape: list) -> np.ndarray:
    shape = [spec["batch"], *[d if isinstance(d, int) and d > 0 else 1 for d in model_shape[1:]]]
    if spec.get("data"):
        x = np.load(spec["data"]["x"], mmap_mode="r")
        if list(x.shape[1:]) != shape[1:]:
            raise ValueError(f"the data's inputs are shaped {list(x.shape[1:])}, the model expects {shape[1:]}")
        head = x[: shape[0]]  # only the rows timed are read: the file is memory-mapped, not loaded
        if len(head) < shape[0]:
            head = np.concatenate([head] * -(-shape[0] // len(head)))[: shape[0]]
        return np.ascontiguousarray(head, dtype=np.float32)
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _accuracy(session, data: dict) -> dict:
    x, y = np.load(data["x"], mmap_mode="r"), np.load(data["y"])
    correct = 0
    for start in range(0, len(x), session.batch):
        chunk = np.ascontiguousarray(x[start : start + session.batch], dtype=np.float32)
        correct += int((session.predict(chunk).argmax(-1) == y[start : start + session.batch]).sum())
    return {"top1": correct / len(y), "samples": int(len(y))}


def main() -> None:
    spec_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    spec = json.loads(spec_path.read_text())
    try:
        payload = {"ok": True, "result": measure(spec)}
    except Exception as exc:  # noqa: BLE001 - the parent reports it as one line for this artifact
        payload = {"ok": False, "error": first_line(exc), "traceback": traceback.format_exc()[-2000:]}
    out_path.write_text(json.dumps(payload))


if __name__ == "__main__":
    main()
