"""The Distill stage: trains the student from the teacher(s) through the shared Trainer."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from edgekd.distill.teaching import TeachingConfig, train_with_teacher
from edgekd.stage import RunContext, Stage, register_stage
from edgekd.train.batchnorm import refresh_note


@register_stage("distill")
@dataclass
class Distill(TeachingConfig, Stage):
    """Knowledge distillation: KD on soft targets, plus feature hints when ``features`` is set.

    ``ek.Distill(epochs=5, temperature=4.0, alpha=0.5, features={"blocks.3": "layer2"})``. Options:
    those of :class:`~edgekd.distill.teaching.TeachingConfig` (temperature, alpha, features,
    feature_loss, ...) and of :class:`~edgekd.train.TrainConfig` (epochs, lr, optimizer, ...). The best
    epoch on validation is kept; several teachers' soft targets are averaged (``teacher_weights``).
    """

    name: str = "distill"

    def run(self, ctx: RunContext, student: nn.Module) -> nn.Module:
        history, facts = train_with_teacher(ctx, student, self, desc=self.name)
        best = f"best epoch {history.best_epoch}/{len(history.epochs)}"
        ctx.record(f"{self.describe()}; {best}{refresh_note(facts)}", history=history.as_dict(), **facts)
        return student
