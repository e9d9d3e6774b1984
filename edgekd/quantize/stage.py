"""The Quantize stage: INT8 quantization-aware training guided by the teacher (or PTQ with epochs=0)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from edgekd.distill.teaching import TeachingConfig, train_with_teacher
from edgekd.errors import ConfigError, EdgekdError
from edgekd.quantize.model import QuantizationScheme
from edgekd.quantize.pt2e import ObservedGraph, calibrate, convert, prepare
from edgekd.quantize.sensitivity import layer_sensitivity
from edgekd.quantize.weight_range import resolve_weight_range
from edgekd.stage import RunContext, Stage, register_stage
from edgekd.train import check
from edgekd.train.batchnorm import validation_text
from edgekd.train.evaluation import near_chance, validation_score
from edgekd.utils.modules import resolve_module

EMBEDDINGS = ("int8", "float")


@register_stage("quantize")
@dataclass
class Quantize(TeachingConfig, Stage):
    """Train the student for INT8: symmetric per-channel int8 weights, int8 activations, BatchNorm folded.

    Observers are first calibrated on ``calibration_batches`` training batches, so epoch 0 is the
    post-training-quantized model; ``epochs`` of QAT then learn weights and scales with the teacher's
    logits (KD) and keep the better of the two on validation.

    Args:
        epochs: QAT epochs; 0 is post-training quantization (calibration only).
        lr: QAT learning rate (small: the weights are already trained).
        calibration_batches: training batches the observers see before any QAT step.
        exclude: module names that stay float (a layer INT8 hurts, or one a converter cannot take); a
            tensor only they read stays float too.
        weight_range: ``auto`` (narrow on x86 without VNNI, where ONNX Runtime's kernels would
            saturate on full-range weights), ``full`` or ``narrow`` ([-63, 63], exact on every x86
            CPU; see ``edgekd.quantize.weight_range``).
        embeddings: ``int8`` stores every embedding table (``nn.Embedding``) as int8 rows with a
            per-row scale in both files (weight-only: a lookup has no activation to quantize), a
            quarter of the bytes of a text model's largest tensor; ``float`` keeps them FP32.
            A table named in ``exclude`` stays float either way.
        bias_correction: with post-training quantization (``epochs=0``), move each int8 layer's bias by
            the mean output shift its rounded weights cause, measured on the calibration batches
            (``edgekd.quantize.bias_correction``): what keeps depthwise networks from drifting. QAT
            learns around the rounding itself and leaves the biases as trained.
        freeze_batchnorm_after: after this many QAT epochs BatchNorm keeps its running statistics (and
            dropout is off) for the rest of QAT: a pretrained model's statistics stop chasing the small
            QAT batches, and the folded weights the scales were learned for stop moving. ``None`` never.
        freeze_observers_after: after this many QAT epochs the activation scales are fixed and only the
            weights learn, so the last epochs fit the scales the files will carry. ``None`` never.
        sensitivity: before quantizing, measure each conv / linear layer quantized alone (output SQNR
            against float and the task metric, on validation batches: ``edgekd.quantize.sensitivity``);
            the ranking goes to the report and the most sensitive layers to the ledger line.
        max_drop: mixed precision to a budget, in points of the monitored metric on validation: when
            INT8 loses more, the most sensitive layers are kept in float, the fewest that bring the
            post-training drop within ``max_drop`` (searched by doubling, then halving the count),
            before QAT runs with them excluded. ``None``: every layer int8 unless excluded.
        min_kept: the share of the float model's validation accuracy above chance the INT8 model must
            keep; below it the quantization collapsed and the stage stops with one line instead of
            handing the next step a broken model (0 turns the check off).

    ``temperature``, ``alpha`` and the training options say how QAT learns from the teacher's logits
    (feature hints are not available on a traced graph).
    """

    epochs: int = 1
    lr: float = 5e-4
    calibration_batches: int = 32
    exclude: list[str] = field(default_factory=list)
    weight_range: str = "auto"
    embeddings: str = "int8"
    bias_correction: bool = True
    freeze_batchnorm_after: int | None = None
    freeze_observers_after: int | None = None
    sensitivity: bool = False
    max_drop: float | None = None
    min_kept: float = 0.5
    name: str = "quantize"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.calibration_batches >= 1, "calibration_batches", f"must be >= 1, got {self.calibration_batches}")
        check(isinstance(self.exclude, list), "exclude", "must be a list of module names")
        resolve_weight_range(self.weight_range)  # a bad choice is named before any work
        check(self.embeddings in EMBEDDINGS, "embeddings", f"must be one of {', '.join(EMBEDDINGS)}, got "
              f"'{self.embeddings}'")  # fmt: skip
        check(0 <= self.min_kept <= 1, "min_kept", f"must be in [0, 1], got {self.min_kept}")
        check(self.max_drop is None or self.max_drop >= 0, "max_drop", f"must be >= 0 points, got {self.max_drop}")
        for key in ("freeze_batchnorm_after", "freeze_observers_after"):
            after = getattr(self, key)
            check(after is None or 1 <= after < self.epochs, key, f"must be an epoch from 1 to epochs - 1 "
                  f"({self.epochs - 1}) for it to change anything, got {after}")  # fmt: skip

    def validate(self, teachers: list[nn.Module], student: nn.Module) -> None:
        if self.features or self.layer_map is not None:
            raise ConfigError(
                "features: feature hints are not available during QAT (the student is a traced graph); "
                "quantize learns from the teacher's logits"
            )
        for name in self.exclude:
            resolve_module(student, name, "exclude")

    def run(self, ctx: RunContext, student: nn.Module) -> nn.Module:
        self.validate(ctx.teachers, student)
        data, device, example = ctx.data, ctx.device, ctx.example
        qat = self.epochs > 0
        float_val = validation_score(student, data, device)
        free = data.signature.free_axes  # a dynamic sequence length stays free through convert and export
        exclude, precision = list(self.exclude), {}
        if self.sensitivity or self.max_drop is not None:
            exclude, precision = self._mixed_precision(ctx, student, float_val)
        observed = prepare(student, example, qat, exclude, self.weight_range, free, self.embeddings == "int8",
                           every_output=data.task.structured)  # fmt: skip
        weight_range = observed.weight_range  # "auto" resolved for this machine
        calibrated = calibrate(observed, data.train, self.calibration_batches, device)
        notes = {"mode": "qat" if qat else "ptq", "calibration_batches": calibrated, "exclude": exclude}
        notes.update((key, value) for key, value in precision.items() if key != "text")
        notes["weight_range"] = weight_range
        notes["val_accuracy_float"] = float_val
        if qat:
            schedule = self._freezing(observed)
            history, facts = train_with_teacher(ctx, observed, self, desc=self.name, epoch_end=schedule)
            notes.update(freeze_batchnorm_after=self.freeze_batchnorm_after,
                         freeze_observers_after=self.freeze_observers_after)  # fmt: skip
            notes.update(val_accuracy_ptq=history.initial_val_score, val_accuracy_qat=history.best_val_score)
            notes.update(facts)
        scheme = QuantizationScheme(notes["mode"], list(exclude))
        correct_on = data.train if self.bias_correction and not qat else None
        quantized = convert(observed, example, scheme, free, correct_on, self.calibration_batches)
        if correct_on is not None:
            notes["bias_corrected_layers"] = quantized.scheme.bias_corrected_layers
        notes["val_accuracy_int8"] = validation_score(quantized, data, device)
        notes["int8_embeddings"] = observed.int8_embeddings  # the tables convert wrote as int8 rows
        if data.task.monitor == "accuracy":
            self._check_not_collapsed(float_val, notes["val_accuracy_int8"], data.num_classes)
        else:  # the notes' numbers are the task's monitored metric, named
            notes["metric"] = data.task.monitor
        shown = [validation_text(data.task.monitor, v) for v in (float_val, notes["val_accuracy_int8"])]
        ctx.record(
            f"{notes['mode'].upper()} int8 (per-channel weights{' in [-63, 63]' * (weight_range == 'narrow')}, "
            "per-tensor activations), "
            f"val {shown[0]} float -> {shown[1]} int8"
            + (f"; embeddings int8 per row: {', '.join(observed.int8_embeddings)}" if observed.int8_embeddings else "")
            + (f"; excluded {', '.join(self.exclude)}" if self.exclude else "")
            + precision.get("text", "")
            + (f"; biases corrected in {notes['bias_corrected_layers']} layers" if correct_on is not None else "")
            + self._schedule_text(qat),
            **notes,
        )
        return quantized

    def _mixed_precision(self, ctx: RunContext, student: nn.Module, float_val: float) -> tuple[list[str], dict]:
        """The layers ranked by sensitivity and, with ``max_drop``, the fewest most sensitive ones kept in float
        for post-training INT8 to stay within it; returns the exclude list and what to record."""
        data = ctx.data
        if data.task.structured:
            raise ConfigError(
                f"{self.name}: sensitivity and max_drop judge one output; a {data.task.name} model's several "
                "outputs are not supported yet (keep layers float with exclude=[...])"
            )
        ranking = layer_sensitivity(student, data, ctx.example, min(8, self.calibration_batches),
                                    weight_range=self.weight_range, exclude=self.exclude)  # fmt: skip
        found = {"sensitivity": [r.as_dict() for r in ranking]}
        worst = ", ".join(f"{r.layer} ({r.sqnr_db:.1f} dB)" for r in ranking[:3])
        found["text"] = f"; most INT8-sensitive: {worst}" if worst else ""
        if self.max_drop is None:
            return list(self.exclude), found
        drops: dict[int, float] = {}

        def drop_with(count: int) -> float:
            if count not in drops:
                model = self._ptq(ctx, student, [*self.exclude, *(r.layer for r in ranking[:count])])
                score = validation_score(model, data, ctx.device)
                drops[count] = round(100 * (data.task.rank(float_val) - data.task.rank(score)), 3)
            return drops[count]

        met, count = None, 0
        while met is None and count <= len(ranking):
            if drop_with(count) <= self.max_drop:
                met = count
            count = 1 if count == 0 else count * 2
            if met is None and count > len(ranking) and len(ranking) not in drops:
                count = len(ranking)
        if met is None:
            raise QuantizationError(
                f"{self.name}: max_drop {self.max_drop:g} not reachable: with all {len(ranking)} conv / linear layers "
                f"in float post-training INT8 still loses {drops[len(ranking)]:g} points (first without any: "
                f"{drops[0]:g}); raise max_drop or keep other ops float with exclude=[...]"
            )
        low, high = met // 2, met  # high meets the budget; the fewest layers that do lie in (low, high]
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if drop_with(middle) <= self.max_drop else (middle, high)
        kept = [r.layer for r in ranking[:high]]
        found.update(max_drop=self.max_drop, kept_float=kept, ptq_drop_points={"all_int8": drops[0],
                     "with_kept_float": drops[high]})  # fmt: skip
        found["text"] += (
            f"; max_drop {self.max_drop:g}: "
            + (
                f"kept {', '.join(kept)} in float (PTQ drop {drops[0]:g} -> {drops[high]:g} points)"
                if kept
                else f"every layer int8 (PTQ drop {drops[0]:g} points)"
            )  # fmt: skip
        )
        return [*self.exclude, *kept], found

    def _ptq(self, ctx: RunContext, student: nn.Module, exclude: list[str]) -> nn.Module:
        data = ctx.data
        observed = prepare(student, ctx.example, False, exclude, self.weight_range, data.signature.free_axes,
                           self.embeddings == "int8", every_output=data.task.structured)  # fmt: skip
        calibrate(observed, data.train, self.calibration_batches, ctx.device)
        scheme = QuantizationScheme("ptq", exclude)
        return convert(observed, ctx.example, scheme, data.signature.free_axes,
                       data.train if self.bias_correction else None, self.calibration_batches)  # fmt: skip

    def _schedule_text(self, qat: bool) -> str:
        frozen = [f"{what} frozen after epoch {after}" for what, after in
                  (("BatchNorm", self.freeze_batchnorm_after), ("observers", self.freeze_observers_after))
                  if qat and after is not None]  # fmt: skip
        return "; " + ", ".join(frozen) if frozen else ""

    def _freezing(self, observed: ObservedGraph):
        """The QAT schedule: after the named epochs, BatchNorm statistics and then the observers stay fixed."""
        epochs_done = 0

        def after_epoch() -> None:
            nonlocal epochs_done
            epochs_done += 1
            if self.freeze_batchnorm_after is not None and epochs_done >= self.freeze_batchnorm_after:
                observed.batchnorm_frozen = True
            if self.freeze_observers_after is not None and epochs_done >= self.freeze_observers_after:
                observed.observers_frozen = True

        return after_epoch

    def _check_not_collapsed(self, float_val: float, int8_val: float, classes: int) -> None:
        """Stop where the quantization collapsed, not three steps later with a file that passes nothing."""
        chance = 1.0 / max(classes, 1)
        skill = float_val - chance
        if near_chance(float_val, classes) or int8_val - chance >= self.min_kept * skill:
            return  # a float model at chance has nothing to lose (its own warning says so); or INT8 kept enough
        kept = max(int8_val - chance, 0.0) / skill
        raise QuantizationError(
            f"{self.name}: INT8 collapsed: validation accuracy {100 * float_val:.2f}% float -> {100 * int8_val:.2f}% "
            f"int8 ({100 * kept:.0f}% of the float model's margin over chance kept, min_kept {self.min_kept:g}); "
            "likely causes: activation ranges calibration did not cover (raise calibration_batches) or layers "
            "INT8 cannot represent (keep them float with exclude=[...])"
        )


class QuantizationError(EdgekdError):
    """A quantized model that lost what its float model knew."""
