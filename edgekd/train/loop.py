"""The Trainer: the one loop behind every stage that trains.

Distill, the recovery after pruning and QAT all call :meth:`Trainer.fit` with an :class:`Objective`
that says how a batch becomes a loss. The loop owns what they share: optimizer and schedule,
evaluation each epoch, the best checkpoint, early stopping, a progress bar and a guard that stops on
a NaN/Inf loss with the last good weights kept.
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from edgekd.data.sources import DataBundle
from edgekd.errors import ConfigError, TrainingError
from edgekd.inputs import forward, split_batch, to_device
from edgekd.models.checkpoint import atomic_save, safe_load
from edgekd.tasks import Task
from edgekd.tasks.classification import Classification
from edgekd.train import distributed
from edgekd.train.batchnorm import chance_warning, refresh_statistics, stale_statistics_suspected
from edgekd.train.evaluation import evaluate
from edgekd.utils.progress import on_terminal
from edgekd.utils.quiet import torch_deprecations_quieted
from edgekd.utils.typed import check_fields

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "constant")


@dataclass
class TrainConfig:
    """How a stage trains. Every field can be set from a recipe."""

    epochs: int = 5
    lr: float = 3e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    step_epochs: int = 1
    gamma: float = 0.5
    patience: int | None = None
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        check_fields(self)  # a wrong type is named here, not by a comparison deep in training
        check(self.epochs >= 0, "epochs", f"must be >= 0, got {self.epochs}")
        check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        check(
            self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got '{self.optimizer}'"
        )
        check(self.schedule in SCHEDULES, "schedule", f"must be one of {', '.join(SCHEDULES)}, got '{self.schedule}'")
        check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        check(self.step_epochs >= 1, "step_epochs", f"must be >= 1, got {self.step_epochs}")
        check(0 < self.gamma <= 1, "gamma", f"must be in (0, 1], got {self.gamma}")
        check(self.patience is None or self.patience >= 1, "patience", f"must be >= 1, got {self.patience}")
        check(self.grad_clip is None or self.grad_clip > 0, "grad_clip", f"must be > 0, got {self.grad_clip}")


def check(condition: bool, key: str, message: str) -> None:
    """Raise a ConfigError naming ``key`` when ``condition`` is false."""
    if not condition:
        raise ConfigError(f"{key}: {message}")


class Objective(Protocol):
    """How one batch becomes a loss; ``extra_modules`` (e.g. adapters) train with the model."""

    extra_modules: nn.Module | None

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (loss, student logits)."""
        ...


class LabelLoss:
    """Plain label training with the task's own loss (cross-entropy for classes, MSE for regression...):
    the teacher's pretraining and the no-teacher baseline."""

    extra_modules: nn.Module | None = None
    task: Task = Classification()

    def __init__(self, task: Task | None = None) -> None:
        self.task = task or Classification()

    def __call__(self, model, x, y, index):
        output = self.task.output_of(forward(model, x))
        return self.task.loss(output, y), output


class CrossEntropy(LabelLoss):
    """Label training of a classifier (:class:`LabelLoss` with the classification task)."""

    def __init__(self) -> None:
        super().__init__(Classification())


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float | None  # None where the task makes no per-sample decision (regression, pixels)
    val_score: float  # the task's monitored metric on validation (History.monitor)
    lr: float
    seconds: float
    warning: str | None = None  # validation at chance while training accuracy climbed, and the likely cause
    batchnorm_refreshed: bool = False  # validated with BatchNorm statistics re-estimated (edgekd.train.batchnorm)
    monitor: str = "accuracy"

    @property
    def val_accuracy(self) -> float | None:
        return self.val_score if self.monitor == "accuracy" else None


@dataclass
class History:
    """What a training run did, epoch by epoch; the best epoch is the best on ``monitor``."""

    epochs: list[EpochRecord] = field(default_factory=list)
    initial_val_score: float | None = None
    best_epoch: int | None = None
    best_val_score: float | None = None
    stopped_early: bool = False
    monitor: str = "accuracy"

    @property
    def initial_val_accuracy(self) -> float | None:
        return self.initial_val_score if self.monitor == "accuracy" else None

    @property
    def best_val_accuracy(self) -> float | None:
        return self.best_val_score if self.monitor == "accuracy" else None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> History:
        return cls(**{**raw, "epochs": [EpochRecord(**e) for e in raw.get("epochs", [])]})


def rng_state() -> dict:
    """Every random stream training may draw from, in a form ``torch.load(weights_only=True)`` reads."""
    _name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": position, "gauss": (has_gauss, cached)},
    }


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuples(state["python"]))
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], *numpy["gauss"]))


