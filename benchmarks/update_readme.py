"""Rewrite the result blocks of README.md and the docs pages from benchmarks/results/*.json, so no number
is typed by hand. Each ``<!-- name -->`` block lives in exactly one of those pages.

python -m benchmarks.update_readme          # rewrite README.md and docs/**/*.md
python -m benchmarks.update_readme --check  # exit 1 if any page is out of date
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from pathlib import Path

from benchmarks.results_io import RESULTS, markdown_table

ROOT = Path(__file__).resolve().parent.parent


def _load(study: str) -> dict:
    return json.loads((RESULTS / f"{study}.json").read_text())


def table(header: list[str], rows: list[list[str]], footer: str) -> str:
    """A Markdown table and a closing line."""
    return f"{markdown_table(header, rows)}\n{footer}"


def demo_block() -> str:
    study = _load("demo_mnist")
    results, machine = study["results"], study["machine"]
    rows_by_stage = {row["stage"]: row for row in results["ledger"]}
    labels = {
        "teacher": "teacher (mnist-resnet), FP32",
        "distill": "student after distill (mnist-mobilenet), FP32",
        "prune": "student after prune, FP32",
        "onnx": "student after QAT: INT8 `model.onnx`, in ONNX Runtime",
        "tflite": "student after QAT: INT8 `model.tflite`, in LiteRT",
        "executorch": "student after QAT: INT8 `model.pte`, in ExecuTorch (XNNPACK)",
    }
    rows = []
    for stage, label in labels.items():
        if stage not in rows_by_stage:  # results of a demo that did not prune
            continue
        row = rows_by_stage[stage]
        rows.append([
            label, f"{100 * row['test_accuracy']:.2f}%", f"{row['params']:,}", f"{row['macs']:,}",
            f"{row['size_bytes'] / 1024:.0f} KiB", f"{row['wall_s']:.0f} s",
        ])  # fmt: skip
    checks, fp32 = results["checks"], results["fp32_file_bytes"]
    footer = (
        f"INT8 files against the FP32 files of the distilled student: ONNX "
        f"{checks['onnx_int8_size_ratio'][0]:.2f}x ({fp32['onnx'] / 1024:.0f} KiB), TFLite "
        f"{checks['tflite_int8_size_ratio'][0]:.2f}x ({fp32['tflite'] / 1024:.0f} KiB)"
        + (
            f", ExecuTorch {checks['executorch_int8_size_ratio'][0]:.2f}x ({fp32['executorch'] / 1024:.0f} KiB)"
            if "executorch" in fp32
            else ""
        )
        + "; the int8 kernels alone are "
        f"{results['kernel_ratio']['tflite']:.2f}x their FP32 bytes, the rest is per-channel quantization "
        "parameters, biases and graph structure, a fixed cost that dominates a model this small. "
        + "".join(f"On {line.replace('->', 'against')}. " for line in results.get("teacher_against_shipped", []))
        + f"Whole demo from a cold cache: {checks['wall_s'][0]:.0f} s on {machine['cpu']} "
        f"({machine['cores']} cores), `{study['command']}`, {study['date']}."
    )
    return table(["model", "test accuracy", "params", "MACs per image", "size", "time"], rows, footer)


def int8_latency_block() -> str:
    study = _load("int8_latency")
    results = study["results"]
    sizes = results["size_bytes"]
    from benchmarks.int8_latency import BAR, float_ops

    ops = results["ort_ops"]
    rows = [
        [name, f"{p50:.2f} ms", f"{sizes[name] / 1e6:.2f} MB", str(float_ops(ops[name])) if name in ops else "-"]
        for name, p50 in results["p50_ms"].items()
    ]
    ratios, checks = results["ratios"], results["checks"]
    unmet = [key for key, (_, ok) in checks.items() if not ok]
    best = results["best_quantize_static"].removeprefix("quantize_static ")
    footer = (
        f"TFLite INT8 runs in {ratios['tflite_int8_over_fp32']:.2f}x the FP32 time "
        f"(bar {BAR['tflite_int8_over_fp32']}); edgekd's INT8 ONNX (uint8 activations) in "
        f"{ratios['onnx_int8_over_best_quantize_static']:.2f}x the time of the fastest `quantize_static` "
        f"configuration ({best}; bar {BAR['onnx_int8_over_best_quantize_static']}) and "
        f"{ratios['onnx_int8_over_fp32']:.2f}x the FP32 time "
        f"(bar {BAR['onnx_int8_over_fp32']}); ONNX Runtime's fastest `quantize_static` file runs in "
        f"{results['p50_ms'][results['best_quantize_static']] / results['p50_ms']['onnx fp32']:.2f}x the FP32 time. "
        f"Bars not met: {', '.join(unmet) if unmet else 'none'}. "
        f"`{study['command']}` on {study['machine']['cpu']}, {study['date']}."
    )
    header = ["MobileNetV2 224x224, 1 thread", "p50 latency", "file size", "ops ONNX Runtime runs in float"]
    return table(header, rows, footer)


def epoch_cost_block() -> str:
    study = _load("distill_epoch_cost")
    rows = [
        [r["run"], f"{r['first_epoch_s']:.1f} s", f"{r['steady_epoch_s']:.1f} s", f"{r['steady_ratio_to_ce']:.2f}x"]
        for r in study["results"]["rows"]
    ]
    footer = f"`{study['command']}` on {study['machine']['cpu']}, {study['date']}."
    return table(["training run", "first epoch", "later epochs", "vs label-only"], rows, footer)


def distributed_block() -> str:
    study = _load("distributed_epoch")
    results = study["results"]
    rows = [
        [r["device"], str(r["processes"]), str(r["threads_each"]), f"{r['first_epoch_s']:.1f} s",
         f"{r['steady_epoch_s']:.1f} s", f"{r['steady_speedup']:.2f}x"]
        for r in results["rows"]
    ]  # fmt: skip
    footer = (
        f"Distillation on {results['dataset']} (whole training split, batch 128), fastest epoch of "
        f"{results['repeats']} interleaved runs; several processes: gloo over loopback. `{study['command']}` on "
        f"{study['machine']['cpu']} ({study['machine']['cores']} cores), {study['date']}."
    )
    header = ["device", "processes", "threads each", "first epoch (teacher + student)", "later epochs", "speed-up"]
    return table(header, rows, footer)


def prune_latency_block() -> str:
    study = _load("prune_latency")
    results = study["results"]
    rows = [[r["model"], f"{r['params']:,}", f"{r['macs']:,}", f"{r['p50_ms']:.2f} ms"] for r in results["rows"]]
    footer = (
        f"MACs {results['mac_ratio']:.2f}x fewer, measured latency {results['latency_ratio']:.2f}x lower: "
        f"`{study['command']}` on {study['machine']['cpu']}, {study['date']}."
    )
    return table(["MobileNetV2 224x224", "params", "MACs", "ONNX Runtime p50, 1 thread"], rows, footer)


def prune_mnist_block() -> str:
    study = _load("prune_mnist")
    results = study["results"]
    bar, distilled = results["bar_points"], results["distilled"]
    rows = [[
        "distilled", f"{100 * distilled['test_accuracy']:.2f}%", "-", str(results["base_channels"]),
        f"{distilled['params']:,}", f"{distilled['macs']:,}",
    ]]  # fmt: skip
    for label, row in results["variants"].items():
        met = "within" if row["drop_points"] <= bar else "over"
        rows.append([
            f"pruned, {label}", f"{100 * row['test_accuracy']:.2f}%",
            f"{row['drop_points']:.2f} pts ({met} the {bar} bar)", str(row["channels"]),
            f"{row['params']:,}", f"{row['macs']:,}",
        ])  # fmt: skip
    footer = (
        f"Recovery: 2 epochs of distillation each. `{study['command']}` ({study['wall_s']:.0f} s), {study['date']}."
    )
    header = ["MNIST student", "test accuracy", "lost", "conv channels", "params", "MACs"]
    return table(header, rows, footer)


def bench_fidelity_block() -> str:
    study = _load("bench_fidelity")
    rows = [
        [name, f"{min(r['harness_p50_ms']):.3f}-{max(r['harness_p50_ms']):.3f} ms",
         f"{min(r['bare_p50_ms']):.3f}-{max(r['bare_p50_ms']):.3f} ms", f"{100 * r['overhead']:+.1f}%",
         f"{100 * r['back_to_back']:.1f}%"]
        for name, r in study["results"]["rows"].items()
    ]  # fmt: skip
    bar = study["results"]["bar"]
    footer = (
        f"Harness vs a bare loop in its own process, both 1 thread on one pinned core; bars: at most "
        f"{100 * bar['overhead']:.0f}% overhead, back-to-back within {100 * bar['back_to_back']:.0f}%: "
        f"{'met' if study['results']['met'] else 'NOT met'}. `{study['command']}` on {study['machine']['cpu']}, "
        f"{study['date']}."
    )
    return table(["file (FP32)", "harness p50", "bare loop p50", "harness over bare", "back-to-back"], rows, footer)


def hinton_block() -> str:
    study = _load("hinton2015_mnist")
    results = study["results"]
    labels = {
        "teacher": "784-1200-1200 teacher, dropout + 2 px jitter",
        "student": "784-800-800 student, labels only",
        "distilled": "784-800-800 student distilled at T=20",
        "no_threes": "distilled with no 3 in the transfer set (errors on 3s)",
        "no_threes_biased": "then the class-3 bias raised (chosen on validation)",
    }
    rows = []
    for key, label in labels.items():
        ours, paper = str(results["rows"][key]["errors"]), str(results["paper"][key])
        if "on_threes" in results["rows"][key]:
            ours += f" ({results['rows'][key]['on_threes']})"
            paper += f" ({results['paper_on_threes'][key]})"
        rows.append([label, ours, paper])
    gap = (
        f" Distillation closed {100 * results['gap_closed']:.0f}% of the student-teacher gap (paper: "
        f"{100 * results['paper_gap_closed']:.0f}%)."
    )
    footer = (
        f"Teacher {results['teacher_epochs']} epochs, each student {results['epochs']}, on 2 CPU cores; "
        "distilled closer to the teacher than to the undistilled "
        f"student: {'yes' if results['shape_holds'] else 'NO'}.{gap} `{study['command']}` ({study['wall_s']:.0f} s), "
        f"{study['date']}."
    )
    return table(["MNIST, 10,000 test images", "test errors (edgekd)", "test errors (paper)"], rows, footer)


README_ABLATION = "fashion-mnist"  # the dataset whose pipeline ablation opens the README


def ablation_block() -> str:
    from benchmarks.pipeline_ablation import HEADER, SETUPS, cells
    from edgekd.train.pretrain import noted_from_cache

    study = _load(SETUPS[README_ABLATION].study)
    results = study["results"]
    setup = SETUPS[results["dataset"]]
    checks, bar = results["checks"], results["bar"]
    verdict = "; ".join(
        f"{fmt}: {checks[f'{fmt}_size_ratio'][0]}x smaller, {checks[f'{fmt}_speedup'][0]}x faster, "
        f"{checks[f'{fmt}_accuracy_drop_points'][0]:.2f} pts below the teacher"
        for fmt in ("tflite", "onnx", "executorch")
        if f"{fmt}_size_ratio" in checks
    )
    unmet = [key for key, (_, ok) in checks.items() if not ok]
    gain, twice_std = checks["kd_gain_points"][0], checks["kd_twice_larger_seed_std_points"][0]
    files = results["files"]
    onnx_int8, onnx_fp32 = files["+ QAT, INT8 ONNX"]["p50_ms"], files["pruned FP32"]["p50_ms"]
    machine = study["machine"]
    cached = (
        f"; not counted: the teacher's {setup.teacher.pretrain.epochs}-epoch pretraining, loaded from its cache"
        if noted_from_cache(results["teacher"]["pretrain_note"])
        else ""
    )
    kd_name = setup.kd_row.removeprefix("+ ")
    kd_name = kd_name[0].upper() + kd_name[1:]
    footer = (
        "Final INT8 student against the FP32 teacher file of the same format (bars: "
        f">= {bar['size_ratio']:g}x smaller, >= {bar['speedup']:g}x faster, within "
        f"{bar['accuracy_drop_points']:g} pts) — {verdict}. {kd_name} over "
        f"labels only: {gain:+.2f} pts on the {results['seeds']}-seed mean (bar >= {bar['kd_gain_points']:g} and "
        f"more than twice the larger seed std, {twice_std:.2f} pts). ONNX Runtime runs the pruned student's INT8 "
        f"file {'slower' if onnx_int8 > onnx_fp32 else 'faster'} than its FP32 file ({onnx_int8:.3f} vs "
        f"{onnx_fp32:.3f} ms). Bars not met: "
        f"{', '.join(unmet) if unmet else 'none'}. Accuracy: mean ± std over {results['seeds']} seeds for the rows "
        "that train, measured on the file in its runtime for the file rows; size, latency (batch 1, 1 thread, one "
        "pinned core) and peak memory measured on the seed-0 files; the FP32 student rows share one "
        f"architecture and so one file. Every row: `{study['command']}` ({study['wall_s'] / 60:.0f} min on "
        f"{machine['cpu']}, {machine['cores']} cores, no GPU{cached}), {study['date']}; details in "
        f"[benchmarks/results/{setup.study}.md](benchmarks/results/{setup.study}.md)."
    )
    return table([setup.title, *HEADER[1:]], cells(results), footer)


def _int8_instructions(machine: dict) -> str:
    """What decides INT8 speed on x86: whether the CPU has VNNI dot-product instructions."""
    flags = set(machine.get("cpu_flags", []))
    vnni = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    return f"INT8 dot products: {', '.join(vnni)}" if vnni else "no VNNI: INT8 weights narrowed to [-63, 63]"


def zoo_block() -> str:
    study = _load("zoo")
    results, machine = study["results"], study["machine"]
    from benchmarks.zoo import speedups, table_markdown

    parts = []
    for name, family in results["families"].items():
        if "error" in family:
            parts.append(f"{name}: {family['error']}")
            continue
        shown = [f"{mode.upper()} {fmt} {value:.2f}x" for mode in ("ptq", "qat")
                 for fmt, value in speedups(family, mode).items() if value is not None]  # fmt: skip
        refused = [f"{mode.upper()} {fmt}" for mode in ("ptq", "qat") for fmt in ("onnx", "tflite")
                   if not family[mode][fmt]["passed"]]  # fmt: skip
        text = f"{name}: INT8 speed over FP32 {', '.join(shown) or 'not measured'}"
        parts.append(text + (f"; refused by the parity gate: {', '.join(refused)}" if refused else ""))
    footer = (
        f"{'. '.join(parts)}. Digits scaled to {results['size']}x{results['size']} and painted in colour, "
        f"{results['train']} training and {results['test']} test images "
        "(a stand-in task; parity is on the test images); "
        "parity is top-1 agreement with the PyTorch INT8 graph and the largest logit error in output steps, "
        "accuracy is measured on each file in its runtime (the FP32 models had "
        f"{results.get('epochs', 1)} fine-tuning epoch(s); MobileNetV2 and the ViT start from random weights); "
        "p50 on the `mobile-like` target (1 thread, one pinned core, batch 1). "
        f"`{study['command']}` ({study['wall_s'] / 60:.0f} min on {machine['cpu']}, {machine['cores']} cores, "
        f"{_int8_instructions(machine)}), "
        f"{study['date']}; details in [benchmarks/results/zoo.md](benchmarks/results/zoo.md)."
    )
    return f"{table_markdown(results)}\n{footer}"


def kd_methods_block() -> str:
    from benchmarks.kd_methods import markdown

    study = _load("kd_methods")
    results = study["results"]
    footer = (
        f"Fashion-MNIST, student `{results['student']['name']}` on {results['train_images']:,} training images, "
        f"{results['epochs']} epochs per network trained, {results['seeds']} seeds; teachers on the whole training "
        f"set. `{study['command']}` ({study['wall_s']:.0f} s), {study['date']}."
    )
    return f"{markdown(results, results['checks'])}\n{footer}"


def query_teacher_block() -> str:
    from benchmarks.query_teacher import markdown

    study = _load("query_teacher")
    results = study["results"]
    footer = (
        f"Fashion-MNIST, teacher `{results['teacher']['name']}` and its INT8 ONNX file (PTQ by edgekd), student "
        f"`{results['student']['name']}` on {results['samples']['train']:,} training images, {results['epochs']} "
        f"epochs, {results['seeds']} seeds. `{study['command']}` ({study['wall_s'] / 60:.0f} min), {study['date']}."
    )
    return f"{markdown(results, results['checks'])}\n{footer}"


def distil_text_block() -> str:
    from benchmarks.distil_text import HEADER, cells

    study = _load("distil_text")
    results, machine = study["results"], study["machine"]
    checks = results["checks"]
    unmet = [key for key, (_, ok) in checks.items() if not ok]
    teacher = results["teacher"]
    data = results["data"]
    footer = (
        f"Teacher all-MiniLM-L6-v2 fine-tuned on the CPU ({teacher['fine_tune_s'] / 60:.0f} min), "
        f"{teacher['test_accuracy'] * 100:.2f}% in PyTorch; student blocks {results['layers']}; "
        f"{data['name']}: {data['train_size']:,} train / {data['val_size']:,} val / {data['test_size']:,} test texts, "
        f"sequence length {data['input_shape'][0]}. Bars for the INT8 files against the FP32 teacher file of the "
        "same format: >= 97% of its accuracy kept, >= 3x fewer parameters, >= 3x lower mobile-like p50. Bars "
        f"not met: {', '.join(unmet) if unmet else 'none'}. `{study['command']}` ({study['wall_s'] / 60:.0f} min "
        f"on {machine['cpu']}, {machine['cores']} cores, no GPU), {study['date']}; per-stage notes in "
        "[benchmarks/results/distil_text.md](benchmarks/results/distil_text.md)."
    )
    return table(HEADER, cells(results), footer)


def made_by(part: dict, study: dict) -> dict:
    """The command and date that made one part of a study run in parts (the study's own when whole)."""
    return part.get("made_by", {"command": study["command"], "date": study["date"]})


def latency_budget_block() -> str:
    study = _load("latency_budget")
    results = study["results"]
    mobilenet, student = results["mobilenet"], results["student"]
    rows = []
    for r in mobilenet["rows"]:
        shipped = (
            f"{r['shipped_p50_ms']:.3f} ms" + ("" if r["met"] else " (NOT met)") if "error" not in r else "refused"
        )
        rows.append([
            f"MobileNetV2 {mobilenet['size']}px, {r['fraction']}x ({r['limit_ms']:.3f} ms measured)", r["method"],
            shipped, "-", f"{mobilenet['unpruned_macs'] / r['macs']:.2f}x" if "macs" in r else "-",
        ])  # fmt: skip
    for key, runs in student["per_seed"].items():
        fraction, method = key.split("-")
        accuracy = [100 * r["int8_test_accuracy"] for r in runs]
        spread = statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0
        estimate = statistics.fmean(r["file_estimate_ms"] for r in runs)
        macs = statistics.fmean(r["macs"] for r in runs)
        rows.append([
            f"Fashion-MNIST student, {fraction}x ({float(fraction) * student['estimate_ms'] * 1e3:.1f} us estimated)",
            method, f"{estimate * 1e3:.1f} us (estimate)", f"{statistics.fmean(accuracy):.2f}% ± {spread:.2f}",
            f"{student['base_macs'] / macs:.2f}x",
        ])  # fmt: skip
    unmet = [name for name, check in results["checks"].items() if not check["met"]]
    loosest = max(float(key.split("-")[0]) for key in student["per_seed"])
    floors = [
        float(m.group(1)) for r in mobilenet["rows"] if (m := re.search(r"gives ([0-9.]+) ms", r.get("error", "")))
    ]
    refused = (
        f"MobileNetV2's budgets below {min(floors):.3f} ms ({min(floors) / mobilenet['unpruned_p50_ms']:.2f}x) are "
        "refused by both methods: the deepest cut (every group at 90%) still runs that long, held up by "
        "full-resolution work channel pruning cannot remove (the input's layout change, the 3-channel INT8 stem "
        "convolution). "
        if floors
        else ""
    )
    made = [made_by(part, study) for part in (mobilenet, student)]
    commands = dict.fromkeys(f"`{m['command']}` ({m['date']})" for m in made)
    footer = (
        f"Unpruned: MobileNetV2 INT8 TFLite {mobilenet['unpruned_p50_ms']:.3f} ms on mobile-like; the student "
        f"{100 * student['base_test_accuracy']:.2f}% FP32, INT8 TFLite {student['measured_p50_ms']:.4f} ms measured "
        f"(mostly LiteRT's fixed cost per call, so a measured budget of {loosest}x is refused: "
        f"`{student['refusal']}`), hence its budgets are on the reference phone ({student['phone']}). Accuracy: the "
        f"INT8 ONNX file on the test set, {student['seeds']} seeds. "
        + refused
        + ("Every bar met. " if not unmet else f"Bars NOT met: {', '.join(unmet)}. ")
        + "; ".join(commands)
        + f" on {study['machine']['cpu']}."
    )
    return table(["budget", "method", "shipped file", "test accuracy", "MACs fewer"], rows, footer)


def tabular_block() -> str:
    study = _load("tabular")
    results = study["results"]

    def cells(name: str, row: dict) -> list[str]:
        p50 = row.get("mobile_like_p50_ms")
        return [
            name, f"{row['macro_f1']:.3f}", f"{row['pr_auc']:.3f}", f"{100 * row['fraud_recall']:.1f}%",
            f"{100 * row['accuracy']:.2f}%", f"{row['size_bytes'] / 1024:.1f} KiB" if "size_bytes" in row else "-",
            f"{p50 * 1000:.1f} us" if p50 else "-",
        ]  # fmt: skip

    rows = [cells(name, row) for name, row in results["rows"].items()]
    footer = (
        f"Fraud-like data from scikit-learn ({results['train']:,} training / {results['test']:,} test rows, 5% "
        f"positive); students: mean of {results['seeds']} seeds; best epochs picked on validation macro-F1. "
        f"`{study['command']}` ({study['wall_s']:.0f} s), {study['date']}."
    )
    header = ["model", "macro-F1", "PR-AUC", "fraud recall", "accuracy", "size", "p50 mobile-like"]
    return table(header, rows, footer)


def _chain_block(name: str, metrics: list[tuple[str, str]], footer: str) -> str:
    """A task study's table (``benchmarks.task_chain``): its metrics, params, size and latency per row."""
    study = _load(name)
    shown = {"%": lambda v: f"{100 * v:.2f}%", "": lambda v: f"{v:.3f}"}

    def cells(label: str, row: dict) -> list[str]:
        p50 = row.get("mobile_like_p50_ms")
        values = [shown["%" if title.endswith("accuracy") else ""](row[key]) for key, title in metrics]
        return [label, *values, f"{row['params']:,}", f"{row['size_bytes'] / 1024:.1f} KiB",
                f"{p50:.3f} ms" if p50 else "-"]  # fmt: skip

    results, gain = study["results"], study["results"]["kd_gain"]
    seeds_list = ", ".join(f"{g:+.1f}" for g in gain["per_seed_points"])
    closing = f" `{study['command']}` ({study['wall_s'] / 60:.0f} min), {study['date']}."
    rows = [cells(label, row) for label, row in results["rows"].items()]
    header = ["model", *(title for _, title in metrics), "params", "size", "p50 mobile-like"]
    return table(header, rows, footer.format(**results, gain=gain, seeds_list=seeds_list) + closing)


def detect_block() -> str:
    return _chain_block(
        "detect_digits",
        [("map50", "mAP@0.5"), ("map50_95", "mAP@0.5:0.95")],
        "Up to {max_digits} Fashion-MNIST items per {canvas}x{canvas} canvas ({train:,} training / {test:,} test "
        "canvases); students: mean of {seeds} seeds, KD over the boxes alone {gain[mean_points]:+.1f} mAP@0.5 points "
        "(per seed {seeds_list}), {gain[strict_points]:+.1f} mAP@0.5:0.95; the files' mAP decoded from both of their "
        "outputs in their runtimes.",
    )


def segment_block() -> str:
    return _chain_block(
        "segment_digits",
        [("miou", "mIoU"), ("pixel_accuracy", "pixel accuracy")],
        "Up to {max_digits} MNIST digits per {canvas}x{canvas} canvas, 11 classes ({train:,} training / {test:,} "
        "test canvases), balanced class weights in the label and the per-pixel KD term; students: mean of {seeds} "
        "seeds, KD over the masks alone "
        "{gain[mean_points]:+.1f} mIoU points (per seed {seeds_list}).",
    )


BLOCKS = {
    "segment": segment_block,
    "detect": detect_block,
    "tabular": tabular_block,
    "latency-budget": latency_budget_block,
    "distil-text": distil_text_block,
    "ablation": ablation_block,
    "kd-methods": kd_methods_block,
    "query-teacher": query_teacher_block,
    "demo-results": demo_block,
    "epoch-cost": epoch_cost_block,
    "distributed": distributed_block,
    "prune-latency": prune_latency_block,
    "prune-mnist": prune_mnist_block,
    "int8-latency": int8_latency_block,
    "bench-fidelity": bench_fidelity_block,
    "hinton2015": hinton_block,
    "zoo": zoo_block,
}


def pages() -> list[Path]:
    """README.md and the docs pages (not the results linked into docs/)."""
    docs = ROOT / "docs"
    return [ROOT / "README.md", *sorted(p for p in docs.rglob("*.md") if "results" not in p.relative_to(docs).parts)]


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- {name} -->\n).*?(<!-- /{name} -->)", re.S)


