"""Self-distillation, Be Your Own Teacher (Zhang et al., 2019): auxiliary classifiers on the student's
intermediate blocks learn from the labels and from the student's own final prediction.

The deep supervision shapes the shallow blocks' features, which helps the final classifier too. The
auxiliary heads train beside the student in the Trainer's ``extra_modules`` and are dropped when the
stage ends: the exported student is the plain network. Left out from the paper: the L2 hint between
each head's bottleneck feature and the deepest feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.mutual import mutual_term
from edgekd.distill.objective import DistillObjective
from edgekd.distill.taps import FeatureTaps, adapter_key, probe_shapes
from edgekd.distill.teaching import TeachingConfig, classifiers_only, train_with_teacher
from edgekd.errors import ConfigError
from edgekd.inputs import ModelInputs
from edgekd.stage import RunContext, Stage, register_stage
from edgekd.train import check
from edgekd.train.batchnorm import refresh_note
from edgekd.utils.modules import resolve_module


class AuxiliaryHead(nn.Module):
    """A classifier on an intermediate feature: bottleneck + pooling + linear for a map, token
    mean + linear for a transformer's tokens, linear for a vector."""

    def __init__(self, shape: torch.Size, num_classes: int, where: str) -> None:
        super().__init__()
        if len(shape) == 4:
            channels = shape[1]
            self.body: nn.Module = nn.Sequential(
                nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes),
            )  # fmt: skip
        elif len(shape) == 3:
            self.body = nn.Sequential(nn.LayerNorm(shape[2]), nn.Linear(shape[2], num_classes))
        elif len(shape) == 2:
            self.body = nn.Linear(shape[1], num_classes)
        else:
            raise ConfigError(f"heads: module '{where}' outputs shape {tuple(shape)}; a head needs 2-D, 3-D or 4-D")
        self.tokens = len(shape) == 3

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.body(feature.mean(1) if self.tokens else feature)


class SelfDistillObjective:
    """The student's KD objective plus, per auxiliary head, cross-entropy and KL towards the final output."""

    def __init__(
        self, base: DistillObjective, taps: FeatureTaps, heads: nn.ModuleDict, temperature: float, weight: float
    ) -> None:
        self.base, self.taps, self.temperature, self.weight = base, taps, temperature, weight
        self.names = list(taps.names)
        self.extra_modules = base.extras_with(heads=heads)

    def __call__(
        self, model: nn.Module, x: ModelInputs, y: torch.Tensor, index: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loss, logits, _ = self.base.step(model, x, y, index)
        features = self.taps.pop()
        for name, head in zip(self.names, self.extra_modules["heads"].values()):
            aux = head(features[name])
            own = mutual_term(aux, [logits], self.temperature)  # the final head teaches, detached
            loss = loss + (1 - self.weight) * F.cross_entropy(aux, y) + self.weight * own
        return loss, logits


@register_stage("byot")
@dataclass
class SelfDistill(TeachingConfig, Stage):
    """Be Your Own Teacher: auxiliary heads on named blocks, taught by the labels and the final head.

    ``ek.SelfDistill(heads=["blocks.1", "blocks.3"], epochs=5, alpha=1.0)`` (``alpha=1``: no outside
    teacher, the pure form). Options: those of :class:`~edgekd.distill.teaching.TeachingConfig` and:

    Args:
        heads: student module names whose outputs get an auxiliary classifier (removed before export).
        self_weight: in each head's loss, the weight of the KL towards the final output; the rest goes
            to cross-entropy on the labels. In [0, 1].
    """

    heads: list[str] = field(default_factory=list)
    self_weight: float = 0.5
    name: str = "byot"

    def __post_init__(self) -> None:
        super().__post_init__()
        listed = isinstance(self.heads, list) and self.heads and all(isinstance(h, str) for h in self.heads)
        check(bool(listed), "heads", "name at least one student module to put an auxiliary head on")
        check(0.0 <= self.self_weight <= 1.0, "self_weight", f"must be in [0, 1], got {self.self_weight}")

    def validate(self, teachers: list[nn.Module], student: nn.Module) -> None:
        self.validate_taps(teachers, student)
        for name in self.heads:
            resolve_module(student, name, "heads: student")

    def run(self, ctx: RunContext, student: nn.Module) -> nn.Module:
        classifiers_only(ctx, self.name, "its auxiliary heads are classifiers")
        shapes = probe_shapes(student, self.heads, ctx.example, "heads: student")
        classes = ctx.data.num_classes
        heads = nn.ModuleDict({adapter_key(n): AuxiliaryHead(shapes[n], classes, n) for n in self.heads})
        taps = FeatureTaps(student, self.heads, "heads: student")

        def with_heads(base: DistillObjective) -> SelfDistillObjective:
            return SelfDistillObjective(base, taps, heads, self.temperature, self.self_weight)

        try:
            history, facts = train_with_teacher(ctx, student, self, desc=self.name, wrap=with_heads)
        finally:
            taps.remove()
        best = f"best epoch {history.best_epoch}/{len(history.epochs)}"
        ctx.record(
            f"self-distillation with {len(heads)} auxiliary heads on {', '.join(self.heads)} (dropped); "
            f"{self.describe()}; {best}{refresh_note(facts)}",
            history=history.as_dict(), auxiliary_heads=list(self.heads), **facts,
        )  # fmt: skip
        return student
