"""Epoch time of a distillation run in 1 process and in N processes (torchrun, gloo) on this machine.

Each run is ``python -m edgekd run <recipe> --nproc N`` on the full training set: the demo's student
distilled from the demo's teacher (random weights: the cost does not depend on them), teacher outputs
cached, so the first epoch runs teacher and student and the later ones the student alone. One process
uses every core as threads; N processes get ``cores / N`` threads each (what torchrun sets). The runs
are interleaved and repeated; an epoch's time is the fastest across repeats, and all raw times are
recorded. This measures the CPU of this machine only: it says nothing about GPUs or several hosts.
Run from the repository root:

    python -m benchmarks.run distributed_epoch [--quick] [--nproc 2] [--repeats 2] [--epochs 3] [--gpu]

``--gpu`` (on a machine with a CUDA GPU) adds a row: 1 process training on the GPU, against the CPU rows.
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
device: {device}
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


def row_of(device: str, processes: int, times: list[list[float]], walls: list[float]) -> dict:
    """One configuration's epochs: the first (teacher and student) and the fastest later one, across repeats."""
    return {
        "device": device,
        "processes": processes,
        "threads_each": max(1, (os.cpu_count() or 1) // processes),
        "first_epoch_s": min(t[0] for t in times),
        "steady_epoch_s": min(s for t in times for s in t[1:]),
        "epoch_seconds": times,
        "run_wall_s": walls,
    }


def main(argv: list[str] | None = None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--gpu", action="store_true", help="add 1 process on the CUDA GPU")
    args = parse(parser, argv, {"repeats": 1, "epochs": 2})
    started = time.perf_counter()
    limits = ", limit_train: 1000, limit_test: 200" if args.quick else ""
    runs = [("cpu", 1), ("cpu", args.nproc)] + ([("cuda", 1)] if args.gpu else [])
    times: dict[tuple, list[list[float]]] = {run: [] for run in runs}
    walls: dict[tuple, list[float]] = {run: [] for run in runs}
    with tempfile.TemporaryDirectory(prefix="edgekd-distributed-") as scratch:
        folder = Path(scratch)
        for device in {device for device, _ in runs}:
            text = RECIPE.format(source=args.dataset, limits=limits, epochs=args.epochs, device=device)
            (folder / f"{device}.yaml").write_text(text)
        for repeat in range(args.repeats):
            for device, n in runs:
                recipe = folder / f"{device}.yaml"
                seconds, wall = epoch_seconds(recipe, folder / f"run-{device}-{n}-{repeat}", n)
                times[device, n].append(seconds)
                walls[device, n].append(round(wall, 1))
    rows = [row_of(device, n, times[device, n], walls[device, n]) for device, n in runs]
    for row in rows:
        row["steady_speedup"] = round(rows[0]["steady_epoch_s"] / row["steady_epoch_s"], 2)
        row["first_speedup"] = round(rows[0]["first_epoch_s"] / row["first_epoch_s"], 2)
    header = ["device", "processes", "threads each", "first epoch (teacher + student)", "steady epoch", "speed-up"]
    cells = [
        [r["device"], str(r["processes"]), str(r["threads_each"]),
         f"{r['first_epoch_s']:.1f} s ({r['first_speedup']:.2f}x)", f"{r['steady_epoch_s']:.1f} s",
         f"{r['steady_speedup']:.2f}x"]
        for r in rows
    ]  # fmt: skip
    gpu = "the GPU row: 1 process on the CUDA GPU" if args.gpu else "no GPU row (--gpu on a GPU machine adds it)"
    table = markdown_table(header, cells) + (
        f"\nDistillation of mnist-mobilenet from mnist-resnet on {args.dataset} (the whole training split, batch "
        f"128, AdamW), {args.epochs} epochs per run, {args.repeats} interleaved repeats; each epoch includes "
        f"its validation pass; fastest epoch across repeats. Several processes: gloo over loopback on "
        f"{os.cpu_count()} CPU cores; {gpu}; no multi-host number is claimed.\n"
    )
    path = save("distributed_epoch", {"dataset": args.dataset, "epochs": args.epochs, "repeats": args.repeats,
                                      "rows": rows}, table, started, quick=args.quick)  # fmt: skip
    print(table)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
