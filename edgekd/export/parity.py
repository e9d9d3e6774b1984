"""The parity gate: an artifact runs in its own runtime and must agree with the PyTorch model it came from.

FP32 artifacts must match within a relative tolerance (error over the reference's largest output
magnitude). INT8 artifacts are compared with the PyTorch INT8 graph (same scales, same rounding):
top-1 agreement must reach ``min_agreement`` and the error is reported in output quantization steps,
the unit in which integer kernels may legitimately differ. Agreement is counted on decisive samples:
where PyTorch's two best logits lie close enough that the file's ordinary error can swap them, a
runtime that rounds differently may pick the other class, and that is not a broken file. Near-ties are
counted and reported; a file that disagrees on decisive samples still fails.

How close is "close enough" scales with depth: PyTorch's INT8 graph sums in float where the runtime
sums in integers, so a requantization now and then rounds one step the other way, and in a deep
network those steps add up (a 12-layer ViT's files differ by up to 7 output steps, mean 1.5, on
samples that agree). Two logits can move towards each other by twice a sample's error, so a lead
within twice the file's typical error (90th percentile of per-sample maxima) is a near-tie, never
less than ``TIE_STEPS`` and never more than ``MAX_TIE_STEPS``: a broken file, whose error is large,
cannot widen the margin past the cap and hide its disagreements.

A gate cannot pass what it did not compare: when more than ``MAX_NEAR_TIE_SHARE`` of the samples are
near-ties, too few decided the verdict and the file fails, saying how many did. So does a file whose
outputs do not change with its input (a collapsed model gives every image the same logits), and one
whose outputs hold NaN or Inf.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from edgekd.formats.runner import Runner
from edgekd.inputs import ModelInputs, count, detached, forward, rows, to_numpy
from edgekd.outputs import logits_of, tensors_in
from edgekd.tasks import Task
from edgekd.tasks.classification import Classification
from edgekd.utils.modes import inference

# Float runtimes fuse Conv+BatchNorm and reorder sums: a pretrained EfficientNet-Lite0 at 224x224 differs
# from PyTorch by 1.6e-4 of its largest logit in ONNX Runtime. A broken file is off by orders more.
FP32_RTOL = 1e-3
MIN_AGREEMENT = 0.99
TIE_STEPS = 2.0
MAX_TIE_STEPS = 8.0
TYPICAL_ERROR_QUANTILE = 0.9
MAX_NEAR_TIE_SHARE = 0.25  # above this share of near-ties, too few samples decided the verdict


@dataclass
class ParityReport:
    precision: str
    samples: int
    top1_agreement: float
    max_abs_error: float
    relative_error: float
    max_error_steps: float | None
    mean_error_steps: float | None
    passed: bool
    reason: str
    near_ties: int = 0
    tie_steps: float | None = None  # the lead, in output steps, under which a sample counted as a near-tie
    rule: str = "top-1"  # what agreement counts: top-1 per sample, class per pixel, label on/off, or values only

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def decided_by(self) -> int:
        """How many samples the verdict rests on: every sample but the near-ties set aside."""
        return self.samples - self.near_ties

    def summary(self) -> str:
        if self.rule == "values":
            text = f"values compared on {self.samples} samples"
            if self.max_error_steps is not None:
                return text + f", max error {self.max_error_steps:.1f} steps (mean {self.mean_error_steps:.2f})"
            return text + f", relative error {self.relative_error:.1e}"
        if self.rule != "top-1":
            text = f"{self.rule} agreement {100 * self.top1_agreement:.2f}% on {self.samples} samples"
            if self.near_ties:
                text += f" ({self.near_ties} near-tie decisions set aside)"
            if self.max_error_steps is not None:
                return text + f", max error {self.max_error_steps:.1f} steps (mean {self.mean_error_steps:.2f})"
            return text + f", relative error {self.relative_error:.1e}"
        text = f"top-1 agreement {100 * self.top1_agreement:.2f}% on {self.samples} samples"
        if self.near_ties:
            within = f" within {self.tie_steps:.1f} steps" if self.tie_steps else ""
            text = (
                f"top-1 agreement {100 * self.top1_agreement:.2f}% on the {self.decided_by} of {self.samples} samples "
                f"that decided it ({self.near_ties} near-ties{within} set aside)"
            )
        if self.max_error_steps is not None:
            return text + f", max error {self.max_error_steps:.1f} steps (mean {self.mean_error_steps:.2f})"
        return text + f", relative error {self.relative_error:.1e}"


def reference_outputs(model: nn.Module, samples: ModelInputs, batch_size: int = 256) -> np.ndarray:
    total = count(samples)
    with inference(model):
        batches = (rows(samples, slice(i, i + batch_size)) for i in range(0, total, batch_size))
        parts = [logits_of(forward(model, batch)).float().cpu() for batch in batches]
    return torch.cat(parts).numpy()


def compare(
    model: nn.Module,
    runner: Runner,
    samples: ModelInputs,
    precision: str,
    output_step: float | None = None,
    rtol: float = FP32_RTOL,
    min_agreement: float = MIN_AGREEMENT,
    task: Task | None = None,
) -> ParityReport:
    """Run ``samples`` through both and judge the artifact; ``output_step`` is the INT8 output scale.

    ``task`` says what the outputs decide (a class per sample, per pixel, a label on or off; nothing, for
    regression): agreement is counted on those decisions. Outputs that decide nothing are judged by their
    error alone: in INT8, a value off by more than ``MAX_TIE_STEPS`` output steps fails the file."""
    task = task or Classification()
    samples = detached(samples)
    expected = reference_outputs(model, samples)
    actual = runner.run(to_numpy(samples))
    if actual.shape != expected.shape:
        return ParityReport(
            precision,
            count(samples),
            0.0,
            float("inf"),
            float("inf"),
            None,
            None,
            False,
            f"output shape {actual.shape} differs from PyTorch's {expected.shape}",
        )
    error = np.abs(actual.astype(np.float64) - expected)
    max_abs = float(error.max()) if error.size else 0.0
    relative = max_abs / max(float(np.abs(expected).max()), 1e-12)
    judged, made = task.decisions(expected), task.decisions(actual)
    agrees = judged[0] == made[0] if judged is not None else np.ones(0, bool)
    max_steps = mean_steps = None
    near_ties, tie_steps = 0, None
    if precision == "int8" and output_step:
        max_steps, mean_steps = max_abs / output_step, float(error.mean()) / output_step
        tie_steps = tie_margin_steps(error / output_step)
        if judged is not None:
            decisive = judged[1] > tie_steps * output_step
            near_ties, agrees = int((~decisive).sum()), agrees[decisive]
    agreement = float(agrees.mean()) if agrees.size else (1.0 if judged is None else 0.0)
    units = len(judged[0]) if judged is not None else len(actual)
    word = "samples" if task.parity_rule == "top-1" else "decisions"
    degenerate = _degenerate(actual, expected, samples, near_ties, units, word)
    if degenerate:
        passed, reason = False, degenerate
    elif precision == "int8" and judged is None:  # values, not decisions: judged by their error in output steps
        limit = (
            MAX_TIE_STEPS * (output_step or 0.0) if output_step else rtol * max(float(np.abs(expected).max()), 1e-12)
        )
        passed = max_abs <= limit
        reason = "" if passed else f"max error {max_abs:.3g} > {limit:.3g} ({MAX_TIE_STEPS:g} output steps)"
    elif precision == "int8":
        passed = agreement >= min_agreement
        shortfall = f"top-1 agreement {100 * agreement:.2f}% < {100 * min_agreement:.0f}%"
        reason = "" if passed else f"{shortfall} on {agrees.size} decisive samples"
    else:
        passed = relative <= rtol
        reason = "" if passed else f"relative error {relative:.2e} > {rtol:.0e}"
    return ParityReport(
        precision, count(samples), agreement, max_abs, relative, max_steps, mean_steps, passed, reason, near_ties,
        tie_steps, task.parity_rule,
    )  # fmt: skip


def _degenerate(
    actual: np.ndarray, expected: np.ndarray, samples: ModelInputs, near_ties: int, units: int, word: str
) -> str | None:
    """Why the comparison proves nothing, or None: outputs that are not numbers, that ignore the input,
    or too few decisive samples to judge on."""
    if not np.isfinite(expected).all():
        return "the PyTorch model itself produced NaN or Inf on the parity samples"
    if not np.isfinite(actual).all():
        return "the artifact produced NaN or Inf"
    total = len(actual)
    if total > 1 and _inputs_vary(samples) and np.ptp(actual.reshape(total, -1), axis=0).max() == 0:
        return (
            f"the artifact returns the same output for all {total} different inputs (a collapsed model: "
            "check the stage that produced it, e.g. a quantization whose activation ranges are wrong)"
        )
    if near_ties > MAX_NEAR_TIE_SHARE * units:
        return (
            f"only {units - near_ties} of {units} {word} decided the comparison ({near_ties} near-ties, over "
            f"{100 * MAX_NEAR_TIE_SHARE:.0f}%): the model's best logits barely separate, so agreement proves nothing"
        )
    return None


def _inputs_vary(samples: ModelInputs) -> bool:
    arrays = to_numpy(samples)
    arrays = arrays.values() if isinstance(arrays, dict) else [arrays]
    return any(np.ptp(a.reshape(len(a), -1).astype(np.float64), axis=0).max() > 0 for a in arrays if len(a) > 1)


def tie_margin_steps(error_steps: np.ndarray) -> float:
    """The lead under which a sample is a near-tie: twice the file's typical per-sample error, bounded."""
    if error_steps.ndim < 2 or not error_steps.size:
        return TIE_STEPS
    per_sample = error_steps.reshape(len(error_steps), -1).max(axis=-1)
    typical = float(np.quantile(per_sample, TYPICAL_ERROR_QUANTILE))
    return float(min(max(TIE_STEPS, 2.0 * typical), MAX_TIE_STEPS))


