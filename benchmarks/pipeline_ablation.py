"""What each stage of the pipeline buys, and what it costs, on MNIST with the demo's teacher and student.

Rows, each built on the one above from "+ feature KD" on:

- teacher FP32: the demo's ResNet teacher (trained once, seed 0);
- student, labels only: the MobileNet-style student trained with cross-entropy, same schedule as KD;
- + logit KD: the student distilled on the teacher's soft targets (T=4, alpha 0.5);
- + feature KD: logit KD plus the demo's FitNets hint (blocks.3 -> layer2);
- + prune 0.5: half of the channels removed globally by LAMP importance, 2 recovery epochs with KD;
- + QAT, INT8 TFLite / INT8 ONNX: one epoch of INT8 QAT, exported, measured on the files;
- and the alternative: the teacher's FP32 ONNX quantized by ONNX Runtime's ``quantize_static``, in
  each of its four configurations (QDQ or QOperator, int8 or uint8 activations).

Accuracy is the mean +- std over seeds for the rows that train (the teacher is shared); the file rows'
accuracy is measured on the file in its runtime over the whole test set. Size, p50 latency and peak
memory come from ``edgekd bench`` on the mobile-like target (1 thread, one pinned core, batch 1) for
the seed-0 files; the FP32 student rows share one architecture and so one file. Run from the
repository root:

    python -m benchmarks.run pipeline_ablation [--seeds 3] [--quick]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import edgekd as ek
from benchmarks.int8_latency import all_quantize_static
from benchmarks.results_io import markdown_table, save
from benchmarks.study_args import parse, study_parser
from edgekd.data import first_samples
from edgekd.metrics import count_macs, count_params
from edgekd.modelfile import load_model

TEACHER_CONFIG = {"epochs": 4, "lr": 0.003}  # the demo recipe's teacher
DISTILL = {"epochs": 8, "lr": 0.005, "temperature": 4.0, "alpha": 0.5}
FEATURES = {"features": {"blocks.3": "layer2"}, "feature_loss": "mse"}
PRUNE = {"ratio": 0.5, "importance": "lamp", "global_pruning": True, "round_to": 4, "epochs": 2, "lr": 0.01}
QAT = {"epochs": 1, "lr": 5e-4}
PTQ_CALIBRATION = (8, 64)  # batches x images from the training set for quantize_static
BAR = {"size_ratio": 20.0, "speedup": 8.0, "accuracy_drop_points": 0.7}
INT8_STUDENT, FP32_STUDENT = "+ QAT, INT8 ONNX", "pruned FP32"  # the ONNX pair "INT8 faster than FP32" compares
TRAINED_ROWS = ["labels only", "+ logit KD", "+ feature KD", "+ prune 0.5", "+ QAT, INT8 TFLite", "+ QAT, INT8 ONNX"]


def toy(config: dict, quick: bool) -> dict:
    return {**config, "epochs": 1} if quick else config


def one_seed(teacher, data, seed: int, folder: Path, quick: bool) -> tuple[dict[str, float], dict[str, Path], dict]:
    """Every training row for one seed: test accuracies; for seed 0 also its files and their costs."""
    accuracy, files, costs = {}, {}, {}
    ek.seed_everything(seed)
    student = ek.models.get("mnist-mobilenet")
    trainer = ek.Trainer(ek.TrainConfig(**toy({k: DISTILL[k] for k in ("epochs", "lr")}, quick)), quiet=True, seed=seed)
    trainer.fit(student, data)
    accuracy["labels only"] = ek.evaluate(student, data.test)

    ek.seed_everything(seed)
    logit = ek.Pipeline(teacher, ek.models.get("mnist-mobilenet"), data, [ek.Distill(**toy(DISTILL, quick))],
                        out_dir=folder / f"logit-{seed}", seed=seed, quiet=True, device="cpu").run()  # fmt: skip
    accuracy["+ logit KD"] = _ledger(logit)["distill"]["test_accuracy"]

    ek.seed_everything(seed)
    stages = [ek.Distill(**toy({**DISTILL, **FEATURES}, quick)), ek.Prune(**toy(PRUNE, quick)),
              ek.Quantize(**toy(QAT, quick))]  # fmt: skip
    full = ek.Pipeline(teacher, ek.models.get("mnist-mobilenet"), data, stages, out_dir=folder / f"full-{seed}",
                       export=["onnx", "tflite"], seed=seed, quiet=True, device="cpu").run()  # fmt: skip
    rows = _ledger(full)
    accuracy["+ feature KD"] = rows["distill"]["test_accuracy"]
    accuracy["+ prune 0.5"] = rows["prune"]["test_accuracy"]
    accuracy["+ QAT, INT8 TFLite"] = rows["tflite"]["test_accuracy"]
    accuracy["+ QAT, INT8 ONNX"] = rows["onnx"]["test_accuracy"]
    if seed == 0:
        example = first_samples(data.val, 2)[0]
        checkpoints = full.run_dir / "checkpoints"
        distilled = load_model(ek.models.get("mnist-mobilenet"), checkpoints / "01-distill" / "model.pt").eval()
        pruned = load_model(ek.models.get("mnist-mobilenet"), checkpoints / "02-prune" / "model.pt").eval()
        files["student FP32"] = ek.export.to_onnx(distilled, example, folder / "student_fp32.onnx").path
        files["student FP32 TFLite"] = ek.export.to_tflite(distilled, example, folder / "student_fp32.tflite").path
        files["pruned FP32"] = ek.export.to_onnx(pruned, example, folder / "pruned_fp32.onnx").path
        files["+ QAT, INT8 TFLite"] = full.artifacts["tflite"]
        files["+ QAT, INT8 ONNX"] = full.artifacts["onnx"]
        costs["macs"] = {"student": rows["distill"]["macs"], "pruned": rows["prune"]["macs"]}
        costs["params"] = {
            "student": rows["distill"]["params"], "pruned": rows["prune"]["params"], "int8": rows["quantize"]["params"]
        }  # fmt: skip
    return accuracy, files, costs


def _ledger(result) -> dict[str, dict]:
    return {row["stage"]: row for row in result.report["ledger"]}


def teacher_files(teacher, data, folder: Path) -> dict[str, Path]:
    """The teacher as FP32 ONNX and TFLite, and its ONNX quantized post-training by ONNX Runtime in
    each ``quantize_static`` configuration (keys ``teacher quantize_static <config>``)."""
    example = first_samples(data.val, 2)[0]
    onnx = ek.export.to_onnx(teacher, example, folder / "teacher_fp32.onnx").path
    tflite = ek.export.to_tflite(teacher, example, folder / "teacher_fp32.tflite").path
    batches, size = PTQ_CALIBRATION
    images = first_samples(data.train, batches * size)[0].numpy().astype(np.float32)
    arrays = [images[i * size : (i + 1) * size] for i in range(batches)]
    ptq = {f"teacher {name}": path for name, path in all_quantize_static(onnx, folder, arrays).items()}
    return {"teacher FP32": onnx, "teacher FP32 TFLite": tflite, **ptq}


def bench(files: dict[str, Path], data, quick: bool) -> dict[str, dict]:
    """Mobile-like p50 latency, peak memory and whole-test-set accuracy of each file."""
    report = ek.bench.run(list(files.values()), targets=["mobile-like"], data=data, quiet=True,
                          **({"runs": 5, "min_s": 0.05} if quick else {}))  # fmt: skip
    by_path = {entry["path"]: entry for entry in report["results"]}
    measured = {}
    for name, path in files.items():
        entry = by_path.get(str(path), {})
        if entry.get("status", "ok") != "ok" or "latency" not in entry:
            raise RuntimeError(f"benchmark of {name} ({path.name}) failed: {entry.get('error') or entry.get('reason')}")
        measured[name] = {
            "size_bytes": path.stat().st_size,
            "p50_ms": entry["latency"]["p50_ms"],
            "peak_memory_bytes": entry["peak_memory_bytes"],
            "accuracy": entry.get("accuracy", {}).get("top1"),
        }
    return measured


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def run(seeds: int, quick: bool) -> dict:
    limits = {"limit_train": 2000, "limit_test": 300, "val_size": 300} if quick else {}
    data = ek.data.mnist(batch_size=128, **limits)
    ek.seed_everything(0)
    teacher = ek.models.get("mnist-resnet")
    pretrained = ek.pretrain(teacher, data, ek.TrainConfig(**toy(TEACHER_CONFIG, quick)), seed=0, device="cpu",
                             use_cache=not quick, quiet=True)  # fmt: skip
    teacher.eval()
    per_seed: dict[str, list[float]] = {row: [] for row in TRAINED_ROWS}
    with tempfile.TemporaryDirectory(prefix="edgekd-ablation-") as scratch:
        folder = Path(scratch)
        files: dict[str, Path] = {}
        costs: dict = {}
        for seed in range(seeds):
            accuracy, seed_files, seed_costs = one_seed(teacher, data, seed, folder, quick)
            for row, value in accuracy.items():
                per_seed[row].append(value)
            files, costs = files | seed_files, costs | seed_costs
        files |= teacher_files(teacher, data, folder)
        measured = bench(files, data, quick)
    teacher_macs = count_macs(teacher, data.input_shape)
    return {
        "teacher": {
            "test_accuracy": ek.evaluate(teacher, data.test),
            "params": count_params(teacher),
            "macs": teacher_macs,
            "pretrain_note": pretrained.note,
        },  # fmt: skip
        "per_seed": per_seed,
        "macs": costs["macs"],
        "params": costs["params"],
        "files": measured,
        "seeds": seeds,
    }


def table_rows(results: dict) -> list[dict]:
    """One dict per README row: label, accuracy text, params, MACs and the measured file."""
    teacher, files, per_seed = results["teacher"], results["files"], results["per_seed"]
    macs, params = results["macs"], results["params"]

    def row(label: str, accuracy: float, std: float | None, n_params: int, n_macs: int, file: str) -> dict:
        return {"row": label, "accuracy": accuracy, "std": std, "params": n_params, "macs": n_macs, **files[file]}

    def trained(label: str, key: str, n_params: int, n_macs: int, file: str) -> dict:
        return row(label, *mean_std(per_seed[key]), n_params, n_macs, file)

    def teacher_row(label: str, accuracy: float, file: str) -> dict:
        return row(label, accuracy, None, teacher["params"], teacher["macs"], file)

    return [
        teacher_row("teacher FP32 (ONNX)", teacher["test_accuracy"], "teacher FP32"),
        teacher_row("teacher FP32 (TFLite)", teacher["test_accuracy"], "teacher FP32 TFLite"),
        trained("student, labels only", "labels only", params["student"], macs["student"], "student FP32"),
        trained("+ logit KD", "+ logit KD", params["student"], macs["student"], "student FP32"),
        trained("+ feature KD", "+ feature KD", params["student"], macs["student"], "student FP32"),
        trained("+ prune 0.5 with recovery", "+ prune 0.5", params["pruned"], macs["pruned"], "pruned FP32"),
        trained("+ QAT: INT8 TFLite", "+ QAT, INT8 TFLite", params["int8"], macs["pruned"], "+ QAT, INT8 TFLite"),
        trained("+ QAT: INT8 ONNX", "+ QAT, INT8 ONNX", params["int8"], macs["pruned"], "+ QAT, INT8 ONNX"),
        *[
            teacher_row(f"alternative: teacher INT8 by ORT {name[len('teacher ') :]}", files[name]["accuracy"], name)
            for name in quantize_static_files(files)
        ],
    ]


def quantize_static_files(files: dict[str, dict]) -> list[str]:
    return [name for name in files if name.startswith("teacher quantize_static")]


def best_quantize_static(files: dict[str, dict]) -> str:
    """The fastest of the teacher's quantize_static files on mobile-like."""
    return min(quantize_static_files(files), key=lambda name: files[name]["p50_ms"])


