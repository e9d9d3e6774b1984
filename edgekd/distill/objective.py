"""The distillation objective: how a batch becomes the combined KD + feature loss.

It is what the Distill stage hands the Trainer, and what later stages (pruning recovery, QAT) reuse
so every training step learns from the teacher the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgekd.distill.losses import NEEDS_ADAPTER, get_feature_loss
from edgekd.distill.queried import is_queried
from edgekd.distill.taps import FeatureTaps, adapter_key, build_adapters
from edgekd.distill.teacher_cache import TeacherCache
from edgekd.inputs import ModelInputs, forward, named_inputs
from edgekd.tasks import Task
from edgekd.tasks.classification import Classification


def _asked(teacher: nn.Module, x: ModelInputs, ids: torch.Tensor | None):
    """The teacher's forward; a queried teacher also learns which training samples it is asked about."""
    if not is_queried(teacher):
        return forward(teacher, x)
    with teacher.asked_about(ids):
        return forward(teacher, x)


class DistillObjective:
    """KD on the outputs of one or more teachers, as the task defines it (softened class distributions for a
    classifier, per pixel for a segmenter, the values themselves for regression), plus an optional feature
    loss on tapped pairs.

    Feature taps are read from the first teacher. ``cache`` (when given) keeps teacher outputs per
    sample, so the teachers run once per sample, not once per epoch.
    """

    def __init__(
        self,
        teachers: Sequence[nn.Module],
        student: nn.Module,
        sample: ModelInputs,
        temperature: float = 4.0,
        alpha: float = 0.5,
        teacher_weights: Sequence[float] | None = None,
        features: dict[str, str] | None = None,
        feature_loss: str = "mse",
        feature_weight: float = 1.0,
        cache: TeacherCache | None = None,
        task: Task | None = None,
        sample_ids: torch.Tensor | None = None,
    ) -> None:
        self.task = task or Classification()
        self.teachers = list(teachers)
        for teacher in self.teachers:
            teacher.eval()  # its forward runs under no_grad: the user's teacher keeps requires_grad as it was
        self.temperature, self.alpha = temperature, alpha
        self.teacher_weights = teacher_weights
        self.features = dict(features or {})
        self.feature_loss = get_feature_loss(feature_loss)
        self.feature_weight = feature_weight
        self.cache = cache
        self.sample_ids = sample_ids  # the training loader's ids per position: what outputs on disk are keyed by
        self.extra_modules: nn.ModuleDict | None = None
        self._student_taps: FeatureTaps | None = None
        self._teacher_taps: FeatureTaps | None = None
        if self.features:
            if feature_loss in NEEDS_ADAPTER:
                self.extra_modules = build_adapters(student, self.teachers[0], self.features, sample)
            self._student_taps = FeatureTaps(student, list(self.features), "student")
            self._teacher_taps = FeatureTaps(self.teachers[0], list(self.features.values()), "teacher")

    @torch.no_grad()
    def teacher_outputs(self, x: ModelInputs, index: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Logits of every teacher (``logits/i``) and, per tap pair, the teacher's feature
        (``feature/<student module>``) already resized to what the pair's adapter compares against."""
        if self.cache is not None and index is not None:
            cached = self.cache.lookup(index)
            if cached is not None:
                device = next(iter(named_inputs(x).values())).device
                return {k: v.to(device, non_blocking=True) for k, v in cached.items()}
        ids = index if self.sample_ids is None or index is None else self.sample_ids[index.cpu()]
        outputs = {f"logits/{i}": self.task.output_of(_asked(t, x, ids)) for i, t in enumerate(self.teachers)}
        if self._teacher_taps is not None:
            tapped = self._teacher_taps.pop()
            for student_name, teacher_name in self.features.items():
                feature = tapped[teacher_name]
                if self.extra_modules is not None:
                    feature = self.extra_modules[adapter_key(student_name)].match_teacher(feature)
                outputs[f"feature/{student_name}"] = feature
        if self.cache is not None and index is not None:
            self.cache.put(index, outputs)
        return outputs

    def __call__(
        self, model: nn.Module, x: ModelInputs, y: torch.Tensor, index: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loss, logits, _ = self.step(model, x, y, index)
        return loss, logits

    def step(
        self, model: nn.Module, x: ModelInputs, y: torch.Tensor, index: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The loss, the student's logits and the teacher outputs: what a family built on top of this
        objective (mutual, adversarial) adds its own terms to."""
        teacher = self.teacher_outputs(x, index)
        logits = self.task.output_of(forward(model, x))
        teacher_logits = [teacher[f"logits/{i}"] for i in range(len(self.teachers))]
        loss = self.task.distill_loss(logits, teacher_logits, y, self.temperature, self.alpha, self.teacher_weights)
        if self._student_taps is not None:
            loss = loss + self.feature_weight * self._feature_term(self._student_taps.pop(), teacher)
        return loss, logits, teacher

    def _feature_term(
        self, student_features: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        terms = []
        for student_name in self.features:
            feature = student_features[student_name]
            if self.extra_modules is not None:
                feature = self.extra_modules[adapter_key(student_name)](feature)
            terms.append(self.feature_loss(feature, teacher[f"feature/{student_name}"]))
        return torch.stack(terms).mean()

    def extras_with(self, **modules: nn.Module) -> nn.ModuleDict:
        """A family's own trained helpers (peers, heads, a discriminator) beside this objective's
        adapters: what its ``extra_modules`` hands the Trainer to optimize and checkpoint."""
        extras = nn.ModuleDict(modules)
        if self.extra_modules is not None:
            extras["adapters"] = self.extra_modules
        return extras

    def close(self) -> None:
        """Detach the hooks so the student leaves this stage as a plain module."""
        for taps in (self._student_taps, self._teacher_taps):
            if taps is not None:
                taps.remove()
