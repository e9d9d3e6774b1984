"""The Distill stage: trains the student from the teacher(s) through the shared Trainer."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from edgekd.distill.losses import get_feature_loss
from edgekd.distill.objective import DistillObjective
from edgekd.distill.taps import resolve_module
from edgekd.distill.teacher_cache import TeacherCache
from edgekd.errors import ConfigError
from edgekd.train import TrainConfig, check


@dataclass
class Distill(TrainConfig):
    """Knowledge distillation: KD on soft targets, plus feature hints when ``features`` is set.

    ``features`` maps student module names to teacher module names; ``feature_loss`` is any name in
    the feature-loss registry (mse, cosine, attention, rkd, sp). Training options come from TrainConfig.
    """

    temperature: float = 4.0
    alpha: float = 0.5
    features: dict[str, str] = field(default_factory=dict)
    feature_loss: str = "mse"
    feature_weight: float = 1.0
    cache_teacher: bool = True
    name: str = "distill"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check(0.0 <= self.alpha <= 1.0, "alpha", f"must be in [0, 1], got {self.alpha}")
        check(self.feature_weight >= 0, "feature_weight", f"must be >= 0, got {self.feature_weight}")
        check(isinstance(self.features, dict), "features", "must map student module names to teacher module names")
        try:
            get_feature_loss(self.feature_loss)
        except ConfigError as exc:
            raise ConfigError(f"feature_loss: {exc}") from exc

    def validate(self, teachers: list[nn.Module], student: nn.Module) -> None:
        """Check the tap names before any training: a typo costs seconds, not a teacher's training."""
        for student_name, teacher_name in self.features.items():
            resolve_module(student, student_name, "student")
            resolve_module(teachers[0], teacher_name, "teacher")

    def run(self, ctx, student: nn.Module) -> nn.Module:
        self.validate(ctx.teachers, student)
        train = ctx.data.train
        cache = None
        if self.cache_teacher and getattr(train, "deterministic", False):
            cache = TeacherCache(train.dataset_size)
        sample = next(iter(ctx.data.val))[0][:2].to(ctx.device)
        objective = DistillObjective(
            ctx.teachers,
            student,
            sample,
            temperature=self.temperature,
            alpha=self.alpha,
            teacher_weights=ctx.teacher_weights,
            features=self.features,
            feature_loss=self.feature_loss,
            feature_weight=self.feature_weight,
            cache=cache,
        )
        try:
            history = ctx.trainer(self, desc=self.name).fit(student, ctx.data, objective)
        finally:
            objective.close()
        ctx.notes.update(
            history=history.as_dict(),
            teacher_cache="on" if cache is not None and cache.enabled else "off",
            adapters=0 if objective.extra_modules is None else len(objective.extra_modules),
        )
        ctx.notes["summary"] = _summary(self, history.best_epoch, len(history.epochs))
        return student


def _summary(stage: Distill, best_epoch: int | None, epochs_run: int) -> str:
    parts = [f"T={stage.temperature:g}", f"alpha={stage.alpha:g}"]
    if stage.features:
        taps = ", ".join(f"{s}<-{t}" for s, t in stage.features.items())
        parts.append(f"{stage.feature_loss} on {taps}")
    parts.append(f"best epoch {best_epoch}/{epochs_run}")
    return "; ".join(parts)
