"""Pruning to a budget: a NetAdapt-style search judged on the shipped file's measured latency.

Each step asks every prunable layer group for a candidate: the group alone cut by the smallest share
of its channels (torch-pruning, the stage's importance and ``round_to``) that takes the step's share of
the remaining excess off the predicted cost. Latency is predicted from the per-layer table
(:mod:`edgekd.search.latency_table`) mapped onto whole-model measurements; MACs and weight bytes
are counted exactly. Each candidate's accuracy is judged on validation data after re-estimating its
BatchNorm statistics; the most accurate candidate is kept, distilled for a few batches, exported in the
shipped format and precision and measured on the target by the benchmark harness. The search stops at
the first file within budget. A budget that even the smallest allowed model misses is refused before
any step, with the best latency that model reaches.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import tempfile
from pathlib import Path

from torch import nn

from edgekd.cache import default_cache_dir
from edgekd.errors import ConfigError, EdgekdError
from edgekd.models.cost import count_params
from edgekd.prune.engine import PruneSpec, build_pruner, model_cost, prune_step
from edgekd.search.budget import Budget
from edgekd.search.latency_table import LatencyTable
from edgekd.search.measurement import Measurement
from edgekd.stage import RunContext
from edgekd.targets import load_target
from edgekd.train import distributed
from edgekd.train.batchnorm import recalibrate_batchnorm
from edgekd.train.evaluation import validation_score
from edgekd.utils.fileio import atomic_write_text

SHARES = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75)  # of a group's current channels, tried smallest first
FLOOR_SHARES = (0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5)  # the deepest uniform cut torch-pruning takes
CALIBRATION_BATCHES, VAL_BATCHES = 8, 16
UNIFORM_BISECTIONS = 7


class BudgetError(EdgekdError):
    """A budget no model the search may build can meet."""


@dataclasses.dataclass
class Candidate:
    group: str  # one group's name, or "a + b" for cuts combined in one step
    share: float | None  # of the group's channels; None for combined cuts
    model: nn.Module
    predicted: float
    val_accuracy: float | None = None


class Judge:
    """The cost of a model against the budget: counted (MACs, weight bytes) or measured (latency).

    Latency is predicted cheaply for every candidate (the per-layer table, or the reference phone's
    roofline from the model's own counts) and mapped onto the whole-file measurements by a line: what the
    table leaves out (the runtime's fixed cost per call, the ops between layers) is the intercept."""

    def __init__(self, budget: Budget, ctx: RunContext) -> None:
        self.budget, self.ctx = budget, ctx
        self.example = ctx.example
        self.table: LatencyTable | None = None
        self.points: list[tuple[float, float]] = []  # (table or roofline sum, measured) of every measured file
        if budget.metric == "latency_ms":
            if ctx.measurement is None:
                raise ConfigError("budget.latency_ms: files are measured by the Pipeline; run Prune inside ek.Pipeline")
            self.measurement: Measurement = ctx.measurement
            self.target = load_target(budget.target)
            if not budget.estimate:
                folder = default_cache_dir() / "latency"
                self.table = LatencyTable(self.target, budget.format, folder, self.measurement.time_file)

    def predicted(self, model: nn.Module) -> float:
        """The cost the search ranks by (exact for MACs and size, scaled to measurements for latency)."""
        if self.budget.metric == "macs":
            return float(model_cost(model, self.ctx.data.signature)["macs"])
        if self.budget.metric == "size_kb":
            return weight_kib(model, self.budget.precision)
        return self._fitted(self._unscaled(model))

    def _fitted(self, raw: float) -> float:
        """``raw`` on the least-squares line through the measured points (a ratio while there is one)."""
        if not self.points:
            return raw
        xs, ys = zip(*self.points)
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        spread = sum((x - mean_x) ** 2 for x in xs)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in self.points) / spread if spread > 0 else 0.0
        if slope <= 0:  # one point, or measurements too noisy to order: proportional to the last one
            return raw * ys[-1] / max(xs[-1], 1e-12)
        return mean_y + slope * (raw - mean_x)

    def _unscaled(self, model: nn.Module) -> float:
        if self.table is not None:
            return self.table.total(model, self.example)
        macs = model_cost(model, self.ctx.data.signature)["macs"]
        nbytes = weight_kib(model, self.budget.precision) * 1024
        phone, int8 = self.target.reference_phones[0], self.budget.precision == "int8"
        return self.measurement.roofline(macs, nbytes, phone, int8)

    def measured(self, model: nn.Module) -> float:
        """The shipped cost: the file in the shipped format and precision, benchmarked on the target (or
        estimated on its reference phone); counted costs are their own measurement."""
        if self.budget.metric != "latency_ms":
            return self.predicted(model)
        value = None
        if distributed.is_main():  # under torchrun rank 0 measures alone, on a quiet machine, for every rank
            with tempfile.TemporaryDirectory(prefix="edgekd-budget-") as scratch:
                path = self.measurement.ship(model, self.ctx, self.budget, Path(scratch))
                measure = self.measurement.estimate if self.budget.estimate else self.measurement.bench_p50
                value = measure(path, self.target)
        value = distributed.agree(value)
        self.points.append((self._unscaled(model), value))
        return value


def weight_kib(model: nn.Module, precision: str) -> float:
    """The weight bytes of the shipped file: one byte per weight in int8, four in fp32."""
    return sum(p.numel() for p in model.parameters()) * (1 if precision == "int8" else 4) / 1024


def prunable_groups(model: nn.Module, ctx: RunContext, spec: PruneSpec) -> list[str]:
    """The root module of every layer group torch-pruning may cut (the classifier head is left alone)."""
    pruner = build_pruner(model, ctx.example, spec, ctx.data.num_classes)
    names = {id(m): n for n, m in model.named_modules()}
    roots = []
    groups = pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers, root_module_types=pruner.root_module_types)
    for group in groups:
        name = names.get(id(group[0].dep.target.module))
        if name and name not in roots:
            roots.append(name)
    return roots


