"""What each stage of the pipeline buys, and what it costs, on Fashion-MNIST (or MNIST).

Each task names its teacher and student (``SETUPS``): MNIST keeps the demo's pair; Fashion-MNIST takes
a wider pair (ResNet width 64, MobileNet-style width 1.5), since the demo's pair leaves the student
too close to its teacher for distillation to add much, and the teacher too fast for an 8x speedup.

Rows, each built on the one above from the chain's KD row on:

- teacher FP32: the task's ResNet teacher (trained once, seed 0);
- student, labels only: the MobileNet-style student trained with cross-entropy, same schedule as KD;
- + logit KD: the student distilled on the teacher's soft targets (T=4);
- + feature KD (MNIST only): logit KD plus the demo's FitNets hint (blocks.3 -> layer2); on
  Fashion-MNIST the hint costs accuracy against logit KD alone, so the chain goes on from logit KD;
- + prune: channels removed globally by LAMP importance, recovery epochs with KD;
- + QAT, INT8 TFLite / INT8 ONNX: one epoch of INT8 QAT, exported, measured on the files;
- and the alternative: the teacher's FP32 ONNX quantized by ONNX Runtime's ``quantize_static``, in
  each of its four configurations (QDQ or QOperator, int8 or uint8 activations).

Accuracy is the mean +- std over seeds for the rows that train (the teacher is shared); the file rows'
accuracy is measured on the file in its runtime over the whole test set. Size, p50 latency and peak
memory come from ``edgekd bench`` on the mobile-like target (1 thread, one pinned core, batch 1) for
the seed-0 files; the FP32 student rows share one architecture and so one file. Run from the
repository root:

    python -m benchmarks.run pipeline_ablation [--dataset fashion-mnist|mnist] [--seeds 3] [--quick]

Fashion-MNIST is the default: on MNIST the student reaches 99.3% from labels alone and distillation
has nothing left to add; the MNIST run (``--dataset mnist``) is kept for the demo's bar.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

import edgekd as ek
from benchmarks.int8_latency import all_quantize_static
from benchmarks.mobile_bench import measure_on_mobile_like
from benchmarks.results_io import markdown_table, mean_std, save
from benchmarks.study_args import parse, study_parser
from edgekd.data import first_samples
from edgekd.models.cost import count_macs, count_params
from edgekd.models.files import load_model
from edgekd.recipe.schema import ModelSpec, build_model

FEATURES = {"features": {"blocks.3": "layer2"}, "feature_loss": "mse"}
QAT = {"epochs": 1, "lr": 5e-4}
PTQ_CALIBRATION = (8, 64)  # batches x images from the training set for quantize_static
INT8_STUDENT, FP32_STUDENT = "+ QAT, INT8 ONNX", "pruned FP32"  # the ONNX pair "INT8 faster than FP32" compares
INT8_ROWS = {"tflite": "+ QAT, INT8 TFLite", "onnx": "+ QAT, INT8 ONNX", "executorch": "+ QAT, INT8 ExecuTorch"}
TEACHER_FILES = {"tflite": "teacher FP32 TFLite", "onnx": "teacher FP32", "executorch": "teacher FP32 ExecuTorch"}
RUNTIME_NAMES = {"tflite": "TFLite", "onnx": "ONNX", "executorch": "ExecuTorch"}


@dataclass(frozen=True)
class Setup:
    """One task's chain and bars: the schedule each dataset needs to show what every stage buys."""

    load: Callable[..., ek.data.DataBundle]
    study: str  # results file name
    title: str  # the README table's first header cell
    teacher: ModelSpec  # a registry model, its arguments and its pretraining on labels (cached)
    student: ModelSpec
    distill: dict
    prune: dict
    bar: dict[str, float]
    feature_kd: bool  # the chain distils with the FitNets hint on top of logit KD

    def teacher_model(self) -> torch.nn.Module:
        return build_model(self.teacher, "teacher")

    def student_model(self) -> torch.nn.Module:
        return build_model(self.student, "student")

    @property
    def teacher_name(self) -> str:
        return _described(self.teacher)

    @property
    def student_name(self) -> str:
        return _described(self.student)

    @property
    def kd_row(self) -> str:
        """The chain's distillation row: what pruning starts from, and what KD's gain is judged on."""
        return "+ feature KD" if self.feature_kd else "+ logit KD"

    @property
    def prune_row(self) -> str:
        return f"+ prune {self.prune['ratio']:g}"

    @property
    def kd_rows(self) -> list[str]:
        return ["+ logit KD", "+ feature KD"] if self.feature_kd else ["+ logit KD"]

    @property
    def trained_rows(self) -> list[str]:
        return ["labels only", *self.kd_rows, self.prune_row, *INT8_ROWS.values()]


