"""Pruning to a latency budget: the budget-driven search (NetAdapt-style) against uniform pruning.

Part 1, measured latency, no accuracy: MobileNetV2 (random weights and inputs, 10 classes; latency
does not depend on them) at ``--size`` px (224 by default; about 25 minutes on 2 cores). The unpruned
model's INT8 TFLite file, timed on ``mobile-like`` (one thread), sets budgets at 0.7x, 0.5x and 0.35x.
Each budget is met twice: by the search (per-group cuts) and by ``search: uniform`` (the smallest single
ratio whose file meets it). The shipped file of each (INT8 TFLite, calibrated post-training) is then
benchmarked again by ``edgekd bench``. A budget below what the deepest cut reaches is refused in one line
(recorded): on LiteRT's x86 INT8 kernels the full-resolution work that channel pruning cannot remove
(the input's layout change, the 3-channel stem convolution) keeps MobileNetV2 near half its latency.

Part 2, accuracy: the Fashion-MNIST student (``mnist-mobilenet`` distilled from the cached
``mnist-resnet`` teacher on a seeded subset of the training images). On a fast x86 core its INT8 TFLite
file runs in about 0.03 ms, most of it LiteRT's fixed cost per call, so measured budgets of 0.7x and below
are out of reach: the study records the one-line refusal. The accuracy comparison judges the same
budgets on the target's reference phone (a roofline estimate from the file's MACs and bytes, labelled
so; the INT8 ONNX file is estimated, it exports in a second where TFLite takes several), where the
student's latency follows its work: for each budget, search against uniform, each followed by the same
recovery distillation and post-training INT8; test accuracy of the INT8 ONNX file in ONNX Runtime.
The base student and the search's choices are shared by every seed (the search judges without
training); a seed changes the recovery (its batch order) and the calibration. Neither method gets short
recoveries between search steps, so both train equally.
``--part`` runs one part and keeps the other as the last run left it (each part names the command
that made it).
Run from the repository root:

    python -m benchmarks.run latency_budget [--quick] [--seeds 3] [--size 224] [--part both]
"""

from __future__ import annotations

import copy
import json
import re
import statistics
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

import edgekd as ek
from benchmarks.results_io import command_line, markdown_table, mean_std, results_dir, save
from benchmarks.study_args import parse, study_parser
from edgekd.data import first_samples
from edgekd.models.cost import count_macs, count_params
from edgekd.run.measurement import shipped_file
from edgekd.search.budget import parse_budget
from edgekd.search.netadapt import BudgetError

FRACTIONS = (0.7, 0.5, 0.35)
PARTS = ("mobilenet", "student")
QUICK_FRACTION = 0.85  # the toy-size model's floor lies near 0.7x of its file (the runtime's fixed cost)
METHODS = ("netadapt", "uniform")
QUICK_METHODS = ("netadapt",)  # a toy-size run checks the search end to end; the uniform cut has its own tests
TEACHER = {"epochs": 4, "lr": 0.003}
STUDENT = {"epochs": 5, "lr": 0.005, "temperature": 4.0, "alpha": 0.5}
RECOVERY = {"epochs": 2, "lr": 0.002, "temperature": 4.0, "alpha": 0.5}
TRAIN_SUBSET = 10000


def timing_context(data, example: torch.Tensor):
    """What ``shipped_file`` reads from a run: the example batch, training batches to calibrate on."""
    return types.SimpleNamespace(example=example, data=data, device=torch.device("cpu"))


def timed_file(quick: bool, target: str = "mobile-like") -> dict[str, str]:
    """The measured files' format and precision: INT8 TFLite as the issue asks; FP32 ONNX in a toy-size
    run, where a PT2E capture and TFLite conversion per layer shape and per search step would cost minutes
    of a smoke test (the search's code path is the same)."""
    kind = {"format": "onnx", "precision": "fp32"} if quick else {"format": "tflite", "precision": "int8"}
    return {**kind, "target": target}