def pruned_copy(model: nn.Module, ctx: RunContext, spec: PruneSpec) -> nn.Module | None:
    """A copy of ``model`` pruned by ``spec``; None when torch-pruning removes nothing (or refuses)."""
    trial = copy.deepcopy(model)
    before = count_params(trial)
    try:
        pruner = build_pruner(trial, ctx.example, spec, ctx.data.num_classes)
        prune_step(pruner, trial, ctx.example)
    except EdgekdError:
        return None
    return trial if count_params(trial) < before else None


def cut_group(model: nn.Module, ctx: RunContext, spec: PruneSpec, group: str, share: float) -> nn.Module | None:
    """A copy of ``model`` with ``share`` of ``group``'s channels removed; None when it cannot lose them."""
    return pruned_copy(model, ctx, dataclasses.replace(spec, ratio=0.0, per_layer={group: share}, global_pruning=False))


def smallest_model(model: nn.Module, ctx: RunContext, spec: PruneSpec) -> tuple[nn.Module, float]:
    """Every group cut as far as the search may go, and that share: the floor of any budget. The first
    share from ``max_ratio`` down that torch-pruning takes (``round_to`` may round a deep cut away)."""
    for share in (spec.max_ratio, *(r for r in FLOOR_SHARES if r < spec.max_ratio)):
        floor = pruned_copy(model, ctx, dataclasses.replace(spec, ratio=share))
        if floor is not None:
            recalibrate_batchnorm(floor, ctx.data.train, ctx.device, CALIBRATION_BATCHES)
            return floor, share
    return copy.deepcopy(model), 0.0


def short_accuracy(model: nn.Module, ctx: RunContext) -> float:
    """Validation accuracy after re-estimating BatchNorm statistics, on the first validation batches."""
    recalibrate_batchnorm(model, ctx.data.train, ctx.device, CALIBRATION_BATCHES)
    score = validation_score(model, ctx.data, ctx.device, itertools.islice(ctx.data.val, VAL_BATCHES))
    return ctx.data.task.rank(score)  # higher is better whatever the task monitors


