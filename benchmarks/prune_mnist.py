"""What pruning half the distilled MNIST student's channels costs in accuracy after recovery.

Runs examples/recipes/mnist_prune.yaml (the demo's distillation, then Prune ratio 0.5 with two
epochs of teacher-guided recovery) and compares the test accuracy before and after pruning. The bar:
at most 0.3 points lost. Run from the repository root:

    python -m benchmarks.prune_mnist
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.results_io import save
from edgekd.launch import run_recipe

RECIPE = Path(__file__).resolve().parent.parent / "examples" / "recipes" / "mnist_prune.yaml"
MAX_DROP_POINTS = 0.3


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        result = run_recipe(RECIPE, out_dir=str(Path(scratch) / "run"), quiet=True)
    ledger = {row["stage"]: row for row in result.report["ledger"]}
    distilled, pruned = ledger["distill"], ledger["prune"]
    drop = 100 * (distilled["test_accuracy"] - pruned["test_accuracy"])
    step = pruned["details"]["steps"][0]
    table = "| model | test accuracy | params | MACs | FP32 size (bytes) |\n|---|---:|---:|---:|---:|\n"
    for label, row in (("distilled student", distilled), ("pruned to half its channels + 2 epochs recovery", pruned)):
        table += (
            f"| {label} | {100 * row['test_accuracy']:.2f}% | {row['params']:,} | {row['macs']:,} | "
            f"{row['size_bytes']:,} |\n"
        )
    table += (
        f"\nAccuracy lost: {drop:.2f} points (bar: at most {MAX_DROP_POINTS}); "
        f"validation accuracy right after pruning, before recovery: {100 * step['val_accuracy_pruned']:.2f}%. "
        f"MACs {distilled['macs'] / pruned['macs']:.2f}x fewer, "
        f"params {distilled['params'] / pruned['params']:.2f}x fewer.\n"
    )
    results = {"distilled": distilled, "pruned": pruned, "drop_points": round(drop, 3), "bar_points": MAX_DROP_POINTS}
    save("prune_mnist", results, table, started)
    print(table)


if __name__ == "__main__":
    main()
