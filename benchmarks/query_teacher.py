"""Distilling from a teacher you can only query: its exported INT8 ONNX file, or top-5 soft labels recorded from
that file, against distilling from the module itself, on Fashion-MNIST.

The teacher (``mnist-resnet``, trained once on the whole training set, cached) is quantized and exported by
edgekd itself (PTQ, ``Quantize(epochs=0)``, parity-gated INT8 ONNX): the file an app would ship and a service
would run. The same student (``mnist-mobilenet``) then learns, with the same settings and seeds, from labels only,
from the module, from the file run in ONNX Runtime (each sample asked once, counted), and from the file's
top-5 answers stored per training sample as an API returns them (the rest of the mass spread evenly). Test
accuracy is mean +- std over seeds. Run from the repository root:

    python -m benchmarks.run query_teacher [--seeds 3] [--epochs 5] [--train 20000] [--quick]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import edgekd as ek
from benchmarks.results_io import markdown_table, mean_std, save
from benchmarks.study_args import parse, study_parser
from edgekd.models.cost import count_params

TEACHER, STUDENT = "mnist-resnet", "mnist-mobilenet"
TEACHER_TRAINING = {"epochs": 4, "lr": 0.003}  # as the kd_methods study: one cached teacher for both
LR = 0.005
KD = {"temperature": 4.0, "alpha": 0.5}
TOP_K = 5


def teacher_file(full, quick: bool, folder: Path) -> tuple[object, dict]:
    """The trained teacher module and its INT8 ONNX file, written and gated by edgekd."""
    ek.seed_everything(0)
    model = ek.models.get(TEACHER)
    config = {**TEACHER_TRAINING, "epochs": 1} if quick else TEACHER_TRAINING
    ek.pretrain(model, full, ek.TrainConfig(**config), seed=0, device="cpu", use_cache=not quick, quiet=True)
    run = ek.Pipeline(model, model, full, [ek.Quantize(epochs=0)], export=["onnx"], out_dir=folder / "teacher-int8",
                      device="cpu", quiet=True).run()  # fmt: skip
    rows = {row["stage"]: row for row in run.report["ledger"]}
    facts = {
        "module_test_accuracy": rows["teacher"]["test_accuracy"], "params": count_params(model),
        "file_test_accuracy": rows["onnx"]["test_accuracy"], "file_bytes": rows["onnx"]["size_bytes"],
        "module_bytes": rows["teacher"]["size_bytes"],
    }  # fmt: skip
    return model.eval(), {**facts, "path": run.artifacts["onnx"]}


def run(seeds: int, epochs: int, train: int | None, quick: bool) -> dict:
    limits = {"limit_train": 1000, "limit_test": 300, "val_size": 300} if quick else {}
    full = ek.data.fashion_mnist(batch_size=128, **limits)
    subset = ek.data.fashion_mnist(batch_size=128, limit_train=train, **{k: v for k, v in limits.items()
                                                                         if k != "limit_train"})  # fmt: skip
    rows = {}
    with tempfile.TemporaryDirectory(prefix="edgekd-query-teacher-") as scratch:
        folder = Path(scratch)
        model, teacher = teacher_file(full, quick, folder)
        recorder = ek.teachers.from_file(teacher["path"])
        answers = ek.teachers.save_soft_labels(recorder, subset, folder / "top5.npz", top_k=TOP_K)
        recorded = recorder.queries
        table = {
            "labels only": None,
            "KD from the module (FP32)": lambda: model,
            "KD from its INT8 ONNX file (ONNX Runtime)": lambda: str(teacher["path"]),
            f"KD from top-{TOP_K} soft labels of the file": lambda: str(answers),
        }
        for label, teaching in table.items():
            accuracy, walls, queries = [], [], []
            for seed in range(seeds):
                ek.seed_everything(seed)
                stages = (
                    [ek.Train(epochs=epochs, lr=LR)] if teaching is None else [ek.Distill(epochs=epochs, lr=LR, **KD)]
                )
                started = time.perf_counter()
                result = ek.Pipeline(teaching() if teaching else model, ek.models.get(STUDENT), subset, stages,
                                     seed=seed, quiet=True, device="cpu",
                                     out_dir=folder / f"{len(rows)}-{seed}").run()  # fmt: skip
                walls.append(time.perf_counter() - started)
                accuracy.append(result.report["ledger"][-1]["test_accuracy"])
                queries.append(result.report.get("teacher_queries", {}).get("teacher", {}).get("queries"))
            rows[label] = {"per_seed": accuracy, "wall_s": walls, "queries": queries[0]}
            print(f"[query_teacher] {label}: {100 * statistics.fmean(accuracy):.2f}% ({statistics.fmean(walls):.0f} s)")
    teacher.pop("path")
    return {
        "teacher": {"name": TEACHER, **teacher},
        "student": {"name": STUDENT, "params": count_params(ek.models.get(STUDENT))},
        "samples": {
            "train": subset.train.dataset_size,
            "val": subset.val.dataset_size,
            "test": subset.test.dataset_size,
        },
        "recording_queries": recorded,
        "epochs": epochs,
        "seeds": seeds,
        "rows": rows,
    }


def checks(results: dict) -> dict[str, tuple[float, bool]]:
    """The file teaches as the module does: the gap within twice the larger seed std (seed noise)."""
    rows = results["rows"]
    (module, module_std), (file, file_std) = (mean_std(rows[label]["per_seed"]) for label in list(rows)[1:3])
    gap, noise = 100 * abs(file - module), 200 * max(module_std, file_std)
    return {
        "file_vs_module_gap_points (within seed noise)": (round(gap, 2), gap <= max(noise, 0.3)),
        "twice_the_larger_seed_std_points": (round(noise, 2), True),
    }


def markdown(results: dict, check: dict) -> str:
    rows, teacher = results["rows"], results["teacher"]
    baseline = statistics.fmean(rows["labels only"]["per_seed"])
    lines = [
        [f"teacher {teacher['name']} (module, FP32)", f"{100 * teacher['module_test_accuracy']:.2f}%", "-",
         f"{teacher['module_bytes'] / 1024:.0f} KiB", "-"],
        ["its INT8 ONNX file", f"{100 * teacher['file_test_accuracy']:.2f}%", "-",
         f"{teacher['file_bytes'] / 1024:.0f} KiB", "-"],
    ]  # fmt: skip
    for label, row in rows.items():
        mean, std = mean_std(row["per_seed"])
        delta = "-" if label == "labels only" else f"{100 * (mean - baseline):+.2f}"
        queries = f"{row['queries']:,}" if row["queries"] is not None else "-"
        queries = "0 (read from disk)" if "soft labels" in label else queries
        lines.append([f"student: {label}", f"{100 * mean:.2f}% ± {100 * std:.2f}", delta, "-", queries])
    header = ["model", "test accuracy", "vs labels (pts)", "size", "teacher queries"]
    text = markdown_table(header, lines)
    if check:
        bars = [[key, str(value), "yes" if ok else "NO"] for key, (value, ok) in check.items()]
        text += "\n" + markdown_table(["bar", "measured", "met"], bars)
    return text


def main(argv: list[str] | None = None) -> dict:
    parser = study_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5, help="student epochs")
    parser.add_argument("--train", type=int, default=20000, help="training images the students see (seeded subset)")
    args = parse(parser, argv, {"seeds": 1, "epochs": 1, "train": 600})
    started = time.perf_counter()
    results = run(args.seeds, args.epochs, args.train, args.quick)
    check = checks(results)
    table = markdown(results, check)
    samples = results["samples"]
    table += (
        f"\nStudents: {samples['train']:,} training images, {args.epochs} epochs, AdamW lr {LR}, KD "
        f"T={KD['temperature']:g} alpha={KD['alpha']:g}; {args.seeds} seeds. Queries: distinct samples the file was "
        f"asked about in a run (training {samples['train']:,} + validation {samples['val']:,} + test "
        f"{samples['test']:,}; later epochs and evaluations reuse the answers); recording the top-{TOP_K} file took "
        f"{results['recording_queries']:,} queries once. Study wall time {time.perf_counter() - started:.0f} s.\n"
    )
    save("query_teacher", {**results, "checks": check, "quick": args.quick}, table, started, quick=args.quick)
    print(table)
    return results


if __name__ == "__main__":
    main()