def checks(results: dict) -> dict[str, tuple[float, bool]]:
    """The issue's bars, per format: INT8 student against the FP32 teacher file of the same format."""
    files, teacher = results["files"], results["teacher"]
    out = {}
    for fmt, int8, fp32 in (("tflite", "+ QAT, INT8 TFLite", "teacher FP32 TFLite"),
                            ("onnx", "+ QAT, INT8 ONNX", "teacher FP32")):  # fmt: skip
        size = files[fp32]["size_bytes"] / files[int8]["size_bytes"]
        speed = files[fp32]["p50_ms"] / files[int8]["p50_ms"]
        drop = 100 * (teacher["test_accuracy"] - statistics.fmean(results["per_seed"][int8]))
        out[f"{fmt}_size_ratio"] = (round(size, 1), size >= BAR["size_ratio"])
        out[f"{fmt}_speedup"] = (round(speed, 1), speed >= BAR["speedup"])
        out[f"{fmt}_accuracy_drop_points"] = (round(drop, 2), drop <= BAR["accuracy_drop_points"])
    int8_over_fp32 = files[INT8_STUDENT]["p50_ms"] / files[FP32_STUDENT]["p50_ms"]
    out["onnx_int8_over_fp32_student"] = (round(int8_over_fp32, 2), int8_over_fp32 < 1.0)
    best = files[best_quantize_static(files)]["p50_ms"] / files[INT8_STUDENT]["p50_ms"]
    out["onnx_speedup_over_best_quantize_static"] = (round(best, 1), best > 1.0)
    kd, labels = (statistics.fmean(results["per_seed"][k]) for k in ("+ feature KD", "labels only"))
    out["kd_gain_points"] = (round(100 * (kd - labels), 2), kd > labels)
    return out