def search(model: nn.Module, ctx: RunContext, budget: Budget, spec: PruneSpec, recover) -> tuple[nn.Module, dict]:
    """The pruned model within ``budget`` and the search's record (every step's group, cut, predicted
    and measured cost, validation accuracy). ``recover(model, batches)`` distils for a few batches."""
    judge = Judge(budget, ctx)
    start = judge.measured(model)
    record = {"budget": budget.describe(), "limit": budget.limit, "aim": budget.aim, "unit": budget.unit,
              "search": budget.search, "start": start, "steps": []}  # fmt: skip
    if start <= budget.aim:
        record.update(final=start, margin=budget.limit - start, met=True)
        return model, record
    smallest, share = smallest_model(model, ctx, spec)
    floor = judge.measured(smallest)  # the floor and the start span the line predictions are read from
    record["floor"] = floor
    if floor > budget.aim:
        hand = " (within the limit, not the margin kept for timing noise: budget.margin: 0 allows it)"
        raise BudgetError(
            f"budget {budget.describe()} cannot be met: the smallest model pruning may cut (every group at "
            f"{share:.0%}) gives {floor:.4g} {budget.unit}, the unpruned {start:.4g} {budget.unit}"
            + (hand if floor <= budget.limit else "")
        )
    if budget.search == "uniform":
        current, cost = _uniform(model, ctx, budget, spec, judge, record, share)
    else:
        current, cost = _netadapt(model, ctx, budget, spec, judge, record, start, recover)
    record.update(final=cost, margin=budget.limit - cost, met=cost <= budget.aim)
    if cost > budget.aim:
        kept = _keep_record(record, ctx)
        raise BudgetError(
            f"budget {budget.describe()} not met after {len(record['steps'])} steps: the search reached "
            f"{cost:.4g} {budget.unit} (raise budget.steps, or lower round_to; its path: {kept})"
        )
    return current, record


def _keep_record(record: dict, ctx: RunContext) -> Path:
    """A search that failed leaves its path in the stage folder, for the user to see where it stalled."""
    path = Path(ctx.stage_dir) / "budget_search.json"
    if distributed.is_main():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record, indent=1))
    return path


def _netadapt(model, ctx, budget: Budget, spec: PruneSpec, judge: Judge, record: dict, start: float, recover):
    """Group by group: each step keeps the candidate cut that loses least validation accuracy."""
    current, cost = model, start
    for step in range(1, budget.steps + 1):
        goal = judge.predicted(current) - (cost - budget.aim) / max(1, budget.steps - step + 1) * 1.5
        groups = prunable_groups(current, ctx, spec)
        candidates = [c for g in groups if (c := _candidate(current, ctx, spec, g, goal, judge)) is not None]
        if not candidates:
            break
        # NetAdapt ranks by accuracy only the cuts that reach the step's goal (a small group's harmless
        # cut that buys little would otherwise win every step); when no single group can reach it, the
        # most accurate cuts are combined until they do
        reaching = [c for c in candidates if _reaches(c.predicted, goal)]
        for candidate in reaching or candidates:
            candidate.val_accuracy = short_accuracy(candidate.model, ctx)
        if reaching:
            best = max(reaching, key=lambda c: (c.val_accuracy, -c.predicted))
        else:
            best = _combined(current, ctx, spec, candidates, goal, judge)
        current = best.model
        if budget.recovery_batches:
            recover(current, budget.recovery_batches)
        cost = judge.measured(current)
        _log_step(record, ctx, current, best.group, best.share, best.predicted, cost, best.val_accuracy)
        if cost <= budget.aim:
            break
    return current, cost


def _reaches(predicted: float, goal: float) -> bool:
    return predicted <= goal or math.isclose(predicted, goal)


