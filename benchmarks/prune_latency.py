"""Does pruning become speed? MACs next to measured ONNX Runtime latency, pruned vs unpruned.

MobileNetV2 at 224x224 (random weights: latency does not depend on them), pruned at channel ratio
0.5 with channel counts rounded to multiples of 8, both exported to ONNX and timed in ONNX Runtime
on the CPU with one thread. Runs alternate between the two models in rounds so drift on a shared
machine hits both alike. Run from the repository root:

    python -m benchmarks.run prune_latency [--quick] [--runs 200] [--rounds 5]
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import edgekd as ek
from benchmarks.results_io import save
from benchmarks.study_args import parse, study_parser
from edgekd.models.cost import count_macs, count_params
from edgekd.prune import PruneSpec, build_pruner, prune_step

INPUT = (3, 224, 224)


def export_onnx(model: torch.nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(1, *INPUT),), str(path), dynamo=True, external_data=False)
    return path


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_runs(sess: ort.InferenceSession, feed: dict, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--runs", type=int, default=200, help="timed runs per model per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ratio", type=float, default=0.5)
    args = parse(parser, argv, {"runs": 5, "rounds": 1})
    started = time.perf_counter()
    torch.manual_seed(0)
    full = ek.models.get("mobilenetv2").eval()
    pruned = copy.deepcopy(full)
    example = torch.randn(2, *INPUT)
    prune_step(build_pruner(pruned, example, PruneSpec(ratio=args.ratio, round_to=8), 1000), pruned, example)
    pruned.eval()
    models = {"unpruned": full, f"pruned {args.ratio:g}": pruned}
    feed_array = np.random.default_rng(0).standard_normal((1, *INPUT)).astype(np.float32)
    with tempfile.TemporaryDirectory() as scratch:
        sessions, sizes = {}, {}
        for name, model in models.items():
            path = export_onnx(model, Path(scratch) / f"{name.split()[0]}.onnx")
            sizes[name] = path.stat().st_size
            sessions[name] = session(path)
        feeds = {name: {s.get_inputs()[0].name: feed_array} for name, s in sessions.items()}
        for name, sess in sessions.items():
            time_runs(sess, feeds[name], 20)  # warm-up
        samples: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(args.rounds):
            for name, sess in sessions.items():
                samples[name] += time_runs(sess, feeds[name], args.runs)
    rows = []
    for name, model in models.items():
        times = sorted(samples[name])
        rows.append({
            "model": name,
            "params": count_params(model),
            "macs": count_macs(model, INPUT),
            "onnx_bytes": sizes[name],
            "p50_ms": round(statistics.median(times), 3),
            "p90_ms": round(times[int(0.9 * (len(times) - 1))], 3),
            "runs": len(times),
        })  # fmt: skip
    base, small = rows
    ratios = {
        "mac_ratio": round(base["macs"] / small["macs"], 2),
        "latency_ratio": round(base["p50_ms"] / small["p50_ms"], 2),
    }
    table = "| model | params | MACs | ONNX size | ORT p50 (1 thread) | ORT p90 |\n|---|---:|---:|---:|---:|---:|\n"
    table += "".join(
        f"| {r['model']} | {r['params']:,} | {r['macs']:,} | {r['onnx_bytes'] / 2**20:.1f} MiB | "
        f"{r['p50_ms']:.2f} ms | {r['p90_ms']:.2f} ms |\n"
        for r in rows
    )
    table += (
        f"\nMACs {ratios['mac_ratio']:.2f}x fewer; measured latency {ratios['latency_ratio']:.2f}x lower. "
        f"MobileNetV2 224x224, channel ratio {args.ratio:g}, round_to 8, l2 importance, classifier kept; "
        f"{args.rounds} rounds x {args.runs} runs per model, alternating, after 20 warm-up runs.\n"
    )
    save("prune_latency", {"rows": rows, **ratios, "ratio": args.ratio}, table, started, quick=args.quick)
    print(table)


if __name__ == "__main__":
    main()