def model_order(runner: Runner, arrays: list[np.ndarray], names: list[str] | None) -> list[np.ndarray]:
    """A file's outputs in the model's order: by name where the file kept the names, else as the file lists them."""
    file_names = [spec.name for spec in runner.outputs]
    if names and sorted(file_names) == sorted(names) and len(arrays) == len(names):
        return [arrays[file_names.index(name)] for name in names]
    return arrays


def compare_outputs(
    model: nn.Module,
    runner: Runner,
    samples: ModelInputs,
    names: list[str],
    rtol: float = FP32_RTOL,
    precision: str = "fp32",
    task: Task | None = None,
    min_agreement: float = MIN_AGREEMENT,
) -> ParityReport:
    """The gate for a file with several outputs (heatmaps and boxes, say): every output must be there, in the
    model's order and shape. FP32: each within ``rtol`` of its own largest magnitude. INT8: the task's own
    agreement (a detector's decoded boxes: same class, IoU >= 0.5) at least ``min_agreement``. A file that
    lost or merged an output fails, naming it."""
    samples = detached(samples)
    with inference(model):
        expected = [t.float().cpu().numpy() for t in tensors_in(forward(model, samples))]
    actual = model_order(runner, runner.run_all(to_numpy(samples)), names)
    total = count(samples)
    rule = task.parity_rule if task is not None and task.structured else "values"

    def failed(reason: str) -> ParityReport:
        return ParityReport(precision, total, 0.0, float("inf"), float("inf"), None, None, False, reason, rule=rule)

    if len(actual) != len(expected):
        missing = ", ".join(f"'{n}'" for n in names[len(actual) :]) or "none"
        return failed(f"the file has {len(actual)} outputs, the model {len(expected)} ({', '.join(names)}); "
                      f"not in the file: {missing}")  # fmt: skip
    worst_abs = worst_relative = 0.0
    for name, want, got in zip(names, expected, actual):
        if got.shape != want.shape:
            return failed(f"output '{name}' has shape {got.shape} in the file, {want.shape} in PyTorch")
        problem = _degenerate(got, want, samples, 0, len(got), "samples")
        if problem:
            return failed(f"output '{name}': {problem}")
        error = float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0
        relative = error / max(float(np.abs(want).max()), 1e-12)
        if precision == "fp32" and relative > rtol:
            return failed(f"output '{name}': relative error {relative:.2e} > {rtol:.0e}")
        worst_abs, worst_relative = max(worst_abs, error), max(worst_relative, relative)
    judged = task.agreement(expected, actual) if task is not None else None
    share = judged[0] if judged is not None else 1.0
    if precision == "int8" and judged is None:
        return failed("an INT8 file with several outputs is judged by its task: pass data= whose task is detection")
    if precision == "int8" and share < min_agreement:
        return failed(f"{rule} agreement {100 * share:.2f}% < {100 * min_agreement:.0f}% on {judged[1]} detections")
    return ParityReport(precision, total, share, worst_abs, worst_relative, None, None, True, "", rule=rule)
