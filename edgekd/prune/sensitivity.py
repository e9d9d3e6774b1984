"""Pruning sensitivity: prune each layer group alone at a few ratios and measure what it costs.

Tells the user which layers to ``ignore`` (or prune less) before spending epochs on recovery: a
layer whose accuracy collapses at 25% is one to protect. Accuracy is measured right after pruning
and BatchNorm recalibration, without recovery training, on the validation set.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch_pruning as tp
from torch import nn

from edgekd.data.sources import DataBundle, example_inputs
from edgekd.models.cost import count_macs
from edgekd.prune.engine import (
    PruneSpec,
    build_pruner,
    protected,
    prune_step,
    resolve_ignore,
)
from edgekd.train.batchnorm import recalibrate_batchnorm
from edgekd.train.evaluation import validation_score
from edgekd.utils.fileio import atomic_write, atomic_write_text

DEFAULT_RATIOS = (0.25, 0.5, 0.75)


@dataclass
class SensitivityRow:
    layer: str
    channels: int
    ratio: float
    channels_left: int
    val_accuracy: float
    drop_points: float
    macs_fraction: float


def prunable_layers(model: nn.Module, example: torch.Tensor, ignore: list[str]) -> list[str]:
    """Names of the modules that lead each prunable group in torch-pruning's dependency graph."""
    names = {module: name for name, module in model.named_modules()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
        groups = graph.get_all_groups(
            ignored_layers=resolve_ignore(model, ignore), root_module_types=[nn.Conv2d, nn.Linear]
        )
        return [names[group[0].dep.target.module] for group in groups]


def _out_channels(module: nn.Module) -> int:
    return int(getattr(module, "out_channels", getattr(module, "out_features", 0)))


def layer_sensitivity(
    model: nn.Module,
    data: DataBundle,
    ratios: tuple[float, ...] = DEFAULT_RATIOS,
    importance: str = "l2",
    ignore: list[str] | None = None,
    device: torch.device | str = "cpu",
    calibration_batches: int = 20,
) -> list[SensitivityRow]:
    """One row per (layer, ratio): the validation accuracy with only that layer's group pruned."""
    device = torch.device(device)
    model = model.to(device).eval()
    example = example_inputs(data.val, 2, device)
    ignore = protected(model, data.num_classes, ignore, example)
    reference = copy.deepcopy(model)  # recalibrated like every trial, so only the pruning differs
    recalibrate_batchnorm(reference, data.train, device, calibration_batches)
    baseline = validation_score(reference, data, device)
    full_macs = count_macs(model, data.signature)
    modules = dict(model.named_modules())
    rows = []
    for layer in prunable_layers(model, example, ignore):
        for ratio in ratios:
            trial = copy.deepcopy(model)
            spec = PruneSpec(ratio=0.0, importance=importance, round_to=None, ignore=ignore, per_layer={layer: ratio})
            prune_step(build_pruner(trial, example, spec, data.num_classes), trial, example)
            recalibrate_batchnorm(trial, data.train, device, calibration_batches)
            accuracy = validation_score(trial, data, device)
            rows.append(
                SensitivityRow(
                    layer=layer,
                    channels=_out_channels(modules[layer]),
                    ratio=ratio,
                    channels_left=_out_channels(dict(trial.named_modules())[layer]),
                    val_accuracy=accuracy,
                    drop_points=round(100 * (data.task.rank(baseline) - data.task.rank(accuracy)), 3),
                    macs_fraction=round(count_macs(trial, data.signature) / full_macs, 4),
                )
            )
    return rows


def to_markdown(rows: list[SensitivityRow]) -> str:
    ratios = sorted({r.ratio for r in rows})
    layers = list(dict.fromkeys(r.layer for r in rows))
    lookup = {(r.layer, r.ratio): r for r in rows}
    header = "| layer | channels | " + " | ".join(f"drop at {r:g}" for r in ratios) + " |\n"
    header += "|---|---:|" + "---:|" * len(ratios) + "\n"
    lines = []
    for layer in layers:
        cells = " | ".join(f"{lookup[(layer, r)].drop_points:+.2f} pts" for r in ratios)
        lines.append(f"| {layer} | {lookup[(layer, ratios[0])].channels} | {cells} |")
    note = "\nAccuracy drop (validation, points) with only that layer's group pruned, before any recovery.\n"
    return header + "\n".join(lines) + "\n" + note


def plot(rows: list[SensitivityRow], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for layer in dict.fromkeys(r.layer for r in rows):
        points = sorted((r.ratio, r.drop_points) for r in rows if r.layer == layer)
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=layer)
    axis.set_xlabel("channel ratio pruned (this layer only)")
    axis.set_ylabel("validation accuracy drop (points)")
    axis.set_title("Pruning sensitivity per layer")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
    plt.close(figure)
    return path


def write_report(rows: list[SensitivityRow], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "json": out_dir / "sensitivity.json",
        "markdown": out_dir / "sensitivity.md",
        "plot": out_dir / "sensitivity.png",
    }
    atomic_write_text(files["json"], json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    atomic_write_text(files["markdown"], "# Pruning sensitivity\n\n" + to_markdown(rows))
    plot(rows, files["plot"])
    return files
