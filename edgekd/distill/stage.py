"""The Distill stage: trains the student from the teacher(s) through the shared Trainer."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from edgekd.batchnorm import refresh_note
from edgekd.distill.teaching import TeachingConfig, train_with_teacher


@dataclass
class Distill(TeachingConfig):
    """Knowledge distillation: KD on soft targets, plus feature hints when ``features`` is set."""

    name: str = "distill"

    def validate(self, teachers: list[nn.Module], student: nn.Module) -> None:
        self.validate_taps(teachers, student)

    def run(self, ctx, student: nn.Module) -> nn.Module:
        history, facts = train_with_teacher(ctx, student, self, desc=self.name)
        ctx.notes.update(history=history.as_dict(), **facts)
        ctx.notes["summary"] = (
            f"{self.describe()}; best epoch {history.best_epoch}/{len(history.epochs)}{refresh_note(facts)}"
        )
        return student
