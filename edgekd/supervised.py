"""The Train stage: the student learns from labels alone (the no-teacher baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from edgekd.batchnorm import after_training, refresh_note
from edgekd.train import CrossEntropy, TrainConfig


@dataclass
class Train(TrainConfig):
    """Cross-entropy training of the student, through the same Trainer as every other stage."""

    name: str = "train"

    def run(self, ctx, student: nn.Module) -> nn.Module:
        history = ctx.trainer(self, desc=self.name).fit(student, ctx.data, CrossEntropy())
        facts = after_training(student, history, ctx.data, ctx.device)
        ctx.notes.update(history=history.as_dict(), **facts)
        epochs = f"{history.best_epoch}/{len(history.epochs)}"
        ctx.notes["summary"] = f"labels only; best epoch {epochs}{refresh_note(facts)}"
        return student
