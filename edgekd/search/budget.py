"""What a budget-driven Prune must reach: a latency, a file size or a MAC count, and where it counts.

``Prune(budget={"latency_ms": 2.0, "target": "mobile-like", "format": "tflite"})`` asks for the shipped
file to run in 2 ms on the named benchmark target; ``{"size_kb": 500}`` bounds the shipped file's
weight bytes (int8: one byte per weight), ``{"macs": 5e6}`` the multiply-accumulates of one sample.
``"estimate": true`` judges latency by the target's first reference phone (a roofline estimate,
always labelled so) instead of measuring on the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edgekd.errors import ConfigError
from edgekd.utils.naming import unknown

METRICS = {"latency_ms": "ms", "size_kb": "KiB", "macs": "MACs"}
FORMATS = ("tflite", "onnx")
PRECISIONS = ("int8", "fp32")
SEARCHES = ("netadapt", "uniform")
OPTIONS = {
    "target": str, "format": str, "precision": str, "estimate": bool, "search": str, "steps": int,
    "recovery_batches": int, "margin": float,
}  # fmt: skip
# timings of one file in separate processes spread by a few percent on a shared machine: a measured
# latency budget is searched this far under its limit, so that the shipped file measured again meets it
TIMING_MARGIN = 0.03


@dataclass(frozen=True)
class Budget:
    """One limit on the shipped model and how it is judged.

    Attributes:
        metric: ``latency_ms``, ``size_kb`` or ``macs``; limit: its largest allowed value.
        target, format: where latency is measured (a benchmark target and the file format shipped).
        precision: the shipped file's precision (``int8`` when a Quantize stage follows).
        estimate: judge latency by the target's reference-phone roofline instead of measuring it.
        search: ``netadapt`` (per-group cuts chosen on validation accuracy) or ``uniform`` (one ratio in
            every group, the smallest that meets the budget: the baseline to compare against).
        steps: at most this many search steps; recovery_batches: short distillation after each step.
        margin: the share of the limit the search keeps in hand (None: TIMING_MARGIN for measured
            latency, 0 for estimates, sizes and MACs, which do not vary between measurements).
    """

    metric: str
    limit: float
    target: str = "mobile-like"
    format: str = "tflite"
    precision: str = "int8"
    estimate: bool = False
    search: str = "netadapt"
    steps: int = 12
    recovery_batches: int = 20
    margin: float | None = None

    @property
    def unit(self) -> str:
        return METRICS[self.metric]

    @property
    def kept_in_hand(self) -> float:
        if self.margin is not None:
            return self.margin
        return TIMING_MARGIN if self.metric == "latency_ms" and not self.estimate else 0.0

    @property
    def aim(self) -> float:
        """What the search must reach: the limit less the margin kept for timing noise."""
        return self.limit * (1 - self.kept_in_hand)

    def describe(self) -> str:
        qualifiers = [self.format, self.precision] if self.metric == "latency_ms" else []
        qualifiers += [f"aiming {self.kept_in_hand:.0%} under"] if self.kept_in_hand else []
        where = f" on {self.target}" if self.metric == "latency_ms" else ""
        where += f" ({', '.join(qualifiers)})" if qualifiers else ""
        kind = " (reference-phone estimate)" if self.estimate else ""
        how = ", one uniform ratio" if self.search == "uniform" else ""
        return f"{self.metric} <= {self.limit:g}{where}{kind}{how}"


def parse_budget(raw: Mapping | Budget) -> Budget:
    """A recipe's ``budget:`` mapping -> Budget, each mistake one ConfigError line naming its key."""
    if isinstance(raw, Budget):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"budget: must be a mapping like {{latency_ms: 2.0, target: mobile-like}}, got {raw!r}")
    limits = [key for key in raw if key in METRICS]
    if len(limits) != 1:
        given = ", ".join(limits) if limits else "none"
        raise ConfigError(f"budget: give exactly one of {', '.join(METRICS)} (got {given})")
    for key, value in raw.items():
        if key in METRICS:
            continue
        if key not in OPTIONS:
            raise ConfigError(f"budget: {unknown('option', str(key), [*METRICS, *OPTIONS])}")
        if OPTIONS[key] is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, OPTIONS[key]) or (OPTIONS[key] is int and isinstance(value, bool)):
            raise ConfigError(f"budget.{key}: wrong type {type(value).__name__}, expected {OPTIONS[key].__name__}")
    metric = limits[0]
    limit = raw[metric]
    if isinstance(limit, str):  # YAML 1.1 reads 1.0e5 (no sign in the exponent) as a string
        try:
            limit = float(limit)
        except ValueError:
            pass
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0:
        raise ConfigError(f"budget.{metric}: must be a number > 0, got {limit!r}")
    budget = Budget(metric, float(limit), **{k: v for k, v in raw.items() if k in OPTIONS})
    if budget.format not in FORMATS:
        raise ConfigError(f"budget.format: must be one of {', '.join(FORMATS)}, got '{budget.format}'")
    if budget.precision not in PRECISIONS:
        raise ConfigError(f"budget.precision: must be one of {', '.join(PRECISIONS)}, got '{budget.precision}'")
    if budget.search not in SEARCHES:
        raise ConfigError(f"budget.search: must be one of {', '.join(SEARCHES)}, got '{budget.search}'")
    if budget.steps < 1 or budget.recovery_batches < 0:
        raise ConfigError("budget.steps: must be >= 1 and recovery_batches >= 0")
    if budget.margin is not None and not 0 <= budget.margin < 0.5:
        raise ConfigError(f"budget.margin: must be a share of the limit in [0, 0.5), got {budget.margin!r}")
    if budget.metric == "latency_ms":
        from edgekd.targets import load_target

        try:
            target = load_target(budget.target)
        except ConfigError as exc:
            raise ConfigError(f"budget.target: {exc}") from exc
        if budget.estimate and not target.reference_phones:
            raise ConfigError(f"budget.estimate: target '{budget.target}' names no reference phone to estimate on")
    return budget
