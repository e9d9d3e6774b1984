"""The benchmark harness: every artifact on every target, each measurement in a fresh subprocess.

``run`` checks the request first (targets, files), then measures what it can: a file that is missing,
truncated or not a model, or whose input the data does not fit, gets an error line in the report
and the other files are still measured. A GPU target without a GPU is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edgekd.bench import memory
from edgekd.bench.estimate import estimates_for
from edgekd.bench.input_range import artifact_normalization, range_warning
from edgekd.bench.stats import unstable
from edgekd.data.sources import DataBundle, first_samples
from edgekd.errors import ConfigError, DataError
from edgekd.formats import files_of, format_of, manifest_path, runtime_of, suffixes
from edgekd.formats.runner import file_problem
from edgekd.inputs import named_inputs
from edgekd.targets import Target, load_target
from edgekd.utils.environment import machine_facts
from edgekd.utils.progress import bars_hidden, say, steps
from edgekd.utils.version import __version__

BENCH_SCHEMA_VERSION = 1
WORKER_TIMEOUT_S = 600


@dataclass
class Job:
    artifact: Path
    runtime: str
    target: Target
    batch: int


def gpu_available() -> tuple[bool, str]:
    try:
        import torch

        if torch.cuda.is_available():
            return True, torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        pass
    return False, "no CUDA GPU visible to PyTorch on this machine"


def run(
    artifacts: list[str | Path],
    targets: list[str | Path | Target] = ("cpu",),
    data: DataBundle | None = None,
    quiet: bool = False,
    runs: int | None = None,
    min_s: float | None = None,
    threads: int | None = None,
    accuracy_samples: int | None = None,
) -> dict:
    """Measure each artifact on each target, each in a fresh process; returns the report.

    Args:
        artifacts: ``.onnx``, ``.tflite`` or ``.pt2`` files.
        targets: ``cpu``, ``mobile-like``, ``gpu``, a target TOML file or a
            :class:`~edgekd.targets.Target` (threads, pinned cores, memory cap, batch sizes).
        data: when given, each file's top-1 accuracy on its test inputs (and real inputs for timing).
        quiet: no progress lines.
        runs: override the target's timed runs (at least).
        min_s: override the target's timed seconds (at least).
        threads: override the target's thread count.
        accuracy_samples: how many test samples the accuracy is measured on (default: all).
    Write it with :func:`edgekd.report.write_report` (JSON, Markdown and a self-contained HTML).
    """
    if isinstance(artifacts, (str, Path)):
        artifacts = [artifacts]  # one file named alone
    if isinstance(targets, (str, Path, Target)):
        targets = [targets]
    resolved = [t if isinstance(t, Target) else load_target(t) for t in targets]
    if not artifacts:
        raise ConfigError("nothing to benchmark: give at least one .onnx, .tflite or .pt2 file")
    started = time.perf_counter()
    entries: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="edgekd-bench-") as scratch:
        data_files = _save_data(data, Path(scratch), accuracy_samples) if data is not None else None
        jobs, skipped = _plan([Path(a) for a in artifacts], resolved)
        errors = [entry["error"] for entry in skipped if entry["status"] == "error"]
        if errors and len(errors) == len(skipped) and not jobs:  # not one file can be measured: no empty report
            raise ConfigError(f"nothing to benchmark: {errors[0]}")
        entries.extend(skipped)
        data_warnings = _data_warnings({job.artifact for job in jobs}, data_files)
        for artifact, warning in data_warnings.items():
            _progress(quiet, f"[bench] warning: {artifact.name}: {warning}")
        with bars_hidden(quiet):
            for number, job in enumerate(steps(jobs, "bench"), 1):
                _progress(quiet, f"[bench {number}/{len(jobs)}] {job.target.name}: {job.artifact.name} "
                                 f"({job.runtime}, batch {job.batch})")  # fmt: skip
                entry = _measure(job, data_files, Path(scratch), runs, min_s, threads)
                if entry.get("scored"):
                    try:
                        entry["metrics"] = task_metrics(data, entry.pop("scored"), data_files)
                    except DataError as exc:  # outputs the data's task cannot judge: this file's row says why
                        entry.update(status="error", error=f"{job.artifact.name}: {exc}")
                if entry["status"] == "ok" and job.artifact in data_warnings:
                    entry["warnings"].append(data_warnings[job.artifact])
                entries.append(entry)
    _progress(quiet, f"[bench] done: {len(jobs)} measurements in {time.perf_counter() - started:.0f} s")
    return {
        "schema_version": BENCH_SCHEMA_VERSION,
        "kind": "edgekd-bench",
        "edgekd_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - started, 2),
        "machine": machine_facts(),
        "data": data.describe() if data is not None else None,
        "targets": [_target_facts(t) for t in resolved],
        "artifacts": [_artifact_facts(Path(a)) for a in artifacts],
        "results": entries,
        "estimates": estimates_for([Path(a) for a in artifacts], resolved),
    }


def _plan(artifacts: list[Path], targets: list[Target]) -> tuple[list[Job], list[dict]]:
    jobs, skipped = [], []
    has_gpu, gpu_reason = gpu_available()
    for target in targets:
        for artifact in artifacts:
            runtime = runtime_of(artifact)
            base = {"artifact": artifact.name, "path": str(artifact), "target": target.name, "runtime": runtime}
            problem = _file_problem(artifact, runtime)
            if problem:
                skipped.append({**base, "status": "error", "error": problem})
                continue
            if runtime not in target.runtimes:
                continue  # the target does not run this kind of file (e.g. LiteRT on a GPU target)
            if target.device == "cuda" and not has_gpu:
                skipped.append({**base, "status": "skipped", "reason": gpu_reason})
                continue
            fixed = format_of(artifact).fixed_batch(artifact)
            for batch in target.batch_sizes:
                if fixed is not None and batch != fixed:
                    reason = f"the file's batch size is fixed at {fixed}; batch {batch} not measured"
                    skipped.append({**base, "batch": batch, "status": "skipped", "reason": reason})
                else:
                    jobs.append(Job(artifact, runtime, target, batch))
    return jobs, skipped


def _file_problem(path: Path, runtime: str | None) -> str | None:
    if runtime is None:
        return f"{path}: not a model file edgekd can benchmark (expected {', '.join(suffixes())})"
    return file_problem(path)


def _measure(job: Job, data_files: dict | None, scratch: Path, runs, min_s, threads) -> dict:
    target = job.target
    thread_count = threads or target.thread_count
    spec = {
        "artifact": str(job.artifact),
        "runtime": job.runtime,
        "device": target.device,
        "threads": thread_count,
        "pin_cores": target.pin_cores,
        "memory_limit_mb": target.memory_limit_mb,
        "batch": job.batch,
        "warmup_runs": target.warmup_runs,
        "warmup_s": target.warmup_s,
        "runs": runs or target.runs,
        "min_s": target.min_s if min_s is None else min_s,
        "data": data_files,
    }
    stem = f"{job.artifact.name}-{target.name}-{job.batch}"
    if data_files and data_files.get("task", "classification") != "classification":
        spec["outputs"] = str(scratch / f"{stem}.outputs.npz")  # judged here, by the task's own metrics
    spec_path, out_path = scratch / f"{stem}.spec.json", scratch / f"{stem}.out.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, **{name: str(thread_count) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    base = {
        "artifact": job.artifact.name,
        "path": str(job.artifact),
        "target": target.name,
        "runtime": job.runtime,
        "batch": job.batch,
    }
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "edgekd.bench.worker", str(spec_path), str(out_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {**base, "status": "error", "error": f"measurement took over {WORKER_TIMEOUT_S} s"}
    if not out_path.exists():
        last = (completed.stderr.strip().splitlines() or [f"exit code {completed.returncode}"])[-1]
        killed = completed.returncode in (-9, 137)
        reason = "killed (memory cap reached?)" if killed else last[:300]
        return {**base, "status": "error", "error": f"the benchmark process died: {reason}"}
    payload = json.loads(out_path.read_text())
    if not payload["ok"]:
        return {**base, "status": "error", "error": f"{job.artifact}: {payload['error']}"}
    result = payload["result"]
    memory.remove_group(result["memory_cap"])
    warnings = []
    if unstable(result["latency"]):
        warnings.append(f"unstable timing: coefficient of variation {100 * result['latency']['cv']:.0f}% > 10%")
    if result.get("over_memory_cap"):
        warnings.append("peak memory over the target's cap (checked after the run)")
    return {**base, "status": "ok", **result, "warnings": warnings}


def _save_data(data: DataBundle, folder: Path, limit: int | None) -> dict:
    x, y = first_samples(data.test, limit)
    inputs = {}
    for position, (name, tensor) in enumerate(named_inputs(x).items()):
        inputs[name] = str(folder / f"x{position}.npy")
        array = tensor.numpy()
        np.save(inputs[name], array.astype(np.float32) if array.dtype.kind == "f" else array)
    classes = data.task.name == "classification"
    np.save(folder / "y.npy", y.numpy().astype(np.int64) if classes else y.numpy())
    return {"inputs": inputs, "y": str(folder / "y.npy"), "name": data.name, "task": data.task.name}


def task_metrics(data: DataBundle, scored: dict, data_files: dict) -> dict:
    """The task's metrics of a file's saved outputs (every scalar one, and which the task monitors)."""
    import torch

    from edgekd.export.manifest import scalar_metrics

    with np.load(scored["outputs"]) as saved:
        arrays = [torch.from_numpy(saved[f"arr_{i}"]) for i in range(len(saved.files))]
    outputs = data.task.output_of(arrays) if data.task.structured else arrays[0]  # a detector's: every output
    targets = torch.from_numpy(np.load(data_files["y"]))
    data.task.check_output(outputs[:8], targets[:8], data.num_classes, f"the file (on data '{data.name}')")
    found = data.task.metrics(outputs, targets, data.num_classes)
    scalars = scalar_metrics(found)
    return {"metric": data.task.monitor, "value": found.get(data.task.monitor), **scalars, "samples": scored["samples"]}


def _data_warnings(artifacts: set[Path], data_files: dict | None) -> dict[Path, str]:
    """Per file, a warning when the data's first input is not normalized the way its manifest says."""
    if not data_files:
        return {}
    first = np.load(next(iter(data_files["inputs"].values())))
    found = {a: range_warning(artifact_normalization(a), first) for a in sorted(artifacts)}
    return {artifact: warning for artifact, warning in found.items() if warning}


def _target_facts(target: Target) -> dict:
    facts = {k: v for k, v in vars(target).items() if k != "reference_phones"}
    facts["threads_used"] = target.thread_count
    return facts


def _artifact_facts(path: Path) -> dict:
    facts = {"name": path.name, "path": str(path), "runtime": runtime_of(path)}
    if path.is_file():
        facts["size_bytes"] = sum(part.stat().st_size for part in files_of(path))
        manifest = manifest_path(path)
        if manifest.is_file():
            try:
                content = json.loads(manifest.read_text())
                facts["precision"] = content.get("precision")
            except (OSError, ValueError):
                pass
    return facts


def _progress(quiet: bool, line: str) -> None:
    if not quiet:
        say(line)
