"""The Train stage: the student learns from labels alone (the no-teacher baseline)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from edgekd.stage import RunContext, Stage, register_stage
from edgekd.train.batchnorm import after_training, refresh_note
from edgekd.train.loop import LabelLoss, TrainConfig


@register_stage("train")
@dataclass
class Train(TrainConfig, Stage):
    """Label training of the student with its task's loss, through the same Trainer as every other stage.

    Every :class:`~edgekd.train.TrainConfig` field applies (``epochs``, ``lr``, ``optimizer``,
    ``schedule``, ``patience``...). No teacher is used: it is the baseline distillation must beat.
    """

    name: str = "train"

    def run(self, ctx: RunContext, student: nn.Module) -> nn.Module:
        history = ctx.trainer(self, desc=self.name).fit(student, ctx.data, LabelLoss(ctx.data.task))
        facts = after_training(student, history, ctx.data, ctx.device)
        epochs = f"{history.best_epoch}/{len(history.epochs)}"
        ctx.record(f"labels only; best epoch {epochs}{refresh_note(facts)}", history=history.as_dict(), **facts)
        return student