def timed(model: torch.nn.Module, ctx, kind: dict[str, str], folder: Path) -> Path:
    """The model as a budget search ships it (post-training INT8 unless ``kind`` says fp32)."""
    return shipped_file(model, ctx, parse_budget({"latency_ms": 1.0, **kind}), folder)


def study_target(quick: bool, folder: Path) -> str:
    """The target every file is timed on: mobile-like; in a toy-size run a copy with a few timed runs and no
    minimum time (the study's code path is the same, each file costs a process start instead of seconds)."""
    if not quick:
        return "mobile-like"
    from importlib.resources import files

    text = files("edgekd.targets").joinpath("mobile-like.toml").read_text()
    table = text.index("[[reference_phones]]")
    toy = 'name = "mobile-like-quick"\nwarmup_runs = 2\nwarmup_s = 0.0\nruns = 5\nmin_s = 0.0\n'
    text = re.sub(r"^name = .*$\n", "", text[:table], flags=re.M) + toy + text[table:]
    path = folder / "mobile-like-quick.toml"
    path.write_text(text)
    return str(path)


def bench_p50(path: Path, target: str = "mobile-like") -> float:
    """``edgekd bench`` on ``target``: p50 at batch 1, ms."""
    from edgekd import bench
    from edgekd.targets import load_target

    report = bench.run([path], [load_target(target)], quiet=True)
    return float(next(r for r in report["results"] if r.get("batch") == 1)["latency"]["p50_ms"])


def searched(result) -> dict:
    return next(r for r in result.report["ledger"] if r["stage"] == "prune")["details"]["budget_search"]


def mobilenet_part(size: int, quick: bool, folder: Path) -> dict:
    """Part 1: budgets met on measured latency by both methods; each shipped file benchmarked again."""
    rng = np.random.default_rng(0)
    count = 64 if quick else 160
    x = rng.standard_normal((count, 3, size, size)).astype(np.float32)
    y = rng.integers(0, 10, count)
    data = ek.data.from_arrays(x, y, x[:16], y[:16], batch_size=8, name="random")
    torch.manual_seed(0)
    # a toy-size run times a model a tenth the depth: every new layer shape costs an export
    model = ek.models.get("mnist-mobilenet", in_channels=3) if quick else ek.models.get("mobilenetv2", num_classes=10)
    model.eval()
    example = first_samples(data.val, 2)[0]
    ctx = timing_context(data, example)
    target = study_target(quick, folder)
    kind = timed_file(quick, target)
    unpruned = bench_p50(timed(model, ctx, kind, folder / "unpruned"), target)
    rows = []
    for fraction in (QUICK_FRACTION,) if quick else FRACTIONS:
        for method in QUICK_METHODS if quick else METHODS:
            limit = fraction * unpruned
            budget = {
                "latency_ms": limit,
                "search": method,
                **kind,
                "recovery_batches": 0,
                "steps": 1 if quick else 8,
            }  # fmt: skip (a toy run: one step proves the measured path)
            started = time.perf_counter()
            try:
                run_dir = folder / f"mnv2-{fraction}-{method}"
                result = ek.Pipeline(model, copy.deepcopy(model), data, [ek.Prune(budget=budget, epochs=0)],
                                     out_dir=run_dir, quiet=True, device="cpu").run()  # fmt: skip
            except BudgetError as exc:  # a toy-size run may stop short; the full study must not
                rows.append({"fraction": fraction, "method": method, "limit_ms": limit, "error": str(exc)})
                continue
            wall = time.perf_counter() - started
            shipped = bench_p50(timed(result.model, ctx, kind, folder / f"{fraction}-{method}"), target)
            record = searched(result)
            rows.append({
                "fraction": fraction, "method": method, "limit_ms": limit, "search_final_ms": record["final"],
                "shipped_p50_ms": shipped, "met": shipped <= limit, "steps": len(record["steps"]),
                "path": [(s["group"], s["share"], s["measured"]) for s in record["steps"]],
                "macs": count_macs(result.model, (3, size, size)),
                "params": count_params(result.model), "search_wall_s": round(wall, 1),
            })  # fmt: skip
    return {
        "size": size,
        "model": "mnist-mobilenet (toy size)" if quick else "MobileNetV2",
        "unpruned_p50_ms": unpruned,
        "unpruned_macs": count_macs(model, (3, size, size)),
        "unpruned_params": count_params(model),
        "rows": rows,
    }


