"""The Train stage: the student learns from labels alone (the no-teacher baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from edgekd.train import CrossEntropy, TrainConfig


@dataclass
class Train(TrainConfig):
    """Cross-entropy training of the student, through the same Trainer as every other stage."""

    name: str = "train"

    def run(self, ctx, student: nn.Module) -> nn.Module:
        history = ctx.trainer(self, desc=self.name).fit(student, ctx.data, CrossEntropy())
        ctx.notes.update(history=history.as_dict())
        ctx.notes["summary"] = f"labels only; best epoch {history.best_epoch}/{len(history.epochs)}"
        return student
