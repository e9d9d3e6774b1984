"""The stage contract: what a stage is handed (:class:`RunContext`), what it does (:class:`Stage`) and
how a recipe finds it by name (:func:`register_stage`).

A stage takes the student the previous stage left and returns the next one. It reads the teachers,
the data and a Trainer from the context and says what it did with :meth:`RunContext.record`; the
Pipeline turns that into the stage's ledger row. Stages never import each other.

Writing one::

    @register_stage("halve")             # recipes can now say `- halve: {factor: 0.5}`
    @dataclass
    class Halve(Stage):
        factor: float = 0.5
        name: str = "halve"

        def run(self, ctx: RunContext, student: nn.Module) -> nn.Module:
            ...
            ctx.record(f"kept {self.factor:.0%} of the channels", kept=self.factor)
            return student

Any object with a ``name`` and ``run(ctx, student)`` works in a Python pipeline; subclassing
:class:`Stage` adds the no-op :meth:`Stage.validate`, and registering makes it usable in recipes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from edgekd.catalog import catalog, import_spec
from edgekd.data.sources import DataBundle, example_inputs
from edgekd.errors import ConfigError
from edgekd.inputs import ModelInputs

StageType = TypeVar("StageType", bound=type)


class Stage:
    """One step of the pipeline: takes the current student, returns the next one."""

    name: str = "stage"

    def validate(self, teachers: list[nn.Module], student: nn.Module) -> None:
        """Check the configuration against the models before any training; raise ConfigError. No-op here."""

    def run(self, ctx: RunContext, student: nn.Module) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__}.run(ctx, student) is not written")


def is_stage(candidate: object) -> bool:
    """A Stage, or any object with a ``name`` string and a ``run(ctx, student)`` method."""
    return isinstance(candidate, Stage) or (
        isinstance(getattr(candidate, "name", None), str) and callable(getattr(candidate, "run", None))
    )


def validate_stage(stage: object, teachers: list[nn.Module], student: nn.Module) -> None:
    """Call the stage's ``validate``: a Stage always has one; a duck-typed stage may define its own."""
    if isinstance(stage, Stage) or callable(getattr(stage, "validate", None)):
        stage.validate(teachers, student)


@dataclass
class RunContext:
    """What a stage may use: the teachers, the data, the device, its checkpoint folder and a Trainer."""

    teachers: list[nn.Module]
    teacher_weights: list[float] | None
    data: DataBundle
    run_dir: Path
    device: torch.device
    seed: int
    quiet: bool
    stage_dir: Path = field(default=Path("."))
    resume: bool = False  # true for the stage a resumed run picks up: its Trainer continues from last.pt
    measurement: Any = None  # files measured for a budget search (edgekd.search.measurement), from the Pipeline
    summary: str = ""
    details: dict = field(default_factory=dict)

    @property
    def example(self) -> ModelInputs:
        """Two validation inputs on the run's device: what graph capture and tracing need."""
        return example_inputs(self.data.val, 2, self.device)

    def record(self, summary: str | None = None, **details) -> None:
        """Say what the stage did: ``summary`` is its ledger line, ``details`` go to the report.

        May be called more than once; details accumulate and the last summary wins."""
        if summary is not None:
            self.summary = summary
        self.details.update(details)

    def begin(self, stage_dir: Path, resume: bool) -> None:
        """A fresh record for the next stage (the Pipeline calls this)."""
        self.stage_dir, self.resume, self.summary, self.details = stage_dir, resume, "", {}

    def trainer(self, config, desc: str, epoch_end: Callable[[], None] | None = None):
        """The shared training loop, checkpointing into this stage's folder."""
        from edgekd.train import Trainer

        return Trainer(
            config, self.device, self.stage_dir, quiet=self.quiet, desc=desc, seed=self.seed, resume=self.resume,
            epoch_end=epoch_end,
        )  # fmt: skip


def register_stage(kind: str) -> Callable[[StageType], StageType]:
    """Class decorator: recipes may name this stage as ``kind``. Its options are its dataclass fields.

    A package can also declare it as an entry point of ``edgekd.stages`` (see :mod:`edgekd.catalog`)."""
    return catalog("stages").register(kind)


def stage_kinds() -> list[str]:
    """Every stage name a recipe may use."""
    return catalog("stages").names()


def stage_class(kind: str) -> type:
    """The class registered as ``kind``, or ``module:Class`` imported; ConfigError with the known names."""
    found = import_spec(kind, "stage") if ":" in kind else catalog("stages").get(kind)
    if not isinstance(found, type):
        raise ConfigError(f"stage '{kind}' is not a class")
    return found
