"""Born-again generations (Furlanello et al., 2018): a network of the student's own architecture,
trained from scratch on the previous generation's soft targets, often ends better than its teacher.

The student as it enters the stage (trained by an earlier ``train`` or ``distill`` stage) is
generation 0; each generation is a fresh copy of its architecture taught by the one before, so the
pipeline's teacher is not used here. Each generation checkpoints in its own folder, so a killed run
resumes in the generation it was in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from edgekd.distill.teaching import TeachingConfig, train_with_teacher
from edgekd.models.files import load_model, save_model
from edgekd.stage import RunContext, Stage, register_stage
from edgekd.train import check
from edgekd.utils.fresh import fresh_copy


@register_stage("born_again")
@dataclass
class BornAgain(TeachingConfig, Stage):
    """Self-distillation over generations: each one a fresh student taught by the previous one.

    ``ek.BornAgain(generations=2, epochs=5)``. Options: those of
    :class:`~edgekd.distill.teaching.TeachingConfig` (feature taps name student modules on both
    sides, since teacher and student share the architecture) and:

    Args:
        generations: how many generations to train after the student as it comes (>= 1).
        keep: ``last`` returns the last generation; ``best`` the one (input included) with the best
            validation accuracy.
    """

    generations: int = 2
    keep: str = "last"
    name: str = "born_again"

    def __post_init__(self) -> None:
        super().__post_init__()
        count = self.generations
        check(isinstance(count, int) and count >= 1, "generations", f"must be an integer >= 1, got {count}")
        check(self.keep in ("last", "best"), "keep", f"must be 'last' or 'best', got {self.keep!r}")

    def validate(self, teachers: list[nn.Module], student: nn.Module) -> None:
        self.validate_taps([student], student)

    def run(self, ctx: RunContext, student: nn.Module) -> nn.Module:
        from edgekd.train.batchnorm import validation_text
        from edgekd.train.evaluation import validation_score

        task = ctx.data.task
        previous = student.eval()
        scores = [validation_score(student, ctx.data, ctx.device)]
        kept = [student]
        for generation in range(1, self.generations + 1):
            folder = ctx.stage_dir / f"generation-{generation}"
            done = folder / "model.pt"
            pupil = fresh_copy(student, ctx.seed + generation).to(ctx.device)
            if done.is_file():
                load_model(pupil, done)  # a resumed run: this generation finished before the stop
            else:
                resume = ctx.resume and folder.is_dir()
                step = dataclasses.replace(ctx, teachers=[previous], teacher_weights=None, stage_dir=folder,
                                           resume=resume, details={})  # fmt: skip
                history, facts = train_with_teacher(step, pupil, self, desc=f"{self.name} {generation}")
                save_model(pupil, done)
                ctx.record(**{f"generation_{generation}": {"history": history.as_dict(), **facts}})
            scores.append(validation_score(pupil, ctx.data, ctx.device))
            kept.append(pupil)
            previous = pupil.eval()
        chosen = len(kept) - 1 if self.keep == "last" else max(range(len(kept)), key=lambda i: task.rank(scores[i]))
        line = ", ".join(validation_text(task.monitor, s) for s in scores)
        ctx.record(
            f"{self.generations} born-again generations; validation {line} (generation 0 = input); "
            f"kept generation {chosen}; {self.describe()}",
            validation_accuracy=scores, kept_generation=chosen,
        )  # fmt: skip
        return kept[chosen]
