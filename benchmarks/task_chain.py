"""The shape the task studies share (detection, segmentation): a student trained on labels alone and one
distilled, over seeds, then the seed-0 distilled one pruned, QAT'd, shipped as INT8 ONNX and TFLite and
benched on mobile-like; each row of the table read from the ledgers with the task's own metrics."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import edgekd as ek
from benchmarks.results_io import markdown_table, save
from benchmarks.study_args import parse, study_parser

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


@dataclass
class CanvasStudy:
    """A task study on ``digit-canvases``: which reference model at which widths, judged by which metrics."""

    name: str
    model: str
    widths: tuple[int, int]  # teacher, student
    metrics: dict[str, str]  # result key -> column title; the first is the task's monitor
    canvas: dict  # options of the data source beyond the sizes (targets, items)
    teacher_epochs_quick: int
    student_lr: tuple[float, float]  # quick, full
    student_epochs_quick: int = 3  # enough for the INT8 gate to find decided logits at toy size
    prepare: Callable[[ek.data.DataBundle], ek.data.DataBundle] = lambda data: data


def canvas_study_main(spec: CanvasStudy, doc: str, argv: list[str] | None) -> None:
    """Parse the study's options, run the chain at toy (``--quick``) or full size, save and print the table."""
    parser = study_parser(doc)
    parser.add_argument("--seeds", type=int, default=3)
    args = parse(parser, argv, {"seeds": 1})
    started = time.perf_counter()
    train, test, size, items = (300, 60, 32, 1) if args.quick else (4000, 1000, 64, 3)
    teacher_epochs, student_epochs = (spec.teacher_epochs_quick, spec.student_epochs_quick) if args.quick else (12, 8)
    data = ek.data.source("digit-canvases")(train=train, test=test, size=size, max_digits=items, batch_size=32,
                                            **spec.canvas)  # fmt: skip
    data = spec.prepare(data)
    torch.manual_seed(0)
    teacher = ek.models.get(spec.model, width=spec.widths[0])
    ek.pretrain(teacher, data, ek.TrainConfig(epochs=teacher_epochs, lr=0.005 if not args.quick else 0.01), seed=0,
                device="cpu", use_cache=False, quiet=True)  # fmt: skip
    metrics = tuple(spec.metrics)
    study = ChainStudy(teacher, lambda: ek.models.get(spec.model, width=spec.widths[1]), data, student_epochs,
                       spec.student_lr[0 if args.quick else 1], 0.3, metrics, bench=not args.quick)  # fmt: skip
    rows, kd_gain = run_chain(study, args.seeds)
    second = metrics[1]
    kd_gain["strict_points"] = 100 * (rows["student, distilled"][second] - rows["student, labels only"][second])
    shown = {key: (lambda v: f"{100 * v:.2f}%") if key.endswith("accuracy") else (lambda v: f"{v:.3f}")
             for key in metrics}  # fmt: skip
    table = markdown_table(
        ["model", *spec.metrics.values(), "params", "size", "p50 mobile-like"],
        [[name, *(shown[m](r[m]) for m in metrics), f"{r['params']:,}", f"{r['size_bytes'] / 1024:.1f} KiB",
          f"{r['mobile_like_p50_ms']:.3f} ms" if r.get("mobile_like_p50_ms") else "-"] for name, r in rows.items()],
    )  # fmt: skip
    first, second_title = spec.metrics[metrics[0]], spec.metrics[second]
    table += (
        f"\n{train:,} training / {test:,} test canvases of {size}x{size}, up to {items} item(s) each; students are "
        f"the mean of {args.seeds} seed(s); KD gain {kd_gain['mean_points']:+.1f} {first} points "
        f"(per seed: {', '.join(f'{g:+.1f}' for g in kd_gain['per_seed_points'])}), {kd_gain['strict_points']:+.1f} "
        f"{second_title} points.\n"
    )
    results = {"rows": rows, "kd_gain": kd_gain, "seeds": args.seeds, "train": train, "test": test, "canvas": size,
               "max_digits": items, "epochs": {"teacher": teacher_epochs, "student": student_epochs}}  # fmt: skip
    save(spec.name, results, table, started, quick=args.quick)
    print(table)
