"""BatchNorm running statistics that match the weights they normalize.

Running statistics follow the weights with a lag set by the momentum. With PyTorch's 0.1 they keep
up; with TensorFlow's convention (momentum 0.01 in PyTorch terms, as EfficientNet-Lite ports carry)
or after pruning changed the channel mix, they can describe a model that no longer exists: train
accuracy climbs while validation, which uses the running statistics, sits at chance. A cumulative
average over a few hundred training batches puts them right; it is kept only where validation
accuracy says it helped.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from edgekd.data.sources import DataBundle
from edgekd.inputs import forward, split_batch, to_device
from edgekd.train.evaluation import evaluate
from edgekd.utils.quiet import quiet_import

CALIBRATION_BATCHES = 50
SLOW_MOMENTUM = 0.05  # below this, statistics lag the weights by tens of steps or more
READ_BACK_MOMENTUM = 0.5  # modules step with it while re-estimating: the batch statistic reads back exactly


@dataclass
class NormStatistics:
    """One BatchNorm's running statistics, in an ``nn.BatchNorm`` module or a captured graph.

    A QAT graph has no BatchNorm modules: its ``aten.batch_norm`` nodes read buffers of the graph and
    carry their momentum as an argument. Both kinds are re-estimated the same way."""

    name: str
    momentum: float | None
    running_mean: torch.Tensor
    running_var: torch.Tensor
    module: nn.Module | None = None  # the nn.BatchNorm; None for a graph node


_GRAPH_BATCH_NORM = (
    torch.ops.aten.batch_norm.default,
    torch.ops.aten._native_batch_norm_legit.default,
    torch.ops.aten._native_batch_norm_legit_no_training.default,
)


def norm_statistics(model: nn.Module) -> list[NormStatistics]:
    """Every BatchNorm with running statistics in ``model``: modules first, then graph nodes."""
    found = [
        NormStatistics(name, m.momentum, m.running_mean, m.running_var, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
    ]
    for graph_module in (m for m in model.modules() if isinstance(m, torch.fx.GraphModule)):
        for node in graph_module.graph.nodes:
            if node.op != "call_function" or node.target not in _GRAPH_BATCH_NORM or len(node.args) < 7:
                continue
            mean, var, momentum = node.args[3], node.args[4], node.args[6]
            if not all(isinstance(n, torch.fx.Node) and n.op == "get_attr" for n in (mean, var)):
                continue
            name = mean.target.removesuffix("_running_mean").removesuffix(".running_mean")
            found.append(
                NormStatistics(
                    name, float(momentum), _fetch(graph_module, mean.target), _fetch(graph_module, var.target)
                )
            )
    return found


def _fetch(module: nn.Module, dotted: str) -> torch.Tensor:
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, loader: Iterable, device: torch.device, batches: int = CALIBRATION_BATCHES
) -> bool:
    """Re-estimate every BatchNorm's running statistics as a cumulative average over ``batches``
    training batches (weights untouched); returns whether the model has any. A QAT graph runs with
    fake quantization off meanwhile: it scales its weights by the running variance before quantizing
    them, so with quantization on, a moving variance is clipped by weight ranges set for the old one
    and the estimate feeds on itself.

    Each train-mode pass moves a running statistic to ``(1 - m) * old + m * batch``; the batch's own
    statistic is read back from that step, so the average needs no change to the layer, whether it
    is a module or a node of a QAT graph with its momentum baked in."""
    layers = norm_statistics(model)
    if not layers:
        return False
    momenta = [layer.module.momentum for layer in layers if layer.module is not None]
    for layer in layers:
        if layer.module is not None:
            layer.module.momentum = READ_BACK_MOMENTUM
    was_training = model.training
    epoch = getattr(loader, "epoch", None)
    sums = [(torch.zeros_like(layer.running_mean), torch.zeros_like(layer.running_var)) for layer in layers]
    seen = 0
    model.train()
    _switch_fake_quant(model, on=False)  # QAT graphs: statistics of the float computation (see above)
    with torch.random.fork_rng(devices=[]):  # dropout draws here must not shift later training
        for i, batch in enumerate(loader):
            if i >= batches:
                break
            before = [(layer.running_mean.clone(), layer.running_var.clone()) for layer in layers]
            forward(model, to_device(split_batch(batch, labels=False)[0], device))
            for layer, (mean_sum, var_sum), (old_mean, old_var) in zip(layers, sums, before):
                m = layer.momentum if layer.module is None else READ_BACK_MOMENTUM
                mean_sum += (layer.running_mean - (1 - m) * old_mean) / m
                var_sum += (layer.running_var - (1 - m) * old_var) / m
            seen += 1
    if seen:
        for layer, (mean_sum, var_sum) in zip(layers, sums):
            layer.running_mean.copy_(mean_sum / seen)
            layer.running_var.copy_((var_sum / seen).clamp(min=0))
    for layer, momentum in zip((layer for layer in layers if layer.module is not None), momenta):
        layer.module.momentum = momentum
    _switch_fake_quant(model, on=True)
    model.train(was_training)
    if epoch is not None:
        loader.epoch = epoch  # the loader's next shuffle is the one it would have been
    return True


def refresh_statistics(
    model: nn.Module,
    data: DataBundle,
    device: torch.device,
    batches: int = CALIBRATION_BATCHES,
    before: float | None = None,
) -> dict | None:
    """Re-estimate the statistics on a copy and keep them when the task's validation metric improves.

    ``before`` is the model's validation metric when the caller just measured it. Returns what was
    measured (for the ledger), or None for a model without BatchNorm."""
    if not norm_statistics(model):
        return None
    task = data.task
    before = evaluate(model, data.val, device, task=task, width=data.num_classes) if before is None else before
    candidate = copy.deepcopy(model)
    recalibrate_batchnorm(candidate, data.train, device, batches)
    after = evaluate(candidate, data.val, device, task=task, width=data.num_classes)
    kept = task.better(after, before)
    if kept:
        model.load_state_dict(candidate.state_dict())
    return {"metric": task.monitor, "val_before": before, "val_after": after, "kept": kept, "batches": batches}


def stale_statistics_suspected(
    model: nn.Module, train_accuracy: float | None, val_accuracy: float, classes: int
) -> bool:
    """Worth re-estimating before a validation verdict: slow momentum, or validation stuck at chance."""
    norms = norm_statistics(model)
    if not norms:
        return False
    slow = any(n.momentum is not None and n.momentum < SLOW_MOMENTUM for n in norms)
    return slow or _at_chance(train_accuracy, val_accuracy, classes)


def _at_chance(train_accuracy: float | None, val_accuracy: float, classes: int) -> bool:
    if train_accuracy is None:  # no per-sample decisions (regression, pixels): chance is not defined
        return False
    chance = 1.0 / max(classes, 1)
    return val_accuracy <= 1.5 * chance and train_accuracy >= min(chance + 0.3, 0.9)


def chance_warning(model: nn.Module, train_accuracy: float | None, val_accuracy: float, classes: int) -> str | None:
    """A line naming the likely cause when validation sits at chance while training accuracy climbs."""
    if not _at_chance(train_accuracy, val_accuracy, classes):
        return None
    chance = 1.0 / max(classes, 1)
    norms = norm_statistics(model)
    slow = [(n.name, n.momentum) for n in norms if n.momentum is not None and n.momentum < SLOW_MOMENTUM]
    seen = f"validation accuracy {100 * val_accuracy:.1f}% (chance {100 * chance:.1f}%) while train accuracy is "
    seen += f"{100 * train_accuracy:.1f}%"
    if slow:
        name, momentum = slow[0]
        return (
            f"{seen}: BatchNorm running statistics lag the weights ({_layers(len(slow))} with momentum "
            f"{momentum:g}, e.g. '{name}', the TensorFlow convention); edgekd re-estimates them, "
            "or set momentum=0.1 on those layers"
        )
    if norms:
        return f"{seen}: BatchNorm running statistics that do not match the weights are the usual cause"
    return f"{seen}: check that validation inputs are normalized as the training inputs are"


def validation_text(metric: str, value: float | None) -> str:
    """``97.10%`` for accuracy, ``rmse 0.1234`` for another monitored metric."""
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if metric == "accuracy" else f"{metric} {value:.4g}"


def _layers(count: int) -> str:
    return "1 layer" if count == 1 else f"{count} layers"


def after_training(model: nn.Module, history, data: DataBundle, device: torch.device) -> dict:
    """Facts for the ledger after a training stage: the Trainer's warning when validation sat at
    chance, and the BatchNorm re-estimate where it helped. Every training stage ends here (Distill,
    Prune recovery, Train), so a student ported from TensorFlow is not judged on stale statistics."""
    facts: dict = {}
    warnings = [f"epoch {e.epoch}: {e.warning}" for e in history.epochs if e.warning]
    if warnings:
        facts["warning"] = warnings[0] + (f" (and {len(warnings) - 1} later epochs)" if len(warnings) > 1 else "")
    if history.epochs and history.best_epoch == 0:  # trained, yet the starting weights were never beaten
        facts["not_improved"] = (
            f"no epoch beat the starting weights (val {validation_text(history.monitor, history.initial_val_score)}): "
            "the model is handed on as it came"
        )
    # the model holds its best epoch, whose validation metric the Trainer has just measured
    refreshed = refresh_statistics(model, data, device, before=history.best_val_score)
    if refreshed is not None:
        facts["batchnorm_refresh"] = refreshed
        facts["batchnorm_refreshed_epochs"] = [e.epoch for e in history.epochs if e.batchnorm_refreshed]
    return facts


def refresh_note(facts: dict) -> str:
    """The ledger summary's words for re-estimates that changed accuracy, else nothing."""
    words = ""
    epochs = facts.get("batchnorm_refreshed_epochs")
    if epochs:
        words += f"; BatchNorm statistics re-estimated before validating {len(epochs)} epochs"
    refreshed = facts.get("batchnorm_refresh")
    if refreshed and refreshed["kept"]:
        metric, before, after = refreshed["metric"], refreshed["val_before"], refreshed["val_after"]
        shown = (f"{100 * before:.2f}% -> {100 * after:.2f}%" if metric == "accuracy"
                 else f"{metric} {before:.4g} -> {after:.4g}")  # fmt: skip
        words += f"; BatchNorm statistics re-estimated after training: val {shown}"
    if facts.get("warning"):
        words += "; validation sat at chance (see warning)"
    if facts.get("not_improved"):
        words += f"; {facts['not_improved']}"
    return words


def _switch_fake_quant(model: nn.Module, on: bool) -> None:
    """Turn a QAT graph's fake quantization on or off. A model holds torchao's fake-quant modules only
    once torchao is imported, so a float model never pays for importing it (seconds, for every recipe)."""
    if "torchao" not in sys.modules:
        return
    pt2e = quiet_import("torchao.quantization.pt2e")  # its import logs CUDA kernels a CPU build lacks
    model.apply(pt2e.enable_fake_quant if on else pt2e.disable_fake_quant)