def student_part(seeds: int, quick: bool, folder: Path) -> dict:
    """Part 2: the Fashion-MNIST student; measured budgets refused, estimated budgets compared."""
    limits = {"limit_train": 2000, "limit_test": 300, "val_size": 300} if quick else {"limit_train": TRAIN_SUBSET}
    data = ek.data.fashion_mnist(batch_size=128, **limits)
    ek.seed_everything(0)
    teacher = ek.models.get("mnist-resnet")
    teacher_config = {**TEACHER, "epochs": 1} if quick else TEACHER
    ek.pretrain(teacher, data, ek.TrainConfig(**teacher_config), seed=0, device="cpu", use_cache=not quick, quiet=True)
    teacher.eval()
    student = ek.models.get("mnist-mobilenet")
    distill = {**STUDENT, "epochs": 1} if quick else STUDENT
    base = ek.Pipeline(teacher, student, data, [ek.Distill(**distill)], out_dir=folder / "base", seed=0, quiet=True,
                       device="cpu").run()  # fmt: skip
    base_model = base.model.eval()
    example = first_samples(data.val, 2)[0]
    ctx = timing_context(data, example)
    target = study_target(quick, folder)
    kind = timed_file(quick, target)
    measured = bench_p50(timed(base_model, ctx, kind, folder / "student"), target)
    estimated_kind = {"format": "onnx", "precision": kind["precision"]}  # a toy-size run estimates FP32 too
    estimated = estimate_ms(timed(base_model, ctx, estimated_kind, folder))
    refusal = None
    try:
        ek.Pipeline(teacher, copy.deepcopy(base_model), data,
                    [ek.Prune(budget={"latency_ms": FRACTIONS[0] * measured, **kind}, epochs=0)],
                    out_dir=folder / "measured-budget", quiet=True, device="cpu").run()  # fmt: skip
    except BudgetError as exc:
        refusal = str(exc)
    recovery = {**RECOVERY, "epochs": 1} if quick else RECOVERY
    per_seed: dict[str, list[dict]] = {}
    for seed in range(seeds):
        for fraction in FRACTIONS[:1] if quick else FRACTIONS:
            for method in QUICK_METHODS if quick else METHODS:
                budget = {"latency_ms": fraction * estimated, "estimate": True, "search": method, **estimated_kind,
                          "recovery_batches": 0, "steps": 2 if quick else 6}  # fmt: skip
                started = time.perf_counter()
                stages = [ek.Prune(budget=budget, **recovery), ek.Quantize(epochs=0)]
                result = ek.Pipeline(teacher, copy.deepcopy(base_model), data, stages, export=["onnx"], seed=seed,
                                     out_dir=folder / f"fm-{seed}-{fraction}-{method}", quiet=True,
                                     device="cpu").run()  # fmt: skip
                rows = {r["stage"]: r for r in result.report["ledger"]}
                record = searched(result)
                per_seed.setdefault(f"{fraction}-{method}", []).append({
                    "seed": seed, "int8_test_accuracy": rows["onnx"]["test_accuracy"],
                    "pruned_val_accuracy": rows["prune"]["val_accuracy"],
                    "file_estimate_ms": estimate_ms(result.artifacts["onnx"]), "search_final_ms": record["final"],
                    "macs": rows["prune"]["macs"], "params": rows["prune"]["params"], "steps": len(record["steps"]),
                    "path": [(s["group"], s["share"]) for s in record["steps"]],
                    "wall_s": round(time.perf_counter() - started, 1),
                })  # fmt: skip
    return {
        "measured_p50_ms": measured,
        "estimate_ms": estimated,
        "refusal": refusal,
        "base_test_accuracy": base.report["ledger"][-1]["test_accuracy"],
        "base_macs": count_macs(base_model, (1, 28, 28)),
        "phone": phone_name(),
        "per_seed": per_seed,
        "seeds": seeds,
    }


