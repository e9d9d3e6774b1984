"""Does the harness measure the file, or itself? Its p50 next to a bare ``session.run`` / ``invoke`` loop.

For each file (the MNIST student and MobileNetV2 at 224x224, FP32, as ONNX and TFLite), the harness
on the mobile-like target (1 thread, one pinned core) alternates with a bare loop in its own process
with the same thread count and pinning: nothing but creating the session, one input set once, and
``perf_counter`` around each call. Bars: the harness adds at most 3% at p50, and two back-to-back
harness runs of the same file agree within 10% at p50. Run from the repository root:

    python -m benchmarks.run bench_fidelity [--quick] [--rounds 3] [--runs 300]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import edgekd as ek
from benchmarks.results_io import save
from benchmarks.study_args import parse, study_parser
from edgekd import bench

BAR = {"overhead": 0.03, "back_to_back": 0.10}
MODELS = {"mnist-mobilenet": (1, 28, 28), "mobilenetv2": (3, 224, 224)}

BARE_LOOP = """
import os, sys, time, statistics
import numpy as np
os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])
path, runs = sys.argv[1], int(sys.argv[2])
if path.endswith(".onnx"):
    import onnxruntime as ort
    options = ort.SessionOptions(); options.intra_op_num_threads = 1; options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    shape = [1 if not isinstance(d, int) else d for d in session.get_inputs()[0].shape]
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    call = lambda: session.run(None, feed)
else:
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path, num_threads=1); interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = np.random.default_rng(0).standard_normal(detail["shape"]).astype(np.float32)
    interpreter.set_tensor(detail["index"], x)
    call = interpreter.invoke
for _ in range(20):
    call()
times = []
for _ in range(runs):
    start = time.perf_counter_ns(); call(); times.append((time.perf_counter_ns() - start) / 1e6)
print(statistics.median(times))
"""


def bare_p50(path: Path, runs: int) -> float:
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", BARE_LOOP, str(path), str(runs)], capture_output=True, text=True,
                          env=env, check=True)  # fmt: skip
    return float(done.stdout.strip().splitlines()[-1])


def harness_p50(path: Path, runs: int) -> float:
    target = bench.load_target("mobile-like")
    target.runs, target.min_s = runs, 0.0
    (row,) = bench.run([path], [target], quiet=True)["results"]
    if row["status"] != "ok":
        raise SystemExit(f"{path}: {row.get('error') or row.get('reason')}")
    return row["latency"]["p50_ms"]


def main(argv: list[str] | None = None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=300)
    args = parse(parser, argv, {"runs": 10, "rounds": 2})
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        # a toy-size run measures the small model alone: converting MobileNetV2 at 224x224 takes most of a minute
        models = dict(list(MODELS.items())[:1]) if args.quick else MODELS
        for model_name, shape in models.items():
            torch.manual_seed(0)
            model = ek.models.get(model_name).eval()
            example = torch.randn(2, *shape)
            for fmt in ("onnx", "tflite"):
                writer = ek.export.to_onnx if fmt == "onnx" else ek.export.to_tflite
                path = writer(model, example, Path(scratch) / f"{model_name}.{fmt}").path
                harness, bare = [], []
                for _ in range(args.rounds):
                    harness.append(harness_p50(path, args.runs))
                    bare.append(bare_p50(path, args.runs))
                overhead = statistics.median(harness) / statistics.median(bare) - 1
                back_to_back = max(abs(a / b - 1) for a, b in zip(harness, harness[1:]))
                checks = {"overhead": overhead <= BAR["overhead"], "back_to_back": back_to_back <= BAR["back_to_back"]}
                results[f"{model_name} {fmt}"] = {
                    "harness_p50_ms": harness, "bare_p50_ms": bare, "overhead": overhead,
                    "back_to_back": back_to_back, "checks": checks,
                }  # fmt: skip
    table = "| file | harness p50 (rounds) | bare loop p50 (rounds) | harness over bare | back-to-back spread |\n"
    table += "|---|---|---|---:|---:|\n"
    for name, r in results.items():
        table += (
            f"| {name} | {', '.join(f'{v:.3f}' for v in r['harness_p50_ms'])} ms | "
            f"{', '.join(f'{v:.3f}' for v in r['bare_p50_ms'])} ms | {100 * r['overhead']:+.1f}% | "
            f"{100 * r['back_to_back']:.1f}% |\n"
        )
    met = all(all(r["checks"].values()) for r in results.values())
    table += (
        f"\nBars: harness at most {100 * BAR['overhead']:.0f}% over the bare loop, back-to-back runs within "
        f"{100 * BAR['back_to_back']:.0f}% at p50: {'met' if met else 'NOT met'}. Mobile-like target (1 thread, "
        "1 pinned core) for both.\n"
    )
    save("bench_fidelity", {"rows": results, "bar": BAR, "met": met}, table, started, quick=args.quick)
    print(json.dumps({k: round(v["overhead"], 4) for k, v in results.items()}))
    print(table)


if __name__ == "__main__":
    main()