def _described(spec: ModelSpec) -> str:
    return spec.model + "".join(f", {key} {value}" for key, value in spec.args.items())


SETUPS = {
    "fashion-mnist": Setup(
        load=ek.data.fashion_mnist, study="pipeline_ablation", title="Fashion-MNIST, 10,000 test images",
        teacher=ModelSpec("mnist-resnet", {"width": 64}, pretrain=ek.TrainConfig(epochs=8, lr=0.003)),
        student=ModelSpec("mnist-mobilenet", {"width": 1.5}),
        distill={"epochs": 12, "lr": 0.005, "temperature": 4.0, "alpha": 0.5},
        prune={"ratio": 0.2, "importance": "lamp", "global_pruning": True, "round_to": 4, "epochs": 3, "lr": 0.005},
        bar={"size_ratio": 20.0, "speedup": 8.0, "accuracy_drop_points": 1.5, "kd_gain_points": 0.5},
        feature_kd=False,
    ),
    "mnist": Setup(
        load=ek.data.mnist, study="pipeline_ablation_mnist", title="MNIST, 10,000 test images",
        teacher=ModelSpec("mnist-resnet", pretrain=ek.TrainConfig(epochs=4, lr=0.003)),  # the demo recipe's pair
        student=ModelSpec("mnist-mobilenet"),
        distill={"epochs": 8, "lr": 0.005, "temperature": 4.0, "alpha": 0.5},
        prune={"ratio": 0.5, "importance": "lamp", "global_pruning": True, "round_to": 4, "epochs": 2, "lr": 0.01},
        bar={"size_ratio": 20.0, "speedup": 8.0, "accuracy_drop_points": 0.7, "kd_gain_points": 0.0},
        feature_kd=True,
    ),
}  # fmt: skip


def toy(config: dict, quick: bool) -> dict:
    return {**config, "epochs": 1} if quick else config


def one_seed(
    setup: Setup, teacher, data, seed: int, folder: Path, quick: bool
) -> tuple[dict[str, float], dict[str, Path], dict]:
    """Every training row for one seed: test accuracies; for seed 0 also its files and their costs."""
    accuracy, files, costs = {}, {}, {}
    ek.seed_everything(seed)
    student = setup.student_model()
    schedule = {k: setup.distill[k] for k in ("epochs", "lr")}
    ek.Trainer(ek.TrainConfig(**toy(schedule, quick)), quiet=True, seed=seed).fit(student, data)
    accuracy["labels only"] = ek.evaluate(student, data.test)

    if setup.feature_kd:  # logit KD alone is its own row; the chain adds the hint
        ek.seed_everything(seed)
        logit = ek.Pipeline(teacher, setup.student_model(), data, [ek.Distill(**toy(setup.distill, quick))],
                            out_dir=folder / f"logit-{seed}", seed=seed, quiet=True, device="cpu").run()  # fmt: skip
        accuracy["+ logit KD"] = _ledger(logit)["distill"]["test_accuracy"]

    ek.seed_everything(seed)
    distill = {**setup.distill, **FEATURES} if setup.feature_kd else setup.distill
    stages = [ek.Distill(**toy(distill, quick)), ek.Prune(**toy(setup.prune, quick)), ek.Quantize(**toy(QAT, quick))]
    full = ek.Pipeline(teacher, setup.student_model(), data, stages, out_dir=folder / f"full-{seed}",
                       export=list(INT8_ROWS), seed=seed, quiet=True, device="cpu").run()  # fmt: skip
    rows = _ledger(full)
    accuracy[setup.kd_row] = rows["distill"]["test_accuracy"]
    accuracy[setup.prune_row] = rows["prune"]["test_accuracy"]
    for fmt, label in INT8_ROWS.items():
        accuracy[label] = rows[fmt]["test_accuracy"]
    if seed == 0:
        example = first_samples(data.val, 2)[0]
        checkpoints = full.run_dir / "checkpoints"
        distilled = load_model(setup.student_model(), checkpoints / "01-distill" / "model.pt").eval()
        pruned = load_model(setup.student_model(), checkpoints / "02-prune" / "model.pt").eval()
        files["student FP32"] = ek.export.to_onnx(distilled, example, folder / "student_fp32.onnx").path
        files["student FP32 TFLite"] = ek.export.to_tflite(distilled, example, folder / "student_fp32.tflite").path
        files["pruned FP32"] = ek.export.to_onnx(pruned, example, folder / "pruned_fp32.onnx").path
        files |= {label: full.artifacts[fmt] for fmt, label in INT8_ROWS.items()}
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
    pte = ek.export.to_executorch(teacher, example, folder / "teacher_fp32.pte").path
    batches, size = PTQ_CALIBRATION
    images = first_samples(data.train, batches * size)[0].numpy().astype(np.float32)
    arrays = [images[i * size : (i + 1) * size] for i in range(batches)]
    ptq = {f"teacher {name}": path for name, path in all_quantize_static(onnx, folder, arrays).items()}
    return {"teacher FP32": onnx, "teacher FP32 TFLite": tflite, "teacher FP32 ExecuTorch": pte, **ptq}