def estimate_ms(path: Path) -> float:
    from edgekd.bench.estimate import estimates_for
    from edgekd.targets import load_target

    return float(estimates_for([Path(path)], [load_target("mobile-like")])[0]["estimate_ms"])


def phone_name() -> str:
    from edgekd.targets import load_target

    return load_target("mobile-like").reference_phones[0].name


def checks(results: dict) -> dict[str, tuple[float, bool]]:
    """The issue's bars: every budget met by the shipped file; search accuracy >= uniform on the mean."""
    out: dict[str, tuple[float, bool]] = {}
    if "mobilenet" in results:
        rows = results["mobilenet"]["rows"]
        searched = [r for r in rows if "error" not in r]
        met = sum(1 for r in searched if r["met"])
        out["mobilenetv2 budgets met by the shipped file (of those searched)"] = (
            f"{met} of {len(searched)}",
            met == len(searched) and bool(searched),
        )
        refused = [r for r in rows if "error" in r]  # below the floor: one line naming the best reachable
        named = all("cannot be met" in r["error"] and " gives " in r["error"] for r in refused)
        out["mobilenetv2 budgets refused below the deepest cut's latency (of all)"] = (
            f"{len(refused)} of {len(rows)}", named)  # fmt: skip
        every = met == len(rows) and bool(rows)
        out["mobilenetv2 every budget met (of all)"] = (f"{met} of {len(rows)}", every)
    if "student" in results:
        student = results["student"]
        worst = None
        for fraction in sorted({key.split("-")[0] for key in student["per_seed"]}, reverse=True):
            if f"{fraction}-uniform" not in student["per_seed"]:
                continue  # a toy-size run searches only
            search = [r["int8_test_accuracy"] for r in student["per_seed"][f"{fraction}-netadapt"]]
            uniform = [r["int8_test_accuracy"] for r in student["per_seed"][f"{fraction}-uniform"]]
            gain = 100 * (statistics.fmean(search) - statistics.fmean(uniform))
            out[f"student {fraction}x: search - uniform accuracy (pts, >= 0)"] = (round(gain, 2), gain >= 0)
            worst = gain if worst is None else min(worst, gain)
        files_met = all(r["file_estimate_ms"] <= float(k.split("-")[0]) * student["estimate_ms"] * (1 + 1e-9)
                        for k, runs in student["per_seed"].items() for r in runs)  # fmt: skip
        out["student files within their estimated budgets"] = (int(files_met), files_met)
    return out