HEADER = ["row", "test accuracy", "params", "MACs", "file size", "mobile-like p50", "peak memory"]


def cells(results: dict) -> list[list[str]]:
    """The table's rows as text, shared by the results file and the README."""
    out = []
    for r in table_rows(results):
        accuracy = f"{100 * r['accuracy']:.2f}%" + (f" ± {100 * r['std']:.2f}" if r["std"] is not None else "")
        out.append([
            r["row"], accuracy, f"{r['params']:,}", f"{r['macs'] / 1e6:.2f} M", f"{r['size_bytes'] / 1024:,.1f} KiB",
            f"{r['p50_ms']:.3f} ms", f"{r['peak_memory_bytes'] / 2**20:.1f} MiB",
        ])  # fmt: skip
    return out


def markdown(results: dict, check: dict) -> str:
    required = {
        "size_ratio": f">= {BAR['size_ratio']:g}x",
        "speedup": f">= {BAR['speedup']:g}x",
        "accuracy_drop_points": f"<= {BAR['accuracy_drop_points']:g}",
        "kd_gain_points": "> 0",
        "over_fp32_student": "< 1x",
        "over_best_quantize_static": "> 1x",
    }
    bar_of = {key: next(text for suffix, text in required.items() if key.endswith(suffix)) for key in check}
    bars = [[key, str(value), bar_of[key], "yes" if ok else "NO"] for key, (value, ok) in check.items()]
    return f"{markdown_table(HEADER, cells(results))}\n{markdown_table(['bar', 'measured', 'required', 'met'], bars)}"


def main(argv: list[str] | None = None) -> dict:
    parser = study_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="seeds for every training row")
    args = parse(parser, argv, {"seeds": 1})
    started = time.perf_counter()
    results = run(args.seeds, args.quick)
    check = checks(results)
    table = markdown(results, check)
    table += (
        f"\nTeacher pretraining {TEACHER_CONFIG['epochs']} epochs; KD {DISTILL['epochs']} epochs (labels-only the "
        f"same schedule); prune recovery {PRUNE['epochs']}; QAT {QAT['epochs']}. quantize_static: per-channel int8 "
        f"weights, MinMax on {PTQ_CALIBRATION[0] * PTQ_CALIBRATION[1]} training images, each format and "
        f"activation type; fastest here: '{best_quantize_static(results['files']).removeprefix('teacher ')}'. "
        f"Study wall time {time.perf_counter() - started:.0f} s.\n"
    )
    save(
        "pipeline_ablation",
        {**results, "checks": check, "bar": BAR, "quick": args.quick},
        table,
        started,
        quick=args.quick,
    )
    print(table)
    return results


if __name__ == "__main__":
    main()
