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
from collections.abc import Iterable

import torch
from torch import nn

from edgekd.data import DataBundle

CALIBRATION_BATCHES = 50
SLOW_MOMENTUM = 0.05  # below this, statistics lag the weights by tens of steps or more


def batchnorm_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, loader: Iterable, device: torch.device, batches: int = CALIBRATION_BATCHES
) -> bool:
    """Re-estimate every BatchNorm's running statistics as a cumulative average over ``batches``
    training batches (weights untouched); returns whether the model has any BatchNorm."""
    norms = [m for _, m in batchnorm_modules(model)]
    if not norms:
        return False
    momenta = [m.momentum for m in norms]
    was_training = model.training
    epoch = getattr(loader, "epoch", None)
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.random.fork_rng(devices=[]):  # dropout draws here must not shift later training
        for i, (x, *_rest) in enumerate(loader):
            if i >= batches:
                break
            model(x.to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
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
    """Re-estimate the statistics on a copy and keep them when validation accuracy improves.

    ``before`` is the model's validation accuracy when the caller just measured it. Returns what was
    measured (for the ledger), or None for a model without BatchNorm."""
    from edgekd.train import evaluate  # the Trainer imports this module

    if not batchnorm_modules(model):
        return None
    before = evaluate(model, data.val, device) if before is None else before
    candidate = copy.deepcopy(model)
    recalibrate_batchnorm(candidate, data.train, device, batches)
    after = evaluate(candidate, data.val, device)
    kept = after > before
    if kept:
        model.load_state_dict(candidate.state_dict())
    return {"val_accuracy_before": before, "val_accuracy_after": after, "kept": kept, "batches": batches}


def stale_statistics_suspected(model: nn.Module, train_accuracy: float, val_accuracy: float, classes: int) -> bool:
    """Worth re-estimating before a validation verdict: slow momentum, or validation stuck at chance."""
    norms = batchnorm_modules(model)
    if not norms:
        return False
    slow = any(m.momentum is not None and m.momentum < SLOW_MOMENTUM for _, m in norms)
    return slow or _at_chance(train_accuracy, val_accuracy, classes)


def _at_chance(train_accuracy: float, val_accuracy: float, classes: int) -> bool:
    chance = 1.0 / max(classes, 1)
    return val_accuracy <= 1.5 * chance and train_accuracy >= min(chance + 0.3, 0.9)


def chance_warning(model: nn.Module, train_accuracy: float, val_accuracy: float, classes: int) -> str | None:
    """A line naming the likely cause when validation sits at chance while training accuracy climbs."""
    if not _at_chance(train_accuracy, val_accuracy, classes):
        return None
    chance = 1.0 / max(classes, 1)
    norms = batchnorm_modules(model)
    slow = [(name, m.momentum) for name, m in norms if m.momentum is not None and m.momentum < SLOW_MOMENTUM]
    seen = f"validation accuracy {100 * val_accuracy:.1f}% (chance {100 * chance:.1f}%) while train accuracy is "
    seen += f"{100 * train_accuracy:.1f}%"
    if slow:
        name, momentum = slow[0]
        return (
            f"{seen}: BatchNorm running statistics lag the weights ({_layers(len(slow))} with momentum "
            f"{momentum:g}, e.g. '{name}', the TensorFlow convention); edgekd re-estimates them, "
            "or set momentum=0.1 on those layers"
        )
    if batchnorm_modules(model):
        return f"{seen}: BatchNorm running statistics that do not match the weights are the usual cause"
    return f"{seen}: check that validation inputs are normalized as the training inputs are"


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
    # the model holds its best epoch, whose validation accuracy the Trainer has just measured
    refreshed = refresh_statistics(model, data, device, before=history.best_val_accuracy)
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
        before, after = refreshed["val_accuracy_before"], refreshed["val_accuracy_after"]
        words += f"; BatchNorm statistics re-estimated after training: val {100 * before:.2f}% -> {100 * after:.2f}%"
    if facts.get("warning"):
        words += "; validation sat at chance (see warning)"
    return words
