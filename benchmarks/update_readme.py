"""Rewrite the README's result blocks from benchmarks/results/*.json, so no number is typed by hand.

python -m benchmarks.update_readme          # rewrite README.md
python -m benchmarks.update_readme --check  # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _load(study: str) -> dict:
    return json.loads((RESULTS / f"{study}.json").read_text())


def table(header: list[str], rows: list[list[str]], footer: str) -> str:
    """A Markdown table (first column left-aligned, numbers right-aligned) and a closing line."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([*lines, "", footer])


def demo_block() -> str:
    study = _load("demo_mnist")
    ledger, machine = study["results"]["ledger"], study["machine"]
    rows = []
    for row in (ledger[0], ledger[-1]):
        is_teacher = row["stage"] == "teacher"
        role = "teacher (mnist-resnet)" if is_teacher else f"student after {row['stage']} (mnist-mobilenet)"
        rows.append([
            role, f"{100 * row['test_accuracy']:.2f}%", f"{row['params']:,}", f"{row['macs']:,}",
            f"{row['size_bytes'] / 1024:.0f} KiB", f"{row['wall_s']:.0f} s",
        ])  # fmt: skip
    footer = (
        f"Whole demo from a cold cache: {study['results']['checks']['wall_s'][0]:.0f} s on {machine['cpu']} "
        f"({machine['cores']} cores), `{study['command']}`, {study['date']}."
    )
    return table(["model", "test accuracy", "params", "MACs per image", "FP32 size", "time"], rows, footer)


def epoch_cost_block() -> str:
    study = _load("distill_epoch_cost")
    rows = [
        [r["run"], f"{r['first_epoch_s']:.1f} s", f"{r['steady_epoch_s']:.1f} s", f"{r['steady_ratio_to_ce']:.2f}x"]
        for r in study["results"]["rows"]
    ]
    footer = f"`{study['command']}` on {study['machine']['cpu']}, {study['date']}."
    return table(["training run", "first epoch", "later epochs", "vs label-only"], rows, footer)


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


BLOCKS = {
    "demo-results": demo_block,
    "epoch-cost": epoch_cost_block,
    "prune-latency": prune_latency_block,
    "prune-mnist": prune_mnist_block,
}


def render(readme: str) -> str:
    for name, build in BLOCKS.items():
        pattern = re.compile(rf"(<!-- {name} -->\n).*?(<!-- /{name} -->)", re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no <!-- {name} --> block")
        text = build() + "\n"
        readme = pattern.sub(lambda m, text=text: m.group(1) + text + m.group(2), readme)
    return readme


def main() -> None:
    parser = argparse.ArgumentParser(description="Regenerate README result blocks from benchmarks/results.")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when README.md is stale")
    args = parser.parse_args()
    path = ROOT / "README.md"
    current = path.read_text()
    fresh = render(current)
    if args.check:
        sys.exit(0 if fresh == current else 1)
    path.write_text(fresh)


if __name__ == "__main__":
    main()