def _combined(model, ctx, spec: PruneSpec, candidates: list[Candidate], goal: float, judge: Judge) -> Candidate:
    """The candidates' cuts applied together, most accurate first, until the step's goal is reached."""
    cuts: dict[str, float] = {}
    best = max(candidates, key=lambda c: c.val_accuracy)
    for candidate in sorted(candidates, key=lambda c: -c.val_accuracy):
        trial_cuts = {**cuts, candidate.group: candidate.share}
        per_layer = dataclasses.replace(spec, ratio=0.0, per_layer=trial_cuts, global_pruning=False)
        trial = pruned_copy(model, ctx, per_layer)
        if trial is None:
            continue
        cuts = trial_cuts
        best = Candidate(" + ".join(f"{g} -{share:.0%}" for g, share in cuts.items()), None, trial,
                         judge.predicted(trial))  # fmt: skip
        if _reaches(best.predicted, goal):
            break
    if best.val_accuracy is None:
        best.val_accuracy = short_accuracy(best.model, ctx)
    return best


def _uniform(model, ctx, budget: Budget, spec: PruneSpec, judge: Judge, record: dict, deepest: float):
    """The baseline NetAdapt is measured against: one ratio in every group, the smallest whose file meets
    the budget. Bisection on the predicted cost first; while that ratio's file misses, bisection on
    measured files between it and the floor (which meets the budget), each measured ratio a step."""
    low, high = 0.0, deepest
    for _ in range(UNIFORM_BISECTIONS):
        middle = (low + high) / 2
        trial = pruned_copy(model, ctx, dataclasses.replace(spec, ratio=middle))
        if trial is not None and judge.predicted(trial) <= budget.aim:
            high = middle
        else:
            low = middle
    met: tuple[nn.Module, float] | None = None
    ratio, low, high = high, high, deepest
    for _ in range(budget.steps):
        current = pruned_copy(model, ctx, dataclasses.replace(spec, ratio=ratio)) or model
        predicted = judge.predicted(current)
        cost = judge.measured(current)
        _log_step(record, ctx, current, "all", ratio, predicted, cost, short_accuracy(current, ctx))
        if cost <= budget.aim:
            met, high = (current, cost), ratio
            if ratio == low or high - low < 0.02:
                break
        else:
            low = ratio
        ratio = (low + high) / 2
    if met is None:  # out of steps before a measured file met it: the floor's cut does
        current = pruned_copy(model, ctx, dataclasses.replace(spec, ratio=deepest)) or model
        met = current, judge.measured(current)
    return met


def _log_step(record: dict, ctx, model: nn.Module, group: str, share: float | None, predicted: float,
              measured: float, val_accuracy: float) -> None:  # fmt: skip
    record["steps"].append({
        "step": len(record["steps"]) + 1, "group": group, "share": share, "predicted": predicted,
        "measured": measured, "val_accuracy": val_accuracy, **model_cost(model, ctx.data.signature),
    })  # fmt: skip


def _candidate(model, ctx, spec, group: str, goal: float, judge: Judge) -> Candidate | None:
    """The group cut by the smallest share that brings the predicted cost to ``goal`` (else the largest
    cut it takes), found by bisection over SHARES: each trial is a pruned copy and maybe new table rows.
    A share too small to remove one rounded channel counts as missing the goal."""
    tried: dict[int, Candidate | None] = {}

    def trial(index: int) -> Candidate | None:
        if index not in tried:
            cut = cut_group(model, ctx, spec, group, SHARES[index])
            tried[index] = None if cut is None else Candidate(group, SHARES[index], cut, judge.predicted(cut))
        return tried[index]

    low, high, best = 0, len(SHARES) - 1, None
    while low <= high:
        middle = (low + high) // 2
        candidate = trial(middle)
        if candidate is not None and (candidate.predicted <= goal or math.isclose(candidate.predicted, goal)):
            best, high = candidate, middle - 1
        else:
            low = middle + 1
    if best is None:
        best = next((c for _, c in sorted(tried.items(), reverse=True) if c is not None), None)
    return best
