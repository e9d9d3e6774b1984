"""The shape the task studies share (detection, segmentation): a student trained on labels alone and one
distilled, over seeds, then the seed-0 distilled one pruned, QAT'd, shipped as INT8 ONNX and TFLite and
benched on mobile-like; each row of the table read from the ledgers with the task's own metrics."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import edgekd as ek

FILE_ROWS = (("prune", "student, distilled + pruned (FP32)"), ("onnx", "INT8 model.onnx (ONNX Runtime)"),
             ("tflite", "INT8 model.tflite (LiteRT)"))  # fmt: skip


@dataclass
class ChainStudy:
    teacher: nn.Module
    student: Callable[[], nn.Module]  # a fresh student per run
    data: ek.data.DataBundle
    epochs: int
    lr: float
    prune_ratio: float
    metrics: tuple[str, ...]
    bench: bool


def run_chain(study: ChainStudy, seeds: int) -> tuple[dict[str, dict], dict]:
    """The table's rows (teacher, both students as seed means, the pruned model and both files) and the
    KD gain in points of the task's monitored metric, per seed."""
    students: dict[str, list[dict]] = {"labels only": [], "distilled": []}
    shipped = None
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(seeds):
            distill = ek.Distill(epochs=study.epochs, lr=study.lr, temperature=4.0, alpha=0.5)
            for name, stage in (("labels only", ek.Train(epochs=study.epochs, lr=study.lr)), ("distilled", distill)):
                last = name == "distilled" and seed == 0
                chain = [stage]
                if last:  # the shipped chain, once: prune, QAT, both INT8 files, the bench
                    chain += [ek.Prune(ratio=study.prune_ratio, round_to=None, epochs=max(1, study.epochs // 2),
                                       lr=study.lr / 2),
                              ek.Quantize(epochs=max(1, study.epochs // 4), lr=0.0005)]  # fmt: skip
                torch.manual_seed(seed)
                result = ek.Pipeline(
                    study.teacher, study.student(), study.data, chain, out_dir=Path(scratch) / f"{name}-{seed}",
                    seed=seed, device="cpu", quiet=True, export=["onnx", "tflite"] if last else (),
                    targets=["mobile-like"] if last and study.bench else (),
                ).run()  # fmt: skip
                ledger = {row["stage"]: row for row in result.report["ledger"]}
                students[name].append(_scores(ledger[stage.name], study.metrics))
                if last:
                    shipped = result.report
    ledger = {row["stage"]: row for row in shipped["ledger"]}
    rows = {"teacher (FP32)": _sized(ledger["teacher"], study.metrics)}
    for name, runs in students.items():
        rows[f"student, {name}"] = {m: statistics.mean(r[m] for r in runs) for m in study.metrics}
        student = ledger["student"]
        rows[f"student, {name}"].update(per_seed=runs, params=student["params"], macs=student["macs"],
                                        size_bytes=ledger["distill"]["size_bytes"])  # fmt: skip
    latency = {r["artifact"]: r["latency"]["p50_ms"] for r in (shipped.get("bench") or {}).get("results", [])
               if r["status"] == "ok" and r["target"] == "mobile-like"}  # fmt: skip
    for stage, label in FILE_ROWS:
        rows[label] = {**_sized(ledger[stage], study.metrics), "mobile_like_p50_ms": latency.get(f"model.{stage}")}
    monitor = study.data.task.monitor
    gains = [100 * (d[monitor] - p[monitor]) for d, p in zip(students["distilled"], students["labels only"])]
    return rows, {"metric": monitor, "mean_points": statistics.mean(gains), "per_seed_points": gains}


def _scores(row: dict, metrics: tuple[str, ...]) -> dict:
    return {m: row["test_metrics"][m] for m in metrics}


def _sized(row: dict, metrics: tuple[str, ...]) -> dict:
    return {**_scores(row, metrics), "params": row["params"], "size_bytes": row["size_bytes"], "macs": row["macs"]}
