"""What pruning half the distilled MNIST student's channels costs in accuracy after recovery.

Runs examples/recipes/mnist_prune.yaml (the demo's distillation, then Prune ratio 0.5 layer by layer
with two epochs of teacher-guided recovery), then prunes the same distilled student a second way:
half of all its channels chosen globally by LAMP importance, which keeps more of the sensitive
layers. The bar: at most 0.3 points of test accuracy lost. Run from the repository root:

    python -m benchmarks.run prune_mnist [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from torch import nn

import edgekd as ek
from benchmarks.results_io import save
from benchmarks.study_args import parse, study_parser
from edgekd.models.files import load_model
from edgekd.recipe import schema as recipes
from edgekd.recipe.launch import quick_variant, run_recipe

RECIPE = Path(__file__).resolve().parent.parent / "examples" / "recipes" / "mnist_prune.yaml"
MAX_DROP_POINTS = 0.3


def channels(model) -> int:
    return sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))


def main(argv: list[str] | None = None) -> None:
    args = parse(study_parser(__doc__), argv, {})
    started = time.perf_counter()
    recipe = recipes.load(RECIPE)
    recipe = quick_variant(recipe) if args.quick else recipe
    uniform = recipe.stages[-1]
    with tempfile.TemporaryDirectory() as scratch:
        result = run_recipe(RECIPE, out_dir=str(Path(scratch) / "run"), quiet=True, quick=args.quick)
        distilled_model = load_model(
            ek.models.get("mnist-mobilenet"), result.run_dir / "checkpoints/01-distill/model.pt"
        )
        global_stage = ek.Prune(
            ratio=0.5, global_pruning=True, importance="lamp", round_to=uniform.round_to, epochs=uniform.epochs,
            lr=uniform.lr, temperature=uniform.temperature, alpha=uniform.alpha, name="prune-global",
        )  # fmt: skip
        second = ek.Pipeline(
            teacher=result.teachers, student=distilled_model, data=recipes.build_data(recipe), stages=[global_stage],
            out_dir=Path(scratch) / "global", seed=recipe.seed, quiet=True,
        ).run()  # fmt: skip
    ledger = {row["stage"]: row for row in result.report["ledger"]}
    distilled = ledger["distill"]
    variants = {
        "uniform: every layer halved (l2)": (ledger["prune"], result.model),
        "global: half of all channels (LAMP)": (second.report["ledger"][-1], second.model),
    }
    base_channels = channels(distilled_model)
    table = "| model | test accuracy | lost | channels | params | MACs |\n|---|---:|---:|---:|---:|---:|\n"
    table += (
        f"| distilled student | {100 * distilled['test_accuracy']:.2f}% | - | {base_channels} | "
        f"{distilled['params']:,} | {distilled['macs']:,} |\n"
    )
    rows = {}
    for label, (row, model) in variants.items():
        drop = 100 * (distilled["test_accuracy"] - row["test_accuracy"])
        rows[label] = {**row, "drop_points": round(drop, 3), "channels": channels(model)}
        table += (
            f"| {label} | {100 * row['test_accuracy']:.2f}% | {drop:.2f} pts | {channels(model)} | "
            f"{row['params']:,} | {row['macs']:,} |\n"
        )
    table += (
        f"\nBoth prune ratio 0.5 with round_to {uniform.round_to} and recover {uniform.epochs} epochs by distillation "
        f"(lr {uniform.lr}, T={uniform.temperature:g}, alpha={uniform.alpha:g}). Bar: at most {MAX_DROP_POINTS} "
        "points lost.\n"
    )
    results = {"distilled": distilled, "variants": rows, "bar_points": MAX_DROP_POINTS, "base_channels": base_channels}
    save("prune_mnist", results, table, started, quick=args.quick)
    print(table)


if __name__ == "__main__":
    main()