def _as_tuples(value):
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str) -> torch.device:
    """``auto`` is the GPU when there is one; under ``torchrun`` each rank takes its own GPU."""
    if not isinstance(device, (str, torch.device)):
        raise ConfigError(f"device: expected 'auto', 'cpu' or 'cuda', got {type(device).__name__}")
    device = str(device)
    try:
        torch.device(device if device != "auto" else "cpu")
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"device: '{device}' is not a device torch knows; use 'auto', 'cpu' or 'cuda'") from exc
    if device == "auto":
        return distributed.local_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' asked for, but no CUDA GPU is available")
    return distributed.local_device(torch.device(device))


class Trainer:
    """Runs an Objective over a DataBundle for ``config.epochs`` epochs.

    Under ``torchrun`` (see :mod:`edgekd.train.distributed`) every rank trains on its slice of each global
    batch with the gradients summed across ranks; validation is split over the ranks, and only rank 0
    writes checkpoints and prints. ``epoch_end`` is called on every rank after each epoch's steps
    (a teacher cache shares what each rank computed)."""

    def __init__(
        self,
        config: TrainConfig,
        device: str | torch.device = "cpu",
        checkpoint_dir: str | Path | None = None,
        quiet: bool = False,
        desc: str = "train",
        seed: int = 0,
        resume: bool = False,
        epoch_end: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.seed = seed
        self.resume = resume
        self.device = distributed.local_device(torch.device(device))
        self.epoch_end = epoch_end
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.quiet = quiet
        self.desc = desc

    def _optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, nesterov=True)
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)

    def _schedule(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
        c = self.config
        total = max(1, c.epochs * steps_per_epoch)
        if c.schedule == "cosine":
            return torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
            )
        if c.schedule == "step":
            return torch.optim.lr_scheduler.StepLR(optimizer, step_size=c.step_epochs * steps_per_epoch, gamma=c.gamma)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)

    @torch_deprecations_quieted()
    def fit(self, model: nn.Module, data: DataBundle, objective: Objective | None = None) -> History:
        """Train ``model`` in place; on return it holds the weights of its best validation epoch."""
        task = data.task
        objective = objective or LabelLoss(task)
        distributed.start(self.device)
        seed_everything(self.seed)
        if hasattr(data.train, "epoch"):
            data.train.epoch = 0  # the same seed gives the same batch order, whatever ran before
        if hasattr(data.train, "run_seed"):
            data.train.run_seed = self.seed  # and another seed another order, not only another init
        model.to(self.device)
        extra = objective.extra_modules
        params = [p for p in model.parameters() if p.requires_grad]
        if extra is not None:
            extra.to(self.device)
            params += [p for p in extra.parameters() if p.requires_grad]
        optimizer = self._optimizer(params)
        scheduler = self._schedule(optimizer, len(data.train))
        resumed = self._resume_point(model, extra, optimizer, scheduler) if self.resume else None
        if resumed is not None:
            history, best_state, done, bad_epochs = resumed
            if hasattr(data.train, "epoch"):
                data.train.epoch = done  # the batch order of epoch done+1, as an unbroken run would see it
            self._log(f"{self.desc}: resumed after epoch {done}/{self.config.epochs}")
        else:
            # The starting weights are a candidate too: fine-tuning that only makes a model worse (a
            # recovery after pruning, say) hands back what it was given, with best_epoch 0.
            initial = evaluate(model, data.val, self.device, split=True, task=task, width=data.num_classes)
            history = History(initial_val_score=initial, best_epoch=0, best_val_score=initial, monitor=task.monitor)
            best_state = copy.deepcopy(model.state_dict())
            if self.checkpoint_dir is not None and distributed.is_main():
                atomic_save({"model": best_state, "epoch": 0}, self.checkpoint_dir / "best.pt")
            done, bad_epochs = 0, 0
        if history.stopped_early:
            model.load_state_dict(best_state)
            return history
        for epoch in range(done + 1, self.config.epochs + 1):
            record = self._run_epoch(model, data, objective, optimizer, scheduler, params, epoch, best_state)
            history.epochs.append(record)
            improved = task.better(record.val_score, history.best_val_score)
            if improved:
                history.best_epoch, history.best_val_score = epoch, record.val_score
                best_state = copy.deepcopy(model.state_dict())
                bad_epochs = 0
            else:
                bad_epochs += 1
            if self.config.patience is not None and bad_epochs >= self.config.patience:
                history.stopped_early = True
            self._save(model, extra, optimizer, scheduler, epoch, history, improved, bad_epochs)
            if history.stopped_early:
                self._log(f"{self.desc}: early stop after epoch {epoch}: no gain in {bad_epochs} epochs")
                break
        model.load_state_dict(best_state)
        return history

    def _run_epoch(self, model, data, objective, optimizer, scheduler, params, epoch, last_good) -> EpochRecord:
        start = time.perf_counter()
        model.train()
        if objective.extra_modules is not None:
            objective.extra_modules.train()
        task = data.task
        loss_sum = correct = seen = 0.0
        decided = True
        bar = tqdm(
            total=len(data.train),
            desc=f"{self.desc} {epoch}/{self.config.epochs}",
            disable=self.quiet or not on_terminal() or not distributed.is_main(),
            leave=False,
            dynamic_ncols=True,
        )
        for step, batch in enumerate(data.train, start=1):
            sliced = distributed.shard(*split_batch(batch))
            if sliced is None:  # a last batch with fewer rows than ranks: every rank skips it alike
                bar.update()
                continue
            x, y, index, share = sliced
            x, y = to_device(x, self.device), y.to(self.device, non_blocking=True)
            loss, logits = objective(model, x, y, index)
            if not torch.isfinite(loss):
                model.load_state_dict(last_good)
                where = f"'{self.checkpoint_dir / 'best.pt'}'" if self.checkpoint_dir else "the model (in memory)"
                on_rank = f" on rank {distributed.rank()}" if distributed.active() else ""
                raise TrainingError(
                    f"{self.desc}: loss is {loss.item()} at epoch {epoch}, step {step}{on_rank}; stopped, "
                    f"the last good weights are kept in {where}; lower the learning rate or check the data"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.sum_gradients(params, share)
            if self.config.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(y)
            hits = task.batch_correct(logits, y)
            decided = decided and hits is not None
            correct += hits or 0.0
            seen += len(y)
            bar.update()
            if step % 20 == 0:
                shown = {"acc": f"{correct / seen:.4f}"} if decided else {}
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", **shown)
        bar.close()
        loss_sum, correct, seen = distributed.sums(loss_sum, correct, seen)
        distributed.sync_buffers(model)
        if objective.extra_modules is not None:
            distributed.sync_buffers(objective.extra_modules)
        if self.epoch_end is not None:
            self.epoch_end()
        val_score = evaluate(model, data.val, self.device, split=True, task=task, width=data.num_classes)
        train_accuracy = correct / max(seen, 1) if decided else None
        warning, refreshed = None, None
        if stale_statistics_suspected(model, train_accuracy, val_score, data.num_classes):
            # judge the epoch on statistics that describe its weights (edgekd.train.batchnorm)
            warning = chance_warning(model, train_accuracy, val_score, data.num_classes)
            refreshed = refresh_statistics(model, data, self.device, before=val_score)
            if refreshed["kept"]:
                val_score = refreshed["val_after"]
            if warning:
                warning += f"; with re-estimated statistics validation reaches {100 * val_score:.1f}%"
                if distributed.is_main():
                    print(f"edgekd: warning: {self.desc} epoch {epoch}: {warning}", file=sys.stderr, flush=True)
        record = EpochRecord(
            epoch=epoch,
            train_loss=loss_sum / max(seen, 1),
            train_accuracy=train_accuracy,
            val_score=val_score,
            lr=optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - start,
            warning=warning,
            batchnorm_refreshed=bool(refreshed and refreshed["kept"]),
            monitor=task.monitor,
        )
        train = f", train acc {train_accuracy:.4f}" if train_accuracy is not None else ""
        shown = "acc" if task.monitor == "accuracy" else task.monitor
        self._log(
            f"{self.desc} epoch {epoch}/{self.config.epochs}: loss {record.train_loss:.4f}{train}, "
            f"val {shown} {val_score:.4f} ({record.seconds:.1f}s)"
        )
        return record

    def _save(self, model, extra, optimizer, scheduler, epoch, history, best_improved, bad_epochs) -> None:
        """``best.pt`` first, then ``last.pt``: a kill between the two resumes from the epoch before,
        whose best weights are then still the ones on disk."""
        if self.checkpoint_dir is None or not distributed.is_main():
            return
        if best_improved:
            atomic_save({"model": model.state_dict(), "epoch": epoch}, self.checkpoint_dir / "best.pt")
        state = {
            "model": model.state_dict(),
            "extra": extra.state_dict() if extra is not None else None,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "bad_epochs": bad_epochs,
            "desc": self.desc,
            "rng": rng_state(),
            "history": history.as_dict(),
        }
        atomic_save(state, self.checkpoint_dir / "last.pt")

    def _resume_point(self, model, extra, optimizer, scheduler):
        """(history, best weights, epochs done, epochs without gain) from ``last.pt``, or None to start
        afresh (no checkpoint, or one written by another training run of this stage)."""
        if self.checkpoint_dir is None or not (self.checkpoint_dir / "last.pt").is_file():
            return None
        state = safe_load(self.checkpoint_dir / "last.pt")
        if not isinstance(state, dict) or state.get("desc") != self.desc or "rng" not in state:
            return None
        model.load_state_dict(state["model"])
        if extra is not None and state.get("extra") is not None:
            extra.load_state_dict(state["extra"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"])
        best = safe_load(self.checkpoint_dir / "best.pt")["model"]
        return History.from_dict(state["history"]), best, int(state["epoch"]), int(state.get("bad_epochs", 0))

    def _log(self, line: str) -> None:
        if not self.quiet and distributed.is_main():
            tqdm.write(line, file=sys.stderr)
