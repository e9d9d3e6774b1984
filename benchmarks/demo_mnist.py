"""The MNIST demo from a cold start: teacher training included, nothing cached.

Checks the demo's bar on this machine (under 10 minutes, teacher >= 99.0%, student >= 98.5%) and
records the ledger. Run from the repository root:

    python -m benchmarks.demo_mnist
"""

from __future__ import annotations

import os
import tempfile
import time
from importlib.resources import files

from benchmarks.results_io import save
from edgekd.launch import run_recipe

BAR = {"wall_s": 600, "teacher_accuracy": 0.990, "student_accuracy": 0.985}


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["EDGEKD_CACHE"] = os.path.join(scratch, "cache")  # cold: the teacher trains too
        recipe = files("edgekd.recipes").joinpath("mnist.yaml")
        result = run_recipe(str(recipe), out_dir=os.path.join(scratch, "run"), quiet=True)
    wall = time.perf_counter() - started
    ledger = result.report["ledger"]
    teacher, student = ledger[0], ledger[-1]
    checks = {
        "wall_s": (round(wall, 1), wall < BAR["wall_s"]),
        "teacher_accuracy": (teacher["test_accuracy"], teacher["test_accuracy"] >= BAR["teacher_accuracy"]),
        "student_accuracy": (student["test_accuracy"], student["test_accuracy"] >= BAR["student_accuracy"]),
    }
    table = "| stage | test accuracy | params | MACs | FP32 size (bytes) | wall time |\n"
    table += "|---|---:|---:|---:|---:|---:|\n"
    table += "".join(
        f"| {r['stage']} | {100 * r['test_accuracy']:.2f}% | {r['params']:,} | {r['macs']:,} | "
        f"{r['size_bytes']:,} | {r['wall_s']:.0f} s |\n"
        for r in ledger
    )
    table += "\n| bar | measured | required | met |\n|---|---:|---:|---|\n"
    table += "".join(f"| {k} | {v} | {BAR[k]} | {'yes' if ok else 'NO'} |\n" for k, (v, ok) in checks.items())
    table += (
        f"\nMAC ratio teacher/student: {teacher['macs'] / student['macs']:.1f}x. "
        "Wall time counts the whole demo from a cold cache: data loading, teacher pretraining, distillation.\n"
    )
    save("demo_mnist", {"ledger": ledger, "checks": checks, "bar": BAR}, table, started)
    print(table)


if __name__ == "__main__":
    main()