def _linked_from(block: str, page: Path | None) -> str:
    """Result links as seen from ``page``: a docs page reaches the results through ``docs/results``."""
    if page is None or page.parent == ROOT:
        return block
    results = os.path.relpath(ROOT / "docs" / "results", page.parent)
    return block.replace("](benchmarks/results/", f"]({results}/")


def render(text: str, page: Path | None = None) -> str:
    """``text`` (of ``page``, README.md when not given) with every result block it holds rebuilt."""
    for name, build in BLOCKS.items():
        pattern = _pattern(name)
        if pattern.search(text):
            fresh = _linked_from(build(), page) + "\n"
            text = pattern.sub(lambda m, fresh=fresh: m.group(1) + fresh + m.group(2), text)
    return text


def block_homes() -> dict[str, list[Path]]:
    """Which pages hold each block: exactly one each, or the block is lost or rendered twice."""
    texts = {path: path.read_text() for path in pages()}
    return {name: [path for path, text in texts.items() if _pattern(name).search(text)] for name in BLOCKS}


def main() -> None:
    parser = argparse.ArgumentParser(description="Regenerate the result blocks of README.md and docs/ pages.")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when a page is stale")
    args = parser.parse_args()
    misplaced = {name: homes for name, homes in block_homes().items() if len(homes) != 1}
    if misplaced:
        raise SystemExit(f"each result block must live in exactly one page: {misplaced}")
    stale = []
    for path in pages():
        current = path.read_text()
        fresh = render(current, path)
        if fresh != current:
            stale.append(path)
            if not args.check:
                path.write_text(fresh)
    if args.check:
        sys.exit(1 if stale else 0)


if __name__ == "__main__":
    main()
