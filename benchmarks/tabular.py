"""An imbalanced tabular scorer (fraud-like) through the chain: macro-F1 and PR-AUC kept into the INT8 files.

Data: scikit-learn's ``make_classification`` (seeded): 30 standardized features, 8 of them informative, 5% of
the samples positive, 1% of the labels flipped; 20,000 training and 5,000 test rows. The teacher (MLP
30-256-256-2) trains with class weights counted on the training labels ("balanced"), and every model is
judged on macro-F1, the metric that picks each stage's best epoch: accuracy would reward answering "legit"
always (95%). A teacher trained without the weights is shown beside it. The student (MLP 30-32-32-2) is
trained on labels alone and distilled from the teacher, each over ``--seeds`` seeds; the distilled one is
then pruned (half its hidden units, recovered by distillation), QAT'd and written as INT8 ONNX and TFLite,
whose metrics are measured on the files in their runtimes and whose latency ``edgekd bench`` measures on
``mobile-like``. Run from the repository root:

    python -m benchmarks.run tabular [--quick] [--seeds 3]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from torch import nn

import edgekd as ek
from benchmarks.results_io import markdown_table, save
from benchmarks.study_args import parse, study_parser

FEATURES, POSITIVE_SHARE = 30, 0.05
TEACHER_EPOCHS, STUDENT_EPOCHS = 12, 12
METRICS = ("macro_f1", "pr_auc", "accuracy")


def fraud_like(train: int, test: int, seed: int = 0) -> ek.data.DataBundle:
    """The seeded imbalanced data, standardized with the training rows' statistics."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=train + test, n_features=FEATURES, n_informative=8, n_redundant=6,
                               weights=[1 - POSITIVE_SHARE], flip_y=0.01, class_sep=0.8, random_state=seed)  # fmt: skip
    x = x.astype(np.float32)
    task = ek.tasks.get("classification", monitor="macro_f1", class_weights="balanced")
    return ek.data.from_arrays(x[:train], y[:train], x[train:], y[train:], labels=["legit", "fraud"], batch_size=256,
                               name="fraud-like", task=task)  # fmt: skip


def mlp(hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 2))  # fmt: skip


def scores(row: dict) -> dict:
    """A ledger row's metrics of interest, and the rare class's recall."""
    metrics = row["test_metrics"]
    return {**{m: metrics.get(m) for m in METRICS}, "fraud_recall": metrics["per_class_recall"][1]}


def main(argv: list[str] | None = None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    args = parse(parser, argv, {"seeds": 1})
    started = time.perf_counter()
    train, test = (3000, 1000) if args.quick else (20000, 5000)
    epochs = (2, 2) if args.quick else (TEACHER_EPOCHS, STUDENT_EPOCHS)
    data = fraud_like(train, test)
    plain_data = ek.data.from_arrays(data.train.x.numpy(), data.train.y.numpy(), data.test.x.numpy(),
                                     data.test.y.numpy(), labels=data.labels, batch_size=256, name="fraud-like",
                                     task=ek.tasks.get("classification", monitor="macro_f1"))  # fmt: skip
    teacher_config = ek.TrainConfig(epochs=epochs[0], lr=0.002)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        plain = mlp(256)
        ek.pretrain(plain, plain_data, teacher_config, seed=0, device="cpu", use_cache=False, quiet=True)
        teacher = mlp(256)
        ek.pretrain(teacher, data, teacher_config, seed=0, device="cpu", use_cache=False, quiet=True)
        students: dict[str, list[dict]] = {"labels only": [], "distilled": []}
        shipped = None
        for seed in range(args.seeds):
            variants = (("labels only", ek.Train(epochs=epochs[1], lr=0.003)),
                        ("distilled", ek.Distill(epochs=epochs[1], lr=0.003, temperature=4.0, alpha=0.5)))  # fmt: skip
            for name, stage in variants:
                chain = [stage]
                last = name == "distilled" and seed == 0
                if last:  # the shipped chain, once: prune, QAT, both INT8 files, the bench
                    chain += [ek.Prune(ratio=0.5, epochs=max(1, epochs[1] // 3), lr=0.002),
                              ek.Quantize(epochs=max(1, epochs[1] // 4), lr=0.0005)]  # fmt: skip
                result = ek.Pipeline(
                    teacher, mlp(32), data, chain, out_dir=Path(scratch) / f"{name}-{seed}", seed=seed, device="cpu",
                    quiet=True, export=["onnx", "tflite"] if last else (),
                    targets=["mobile-like"] if last and not args.quick else (),
                ).run()  # fmt: skip
                ledger = {row["stage"]: row for row in result.report["ledger"]}
                students[name].append(scores(ledger[stage.name]))
                if last:
                    shipped = result.report
                    rows["teacher"] = {**scores(ledger["teacher"]), "params": ledger["teacher"]["params"],
                                       "size_bytes": ledger["teacher"]["size_bytes"]}  # fmt: skip
        plain_row = ek.Pipeline(plain, mlp(32), plain_data, [], out_dir=Path(scratch) / "plain", device="cpu",
                                quiet=True).run().report["ledger"][0]  # fmt: skip
    rows["teacher without class weights"] = {**scores(plain_row), "params": plain_row["params"],
                                             "size_bytes": plain_row["size_bytes"]}  # fmt: skip
    for name, runs in students.items():
        rows[f"student, {name}"] = {m: statistics.mean(r[m] for r in runs) for m in (*METRICS, "fraud_recall")}
        rows[f"student, {name}"]["per_seed"] = runs
    ledger = {row["stage"]: row for row in shipped["ledger"]}
    latency = {r["artifact"]: r["latency"]["p50_ms"] for r in (shipped.get("bench") or {}).get("results", [])
               if r["status"] == "ok" and r["target"] == "mobile-like"}  # fmt: skip
    for stage, label in (("prune", "student, distilled + pruned (FP32)"), ("onnx", "INT8 model.onnx (ONNX Runtime)"),
                         ("tflite", "INT8 model.tflite (LiteRT)")):  # fmt: skip
        row = ledger[stage]
        file = f"model.{stage}" if stage in ("onnx", "tflite") else None
        rows[label] = {**scores(row), "params": row["params"], "size_bytes": row["size_bytes"],
                       "mobile_like_p50_ms": latency.get(file)}  # fmt: skip
    table = markdown_table(
        ["model", "macro-F1", "PR-AUC", "fraud recall", "accuracy", "params", "size", "p50 mobile-like"],
        [[name, f"{r['macro_f1']:.3f}", f"{r['pr_auc']:.3f}", f"{100 * r['fraud_recall']:.1f}%",
          f"{100 * r['accuracy']:.2f}%", f"{r['params']:,}" if "params" in r else "-",
          f"{r['size_bytes'] / 1024:.1f} KiB" if "size_bytes" in r else "-",
          f"{r['mobile_like_p50_ms']:.4f} ms" if r.get("mobile_like_p50_ms") else "-"] for name, r in rows.items()],
    )  # fmt: skip
    table += (
        f"\n{train:,} training / {test:,} test rows, {100 * POSITIVE_SHARE:.0f}% positive; students are the mean of "
        f"{args.seeds} seed(s); every best epoch picked on validation macro-F1.\n"
    )
    save("tabular", {"rows": rows, "seeds": args.seeds, "train": train, "test": test}, table, started, quick=args.quick)
    print(table)


if __name__ == "__main__":
    main()