def markdown(results: dict, check: dict) -> str:
    parts = []
    if "mobilenet" in results:
        m = results["mobilenet"]
        cells = []
        for r in m["rows"]:
            if "error" in r:
                cells.append([f"{r['fraction']}x", r["method"], f"{r['limit_ms']:.3f}", "-", "-", "-", "-", r["error"]])
                continue
            cells.append([
                f"{r['fraction']}x", r["method"], f"{r['limit_ms']:.3f}", f"{r['shipped_p50_ms']:.3f}",
                "yes" if r["met"] else "NO", f"{r['macs'] / 1e6:.1f}M ({m['unpruned_macs'] / r['macs']:.2f}x fewer)",
                f"{r['params']:,}", f"{r['steps']} steps, {r['search_wall_s']:.0f} s",
            ])  # fmt: skip
        parts.append(
            f"### {m['model']} at {m['size']}x{m['size']}: measured INT8 TFLite latency on mobile-like\n\n"
            f"Unpruned: {m['unpruned_p50_ms']:.3f} ms p50, {m['unpruned_macs'] / 1e6:.1f}M MACs, "
            f"{m['unpruned_params']:,} params.\n\n"
            + markdown_table(
                ["budget", "method", "limit (ms)", "shipped file p50 (ms)", "met", "MACs", "params", "search"], cells
            )  # fmt: skip
        )
    if "student" in results:
        s = results["student"]
        cells = []
        for key, runs in s["per_seed"].items():
            fraction, method = key.split("-")
            accuracy, std = mean_std([100 * r["int8_test_accuracy"] for r in runs])
            estimate, _ = mean_std([r["file_estimate_ms"] for r in runs])
            macs, _ = mean_std([r["macs"] for r in runs])
            wall = statistics.fmean(r["wall_s"] for r in runs)
            cells.append([
                f"{fraction}x", method, f"{float(fraction) * s['estimate_ms'] * 1e3:.1f}", f"{estimate * 1e3:.1f}",
                f"{macs / 1e3:.0f}k", f"{accuracy:.2f}% ± {std:.2f}", f"{wall:.0f} s",
            ])  # fmt: skip
        refusal = s["refusal"] or "(none: the measured budget was reachable)"
        parts.append(
            f"### Fashion-MNIST student: accuracy at equal latency ({s['seeds']} seeds)\n\n"
            f"Unpruned student: {100 * s['base_test_accuracy']:.2f}% test, INT8 TFLite {s['measured_p50_ms']:.4f} ms "
            f"measured on mobile-like, {s['estimate_ms'] * 1e3:.1f} us estimated on {s['phone']}. A measured "
            f"budget of {FRACTIONS[0]}x: `{refusal}`. Budgets below are reference-phone estimates (roofline) of the "
            "INT8 ONNX file.\n\n"
            + markdown_table(
                [
                    "budget",
                    "method",
                    "limit (us, estimate)",
                    "file (us, estimate)",
                    "MACs",
                    "INT8 ONNX test accuracy",
                    "wall / run",
                ],
                cells,
            )  # fmt: skip
        )
    parts += [f"{name}: made by `{results[name]['made_by']['command']}`, {results[name]['made_by']['date']}."
              for name in PARTS if "made_by" in results.get(name, {})]  # fmt: skip
    bars = markdown_table(
        ["bar", "measured", "met"], [[name, str(value), "yes" if ok else "NO"] for name, (value, ok) in check.items()]
    )
    return "\n\n".join(parts) + "\n\n" + bars


def earlier_parts(part: str, quick: bool) -> dict:
    """With ``--part``, the other part as the last full run left it (each part keeps the command that
    made it), so a part can be rerun alone without dropping the other from the results."""
    path = results_dir(quick) / "latency_budget.json"
    if part == "both" or not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    kept = {name: body for name, body in earlier["results"].items() if name in PARTS and name != part}
    for body in kept.values():
        body.setdefault("made_by", {"command": earlier["command"], "date": earlier["date"]})
    return kept


def main(argv: list[str] | None = None) -> dict:
    parser = study_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--size", type=int, default=224, help="MobileNetV2 input size")
    parser.add_argument("--part", choices=["both", *PARTS], default="both")
    args = parse(parser, argv, {"seeds": 1, "size": 32})
    started = time.perf_counter()
    results: dict = earlier_parts(args.part, args.quick)
    made_by = {"command": command_line(), "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory(prefix="edgekd-latency-budget-") as scratch:
        if args.part in ("both", "mobilenet"):
            results["mobilenet"] = mobilenet_part(args.size, args.quick, Path(scratch)) | {"made_by": made_by}
        if args.part in ("both", "student"):
            results["student"] = student_part(args.seeds, args.quick, Path(scratch)) | {"made_by": made_by}
    results = {name: results[name] for name in PARTS if name in results}
    check = checks(results)
    results["checks"] = {name: {"value": value, "met": ok} for name, (value, ok) in check.items()}
    save("latency_budget", results, markdown(results, check), started, quick=args.quick)
    return results
