"""Detection through the chain: digits on 64x64 canvases, a CenterNet-style teacher distilled into a small
student, pruned, QAT, INT8 ONNX + TFLite with both outputs (heatmaps and boxes); mAP@0.5 on every row.

Data: ``ek.data.source("digit-canvases")(targets="boxes")``: one to three MNIST digits pasted per canvas,
never overlapping, each with its exact box and class (0-9); seeded, test digits from MNIST's test images.
Teacher and student are ``edgekd``'s reference ``centernet`` (stride-4 Conv-BN-ReLU features, a class
heatmap head and a box-distance head) at widths 16 and 6. The student is trained on the boxes alone and
distilled (the teacher's heatmaps as soft targets, its boxes where it sees an object, plus the label loss),
each over ``--seeds`` seeds; the seed-0 distilled student is then pruned (30% of its channels, recovered by
distillation), QAT'd and written as INT8 ONNX and TFLite, whose mAP is measured on the files in their
runtimes (decoded from both outputs) and whose latency ``edgekd bench`` measures on ``mobile-like``.
``--quick`` trains a few epochs on 32x32 canvases. Run from the repository root:

    python -m benchmarks.run detect_digits [--quick] [--seeds 3]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

import edgekd as ek
from benchmarks.results_io import markdown_table, save
from benchmarks.study_args import parse, study_parser

TEACHER_WIDTH, STUDENT_WIDTH = 16, 6
METRICS = ("map50", "map50_95")


def scores(row: dict) -> dict:
    return {m: row["test_metrics"][m] for m in METRICS}


def main(argv: list[str] | None = None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    args = parse(parser, argv, {"seeds": 1})
    started = time.perf_counter()
    train, test, size, digits = (300, 60, 32, 1) if args.quick else (4000, 1000, 64, 3)
    teacher_epochs, student_epochs = (4, 3) if args.quick else (12, 8)
    data = ek.data.source("digit-canvases")(train=train, test=test, size=size, max_digits=digits, batch_size=32,
                                            targets="boxes")  # fmt: skip
    torch.manual_seed(0)
    teacher = ek.models.get("centernet", width=TEACHER_WIDTH)
    ek.pretrain(teacher, data, ek.TrainConfig(epochs=teacher_epochs, lr=0.005 if not args.quick else 0.01), seed=0,
                device="cpu", use_cache=False, quiet=True)  # fmt: skip
    rows: dict[str, dict] = {}
    students: dict[str, list[dict]] = {"labels only": [], "distilled": []}
    shipped = None
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(args.seeds):
            distill = ek.Distill(epochs=student_epochs, lr=0.01, temperature=4.0, alpha=0.5)
            variants = (("labels only", ek.Train(epochs=student_epochs, lr=0.01)), ("distilled", distill))
            for name, stage in variants:
                chain = [stage]
                last = name == "distilled" and seed == 0
                bench = ["mobile-like"] if last and not args.quick else ()
                if last:  # the shipped chain, once: prune, QAT, both INT8 files, the bench
                    chain += [ek.Prune(ratio=0.3, round_to=None, epochs=max(1, student_epochs // 2), lr=0.005),
                              ek.Quantize(epochs=max(1, student_epochs // 4), lr=0.0005)]  # fmt: skip
                torch.manual_seed(seed)
                result = ek.Pipeline(
                    teacher, ek.models.get("centernet", width=STUDENT_WIDTH), data, chain,
                    out_dir=Path(scratch) / f"{name}-{seed}", seed=seed, device="cpu", quiet=True,
                    export=["onnx", "tflite"] if last else (), targets=bench,
                ).run()  # fmt: skip
                ledger = {row["stage"]: row for row in result.report["ledger"]}
                students[name].append(scores(ledger[stage.name]))
                if last:
                    shipped = result.report
    ledger = {row["stage"]: row for row in shipped["ledger"]}
    rows["teacher (FP32)"] = {**scores(ledger["teacher"]), "params": ledger["teacher"]["params"],
                              "size_bytes": ledger["teacher"]["size_bytes"]}  # fmt: skip
    for name, runs in students.items():
        rows[f"student, {name}"] = {m: statistics.mean(r[m] for r in runs) for m in METRICS}
        rows[f"student, {name}"].update(per_seed=runs, params=ledger["student"]["params"],
                                        size_bytes=ledger["distill"]["size_bytes"])  # fmt: skip
    latency = {r["artifact"]: r["latency"]["p50_ms"] for r in (shipped.get("bench") or {}).get("results", [])
               if r["status"] == "ok" and r["target"] == "mobile-like"}  # fmt: skip
    for stage, label in (("prune", "student, distilled + pruned (FP32)"), ("onnx", "INT8 model.onnx (ONNX Runtime)"),
                         ("tflite", "INT8 model.tflite (LiteRT)")):  # fmt: skip
        row = ledger[stage]
        file = f"model.{stage}" if stage in ("onnx", "tflite") else None
        rows[label] = {**scores(row), "params": row["params"], "size_bytes": row["size_bytes"],
                       "mobile_like_p50_ms": latency.get(file)}  # fmt: skip
    gains = [d["map50"] - p["map50"] for d, p in zip(students["distilled"], students["labels only"])]
    kd_gain = {"mean_points": 100 * statistics.mean(gains), "per_seed_points": [100 * g for g in gains]}
    table = markdown_table(
        ["model", "mAP@0.5", "mAP@0.5:0.95", "params", "size", "p50 mobile-like"],
        [[name, f"{r['map50']:.3f}", f"{r['map50_95']:.3f}", f"{r['params']:,}" if "params" in r else "-",
          f"{r['size_bytes'] / 1024:.1f} KiB" if "size_bytes" in r else "-",
          f"{r['mobile_like_p50_ms']:.3f} ms" if r.get("mobile_like_p50_ms") else "-"] for name, r in rows.items()],
    )  # fmt: skip
    table += (
        f"\n{train:,} training / {test:,} test canvases of {size}x{size}, up to {digits} digit(s) each; students are "
        f"the mean of {args.seeds} seed(s); KD gain {kd_gain['mean_points']:+.1f} mAP@0.5 points "
        f"(per seed: {', '.join(f'{g:+.1f}' for g in kd_gain['per_seed_points'])}).\n"
    )
    results = {"rows": rows, "kd_gain": kd_gain, "seeds": args.seeds, "train": train, "test": test, "canvas": size,
               "max_digits": digits, "epochs": {"teacher": teacher_epochs, "student": student_epochs}}  # fmt: skip
    save("detect_digits", results, table, started, quick=args.quick)
    print(table)


if __name__ == "__main__":
    main()
