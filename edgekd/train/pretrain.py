"""Training a teacher on labels once, and reusing it from a cache on later runs.

The cache key covers everything that decides the result: the architecture and its initial weights,
the data description, the training config and the seed. Change any of them and the teacher is
trained again; change none and the demo skips minutes of work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from edgekd.cache import default_cache_dir
from edgekd.data.sources import DataBundle, as_bundle, example_inputs
from edgekd.errors import ConfigError
from edgekd.models.checkpoint import atomic_save, load_weights
from edgekd.train import LabelLoss, TrainConfig, Trainer, distributed, evaluate, resolve_device
from edgekd.train.batchnorm import after_training, validation_text
from edgekd.train.evaluation import near_chance
from edgekd.train.preflight import check_models_accept_data

CACHE_VERSION = 1
CACHED_NOTE = "trained earlier"  # how a note starts when the teacher came from the cache


@dataclass
class PretrainResult:
    model: nn.Module
    from_cache: bool
    path: Path | None
    wall_s: float
    val_score: float | None = None  # the task's monitored metric of the model returned, on validation
    improved: bool = True  # whether training beat the starting weights (a cached model: it did when cached)
    warning: str | None = None  # the model sits at chance on the validation data, or training never helped
    metric: str = "accuracy"  # what val_score is

    @property
    def val_accuracy(self) -> float | None:
        return self.val_score if self.metric == "accuracy" else None

    @property
    def note(self) -> str:
        where = f"{CACHED_NOTE}, loaded from cache {self.path}" if self.from_cache else (
            f"trained on labels in this run ({self.wall_s:.0f} s)"
        )  # fmt: skip
        if self.val_score is not None:
            where += f", val {validation_text(self.metric, self.val_score)}"
        return where + (f"; warning: {self.warning}" if self.warning else "")


def noted_from_cache(note: str) -> bool:
    """Whether a :attr:`PretrainResult.note` says the cache gave the model: results files keep the note."""
    return note.startswith(CACHED_NOTE)


def cache_key(model: nn.Module, data: DataBundle, config: TrainConfig, seed: int) -> str:
    digest = hashlib.sha256()
    meta = {
        "version": CACHE_VERSION,
        "model": f"{type(model).__module__}.{type(model).__qualname__}",
        "data": data.describe(),
        "config": dataclasses.asdict(config),
        "seed": seed,
    }
    digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def pretrain(
    model: nn.Module,
    data: DataBundle,
    config: TrainConfig,
    seed: int = 0,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    quiet: bool = False,
) -> PretrainResult:
    """Train ``model`` on labels with its task's loss (``data.task``: cross-entropy for a classifier), or
    load the result of an identical earlier training.

    ``data`` is anything a Pipeline takes (a DataBundle, a dict of loaders); ``config`` a TrainConfig or
    the mapping of its fields."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    data, config = as_bundle(data), _as_config(config)
    start = time.perf_counter()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / "teachers" / f"{type(model).__name__}-{cache_key(model, data, config, seed)}.pt"
    target = resolve_device(device)
    task = data.task
    distributed.start(target)
    check_models_accept_data([("model", model)], data, example_inputs(data.val, 2), target)
    if distributed.agree(use_cache and path.is_file()):  # under torchrun, rank 0's answer for every rank
        load_weights(model, path)
        score = evaluate(model, data.val, target, task=task, width=data.num_classes)  # a cache is checked, not trusted
        result = PretrainResult(model, True, path, time.perf_counter() - start, score, metric=task.monitor)
        return _warned(result, _at_chance(score, data), quiet)
    trainer = Trainer(config, target, quiet=quiet, desc="teacher", seed=seed)
    history = trainer.fit(model, data, LabelLoss(task))
    facts = after_training(model, history, data, target)  # BatchNorm statistics in step, as every stage keeps them
    model.eval()
    score = evaluate(model, data.val, target, task=task, width=data.num_classes)
    improved = bool(history.best_epoch)
    warning = _at_chance(score, data) or facts.get("warning")
    if not improved:
        warning = (
            f"no epoch beat the starting weights (val {validation_text(history.monitor, history.initial_val_score)}): "
            "the model returned is the untrained one; raise epochs or lr, or check the labels"
        )
    if use_cache and distributed.is_main() and improved:  # an untrained model is never cached as a teacher
        atomic_save({k: v.cpu() for k, v in model.state_dict().items()}, path)
    result = PretrainResult(model, False, path if use_cache and improved else None, time.perf_counter() - start,
                            score, improved, metric=task.monitor)  # fmt: skip
    return _warned(result, warning, quiet)


def _as_config(config: object) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, Mapping):
        unknown_keys = sorted(set(config) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown_keys:
            known = ", ".join(f.name for f in dataclasses.fields(TrainConfig))
            raise ConfigError(f"config: unknown key {unknown_keys[0]!r}; TrainConfig takes {known}")
        return TrainConfig(**config)
    raise ConfigError(f"config: expected ek.TrainConfig(epochs=..., lr=...), got {type(config).__name__}")


def _at_chance(accuracy: float, data: DataBundle) -> str | None:
    classes = data.num_classes
    if data.task.monitor == "accuracy" and near_chance(accuracy, classes):
        return f"validation accuracy {100 * accuracy:.2f}% is at chance ({100 / classes:.1f}% for {classes} classes)"
    return None


def _warned(result: PretrainResult, warning: str | None, quiet: bool) -> PretrainResult:
    """Attach the warning and say it: a teacher that knows nothing would teach nothing without a word."""
    result.warning = warning
    if warning and distributed.is_main():
        print(f"[edgekd] warning: teacher pretraining: {warning}", file=sys.stderr)
    return result