def run(dataset: str, seeds: int, quick: bool) -> dict:
    setup = SETUPS[dataset]
    limits = {"limit_train": 2000, "limit_test": 300, "val_size": 300} if quick else {}
    data = setup.load(batch_size=128, **limits)
    ek.seed_everything(0)
    teacher = setup.teacher_model()
    schedule = replace(setup.teacher.pretrain, epochs=1) if quick else setup.teacher.pretrain
    pretrained = ek.pretrain(teacher, data, schedule, seed=0, device="cpu", use_cache=not quick, quiet=True)
    teacher.eval()
    per_seed: dict[str, list[float]] = {row: [] for row in setup.trained_rows}
    with tempfile.TemporaryDirectory(prefix="edgekd-ablation-") as scratch:
        folder = Path(scratch)
        files: dict[str, Path] = {}
        costs: dict = {}
        for seed in range(seeds):
            accuracy, seed_files, seed_costs = one_seed(setup, teacher, data, seed, folder, quick)
            for row, value in accuracy.items():
                per_seed[row].append(value)
            files, costs = files | seed_files, costs | seed_costs
        files |= teacher_files(teacher, data, folder)
        measured = measure_on_mobile_like(files, data, quick)
    teacher_macs = count_macs(teacher, data.input_shape)
    return {
        "teacher": {
            "test_accuracy": ek.evaluate(teacher, data.test),
            "params": count_params(teacher),
            "macs": teacher_macs,
            "pretrain_note": pretrained.note,
            "model": setup.teacher_name,
        },  # fmt: skip
        "student_model": setup.student_name,
        "per_seed": per_seed,
        "macs": costs["macs"],
        "params": costs["params"],
        "files": measured,
        "seeds": seeds,
        "dataset": dataset,
    }


