"""The Prune stage: remove channels for real, then recover by distillation from the teacher."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from dataclasses import dataclass

import torch
from torch import nn

from edgekd.distill.teaching import TeachingConfig, train_with_teacher
from edgekd.inputs import ModelInputs
from edgekd.prune.engine import (
    NEEDS_GRADIENTS,
    PruneSpec,
    accumulate_gradients,
    build_pruner,
    check_importance,
    model_cost,
    protected,
    prune_step,
    resolve_ignore,
    transformer_layout,
)
from edgekd.search.budget import parse_budget
from edgekd.search.netadapt import search
from edgekd.stage import RunContext, Stage, register_stage
from edgekd.train import check
from edgekd.train.batchnorm import recalibrate_batchnorm, refresh_note
from edgekd.train.evaluation import validation_score

SEARCH_ITERATIONS = 12


class FirstBatches:
    """The first ``count`` batches of a loader (a search step's short recovery)."""

    def __init__(self, loader, count: int) -> None:
        self.loader, self.count = loader, count

    def __len__(self) -> int:
        return min(self.count, len(self.loader))

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.count)


@register_stage("prune")
@dataclass
class Prune(TeachingConfig, Stage):
    """Structured channel pruning (torch-pruning's dependency graph) with teacher-guided recovery.

    Args:
        ratio: fraction of channels to remove, in [0, 1).
        target_macs: instead of ``ratio``, keep at most this fraction of the input model's MACs; the
            ratio is found by bisection. Give one of ``target_macs`` and ``target_params`` at most.
        target_params: the same for the parameter count.
        budget: instead of a ratio, what the shipped file must meet: ``{"latency_ms": 2.0, "target":
            "mobile-like", "format": "tflite"}``, ``{"size_kb": 500}`` or ``{"macs": 5e6}``; per-group
            ratios are searched NetAdapt-style on measured latency (``edgekd.search.netadapt``,
            options in ``edgekd.search.budget``). The search path goes to the ledger.
        importance: how channels are ranked: l1, l2, taylor (gradients), bn_scale, lamp, fpgm.
        global_pruning: rank channels across layers instead of the same ratio in every layer.
        iterative_steps: prune in this many steps, with ``epochs`` recovery epochs after each.
        round_to: keep channel counts multiples of this (SIMD-friendly); None for exact counts.
        ignore: module names never pruned, besides the classifier head and a language model's output
            head, which are always kept whole.
        calibration_batches: training batches that re-estimate BatchNorm statistics after pruning.

    The recovery after each cut is ``epochs`` of distillation at ``lr`` with the distillation options
    (``temperature``, ``alpha``, ``features``...).
    """

    epochs: int = 2
    lr: float = 1e-3
    ratio: float = 0.5
    target_macs: float | None = None
    target_params: float | None = None
    budget: dict | None = None
    importance: str = "l2"
    global_pruning: bool = False
    iterative_steps: int = 1
    round_to: int | None = 8
    ignore: list[str] | None = None
    calibration_batches: int = 50
    name: str = "prune"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.ratio < 1.0, "ratio", f"must be in [0, 1), got {self.ratio}")
        for key in ("target_macs", "target_params"):
            value = getattr(self, key)
            check(value is None or 0.0 < value <= 1.0, key, f"must be a fraction in (0, 1], got {value}")
        check(
            self.target_macs is None or self.target_params is None,
            "target_macs",
            "give target_macs or target_params, not both",
        )
        if self.budget is not None:
            parse_budget(self.budget)  # each mistake named before any training
            check(self._target is None, "budget", "give budget or target_macs/target_params, not both")
        check_importance(self.importance)
        check(self.iterative_steps >= 1, "iterative_steps", f"must be >= 1, got {self.iterative_steps}")
        check(self.round_to is None or self.round_to >= 1, "round_to", f"must be >= 1, got {self.round_to}")
        check(self.calibration_batches >= 0, "calibration_batches", f"must be >= 0, got {self.calibration_batches}")

    def validate(self, teachers: list[nn.Module], student: nn.Module) -> None:
        self.validate_taps(teachers, student)
        if self.ignore is not None:
            resolve_ignore(student, self.ignore)

    def spec(self, ratio: float) -> PruneSpec:
        return PruneSpec(ratio, self.importance, self.global_pruning, self.round_to, self.ignore)

    def run(self, ctx: RunContext, student: nn.Module) -> nn.Module:
        work = copy.deepcopy(student)  # the input model is never left half-pruned
        data, device, example = ctx.data, ctx.device, ctx.example
        before = model_cost(work, data.signature)
        layout = transformer_layout(work)  # heads and feed-forward width per block, for the report
        searched = None
        if self.budget is not None:
            work, searched = search(work, ctx, parse_budget(self.budget), self.spec(0.0), self._recovery(ctx))
            ratio = None
        else:
            ratio = self.ratio_for_target(work, example, data, device) if self._target else self.ratio
            pruner = build_pruner(work, example, self.spec(ratio), data.num_classes, self.iterative_steps)
        steps = []
        for step in range(1, (1 if searched else self.iterative_steps) + 1):
            if searched is None:
                if self.importance in NEEDS_GRADIENTS:
                    accumulate_gradients(work, data.train, device, task=data.task)
                prune_step(pruner, work, example)
            work.zero_grad(set_to_none=True)
            recalibrate_batchnorm(work, data.train, device, self.calibration_batches)
            record = {
                "step": step,
                **model_cost(work, data.signature),
                "val_accuracy_pruned": validation_score(work, data, device),
            }
            if self.epochs > 0:
                desc = self.name if self.iterative_steps == 1 else f"{self.name} {step}/{self.iterative_steps}"
                history, facts = train_with_teacher(ctx, work, self, desc=desc)
                record.update(val_accuracy_recovered=history.best_val_score, **facts)
            steps.append(record)
        after = model_cost(work, data.signature)
        kept = protected(student, data.num_classes, self.ignore, example)  # a forward: once
        how = (
            f"budget {searched['budget']}: {len(searched['steps'])} search steps, {searched['final']:.4g} "
            f"{searched['unit']} measured"
            if searched
            else f"ratio {ratio:.3f}"
        )
        ctx.record(
            f"{self.importance} {how}, round_to {self.round_to}: "
            f"MACs x{before['macs'] / max(after['macs'], 1):.2f} fewer, "
            f"params x{before['params'] / max(after['params'], 1):.2f} fewer; recovery: {self.describe()}"
            + refresh_note(steps[-1] if steps else {})
            + _nothing_pruned_note(before, after, ratio, kept),
            ratio=ratio,
            ignore=kept,
            before=before,
            after=after,
            steps=steps,
            **({"budget_search": searched} if searched else {}),
            **({"transformer": {"before": layout, "after": transformer_layout(work)}} if layout else {}),
        )
        return work

    def _recovery(self, ctx: RunContext):
        """A few batches of distillation after each search step (NetAdapt's short-term fine-tune)."""

        def recover(model: nn.Module, batches: int) -> None:
            short = dataclasses.replace(ctx.data, train=FirstBatches(ctx.data.train, batches))
            step_ctx = dataclasses.replace(ctx, data=short, stage_dir=ctx.stage_dir / "search", resume=False)
            config = dataclasses.replace(self, epochs=1, budget=None)
            train_with_teacher(step_ctx, model, config, desc=f"{self.name} search")

        return recover

    @property
    def _target(self) -> tuple[str, float] | None:
        if self.target_macs is not None:
            return "macs", self.target_macs
        if self.target_params is not None:
            return "params", self.target_params
        return None

    def ratio_for_target(self, model: nn.Module, example: ModelInputs, data, device: torch.device) -> float:
        """The smallest channel ratio whose pruned model keeps at most the target fraction (bisection)."""
        metric, target = self._target
        full = model_cost(model, data.signature)[metric]
        low, high = 0.0, 0.95
        for _ in range(SEARCH_ITERATIONS):
            middle = (low + high) / 2
            trial = copy.deepcopy(model)
            pruner = build_pruner(trial, example, self.spec(middle), data.num_classes)
            if self.importance in NEEDS_GRADIENTS:
                accumulate_gradients(trial, data.train, device, batches=2, task=data.task)
            prune_step(pruner, trial, example)
            if model_cost(trial, data.signature)[metric] / full <= target:
                high = middle
            else:
                low = middle
        return high


def _nothing_pruned_note(before: dict, after: dict, ratio: float | None, kept: list[str]) -> str:
    """A warning when a ratio above zero removed no channel: the stage must not pass for a compression."""
    if ratio is None or ratio == 0 or after["params"] < before["params"]:
        return ""  # a budget search says itself whether it had to cut
    kept_text = ", ".join(f"'{name}'" if name else "the model itself" for name in kept[:4]) or "none"
    return (
        f"; warning: nothing was pruned: no layer has channels to remove outside those kept whole ({kept_text}: "
        "the output head and ignore=)"
    )
