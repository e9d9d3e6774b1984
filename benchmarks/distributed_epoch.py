"""Epoch time of a distillation run in 1 process and in N processes (torchrun, gloo) on this machine.

Each run is ``python -m edgekd run <recipe> --nproc N`` on the full training set: the demo's student
distilled from the demo's teacher (random weights: the cost does not depend on them), teacher outputs
cached, so the first epoch runs teacher and student and the later ones the student alone. One process
uses every core as threads; N processes get ``cores / N`` threads each (what torchrun sets). The runs
are interleaved and repeated; an epoch's time is the fastest across repeats, and all raw times are
recorded. This measures the CPU of this machine only: it says nothing about GPUs or several hosts.
Run from the repository root:

    python -m benchmarks.run distributed_epoch [--quick] [--nproc 2] [--repeats 2] [--epochs 3]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.results_io import markdown_table, save
from benchmarks.study_args import parse, study_parser

RECIPE = """
name: distributed-epoch
seed: 0
data: {{source: {source}, batch_size: 128{limits}}}
teacher: {{model: mnist-resnet}}
student: {{model: mnist-mobilenet}}
stages:
  - distill: {{epochs: {epochs}, lr: 0.005}}
"""


def epoch_seconds(recipe: Path, out_dir: Path, nproc: int) -> tuple[list[float], float]:
    """The distillation epochs' seconds (each with its validation pass) and the run's wall time."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "edgekd", "run", str(recipe), "--quiet", "--out-dir", str(out_dir),
               "--nproc", str(nproc)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
    report = json.loads((out_dir / "report.json").read_text())
    row = next(r for r in report["ledger"] if r["stage"] == "distill")
    return [round(e["seconds"], 2) for e in row["details"]["history"]["epochs"]], time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", default="fashion-mnist")
    args = parse(parser, argv, {"repeats": 1, "epochs": 2})
    started = time.perf_counter()
    limits = ", limit_train: 1000, limit_test: 200" if args.quick else ""
    counts = [1, args.nproc]
    times: dict[int, list[list[float]]] = {n: [] for n in counts}
    walls: dict[int, list[float]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory(prefix="edgekd-distributed-") as scratch:
        folder = Path(scratch)
        recipe = folder / "recipe.yaml"
        recipe.write_text(RECIPE.format(source=args.dataset, limits=limits, epochs=args.epochs))
        for repeat in range(args.repeats):
            for n in counts:
                seconds, wall = epoch_seconds(recipe, folder / f"run-{n}-{repeat}", n)
                times[n].append(seconds)
                walls[n].append(round(wall, 1))
    rows = []
    for n in counts:
        first = min(t[0] for t in times[n])
        steady = min(s for t in times[n] for s in t[1:])
        rows.append({"processes": n, "threads_each": max(1, (os.cpu_count() or 1) // n), "first_epoch_s": first,
                     "steady_epoch_s": steady, "epoch_seconds": times[n], "run_wall_s": walls[n]})  # fmt: skip
    base = rows[0]
    for row in rows:
        row["steady_speedup"] = round(base["steady_epoch_s"] / row["steady_epoch_s"], 2)
        row["first_speedup"] = round(base["first_epoch_s"] / row["first_epoch_s"], 2)
    table = markdown_table(
        ["processes", "threads each", "first epoch (teacher + student)", "steady epoch (student)", "speed-up"],
        [[str(r["processes"]), str(r["threads_each"]), f"{r['first_epoch_s']:.1f} s ({r['first_speedup']:.2f}x)",
          f"{r['steady_epoch_s']:.1f} s", f"{r['steady_speedup']:.2f}x"] for r in rows],
    )  # fmt: skip
    table += (
        f"\nDistillation of mnist-mobilenet from mnist-resnet on {args.dataset} (the whole training split, batch "
        f"128, AdamW), {args.epochs} epochs per run, {args.repeats} interleaved repeats; each epoch includes "
        "its validation pass; fastest epoch across repeats. CPU only (gloo over loopback, "
        f"{os.cpu_count()} cores): no GPU or multi-host number is claimed.\n"
    )
    path = save("distributed_epoch", {"dataset": args.dataset, "epochs": args.epochs, "repeats": args.repeats,
                                      "rows": rows}, table, started, quick=args.quick)  # fmt: skip
    print(table)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