def table_rows(results: dict) -> list[dict]:
    """One dict per README row: label, accuracy text, params, MACs and the measured file."""
    setup = SETUPS[results.get("dataset", "mnist")]
    teacher, files, per_seed = results["teacher"], results["files"], results["per_seed"]
    macs, params = results["macs"], results["params"]

    def row(label: str, accuracy: float, std: float | None, n_params: int, n_macs: int, file: str) -> dict:
        # the row's accuracy (a seed mean for trained rows) wins over the seed-0 file's own measurement
        return {**files[file], "row": label, "accuracy": accuracy, "std": std, "params": n_params, "macs": n_macs}

    def trained(label: str, key: str, n_params: int, n_macs: int, file: str) -> dict:
        return row(label, *mean_std(per_seed[key]), n_params, n_macs, file)

    def teacher_row(label: str, accuracy: float, file: str) -> dict:
        return row(label, accuracy, None, teacher["params"], teacher["macs"], file)

    formats = [fmt for fmt in ("onnx", "tflite", "executorch") if INT8_ROWS[fmt] in per_seed]  # older results: two
    return [
        *[
            teacher_row(f"teacher FP32 ({RUNTIME_NAMES[fmt]})", teacher["test_accuracy"], TEACHER_FILES[fmt])
            for fmt in formats
        ],
        trained("student, labels only", "labels only", params["student"], macs["student"], "student FP32"),
        *[trained(kd, kd, params["student"], macs["student"], "student FP32") for kd in setup.kd_rows],
        trained(f"{setup.prune_row} with recovery", setup.prune_row, params["pruned"], macs["pruned"], "pruned FP32"),
        *[
            trained(f"+ QAT: INT8 {RUNTIME_NAMES[fmt]}", INT8_ROWS[fmt], params["int8"], macs["pruned"], INT8_ROWS[fmt])
            for fmt in ("tflite", "onnx", "executorch")
            if fmt in formats
        ],
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
    """The bars, per format: INT8 student against the FP32 teacher file of the same format; and KD's
    gain over labels only, which must also exceed twice the larger seed std to count."""
    setup = SETUPS[results.get("dataset", "mnist")]
    bar, files, teacher = setup.bar, results["files"], results["teacher"]
    out = {}
    for fmt, int8, fp32 in ((fmt, INT8_ROWS[fmt], TEACHER_FILES[fmt]) for fmt in ("tflite", "onnx", "executorch")):
        if int8 not in files or fp32 not in files:
            continue
        size = files[fp32]["size_bytes"] / files[int8]["size_bytes"]
        speed = files[fp32]["p50_ms"] / files[int8]["p50_ms"]
        drop = 100 * (teacher["test_accuracy"] - statistics.fmean(results["per_seed"][int8]))
        out[f"{fmt}_size_ratio"] = (round(size, 1), size >= bar["size_ratio"])
        out[f"{fmt}_speedup"] = (round(speed, 1), speed >= bar["speedup"])
        out[f"{fmt}_accuracy_drop_points"] = (round(drop, 2), drop <= bar["accuracy_drop_points"])
    int8_over_fp32 = files[INT8_STUDENT]["p50_ms"] / files[FP32_STUDENT]["p50_ms"]
    out["onnx_int8_over_fp32_student"] = (round(int8_over_fp32, 2), int8_over_fp32 < 1.0)
    best = files[best_quantize_static(files)]["p50_ms"] / files[INT8_STUDENT]["p50_ms"]
    out["onnx_speedup_over_best_quantize_static"] = (round(best, 1), best > 1.0)
    (kd, kd_std), (labels, labels_std) = (mean_std(results["per_seed"][k]) for k in (setup.kd_row, "labels only"))
    gain, twice_std = 100 * (kd - labels), 200 * max(kd_std, labels_std)
    out["kd_gain_points"] = (round(gain, 2), gain > twice_std and gain > bar["kd_gain_points"])
    out["kd_twice_larger_seed_std_points"] = (round(twice_std, 2), gain > twice_std)
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
    bar = SETUPS[results.get("dataset", "mnist")].bar
    required = {
        "size_ratio": f">= {bar['size_ratio']:g}x",
        "speedup": f">= {bar['speedup']:g}x",
        "accuracy_drop_points": f"<= {bar['accuracy_drop_points']:g}",
        "kd_gain_points": f"> {bar['kd_gain_points']:g} and > twice the larger std",
        "std_points": "< kd_gain_points",
        "over_fp32_student": "< 1x",
        "over_best_quantize_static": "> 1x",
    }
    bar_of = {key: next(text for suffix, text in required.items() if key.endswith(suffix)) for key in check}
    bars = [[key, str(value), bar_of[key], "yes" if ok else "NO"] for key, (value, ok) in check.items()]
    return f"{markdown_table(HEADER, cells(results))}\n{markdown_table(['bar', 'measured', 'required', 'met'], bars)}"


def main(argv: list[str] | None = None) -> dict:
    parser = study_parser(__doc__)
    parser.add_argument("--dataset", choices=sorted(SETUPS), default="fashion-mnist", help="the task")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for every training row")
    args = parse(parser, argv, {"seeds": 1})
    started = time.perf_counter()
    setup = SETUPS[args.dataset]
    results = run(args.dataset, args.seeds, args.quick)
    check = checks(results)
    table = markdown(results, check)
    table += (
        f"\nTeacher {setup.teacher_name}, pretrained {setup.teacher.pretrain.epochs} epochs; "
        f"KD {setup.distill['epochs']} epochs, "
        f"T={setup.distill['temperature']:g}, alpha={setup.distill['alpha']:g} on the labels (labels-only the same "
        f"schedule); prune {setup.prune['ratio']:g} with {setup.prune['epochs']} recovery epochs; QAT {QAT['epochs']}. "
        "quantize_static: per-channel int8 "
        f"weights, MinMax on {PTQ_CALIBRATION[0] * PTQ_CALIBRATION[1]} training images, each format and "
        f"activation type; fastest here: '{best_quantize_static(results['files']).removeprefix('teacher ')}'. "
        f"Study wall time {time.perf_counter() - started:.0f} s.\n"
    )
    save(
        setup.study,
        {**results, "checks": check, "bar": setup.bar, "quick": args.quick},
        table,
        started,
        quick=args.quick,
    )
    print(table)
    return results


if __name__ == "__main__":
    main()
