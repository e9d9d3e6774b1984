"""Online (mutual) distillation: a cohort learning from each other's soft targets as they train.

Deep Mutual Learning (Zhang et al., 2018): each network takes cross-entropy on the labels plus the
KL divergence towards every other member's current predictions, so no pretrained teacher is needed;
the cohort ends better than each member trained alone. Here the student is one member; its peers are
fresh copies of its architecture (and, with ``teacher_learns``, a copy of the teacher that keeps
training). The peers train with the student in the Trainer's ``extra_modules`` and are never exported.
The pipeline's teacher still teaches the student through the KD term unless ``alpha=1``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.objective import DistillObjective
from edgekd.distill.queried import insides_refused
from edgekd.distill.teaching import TeachingConfig, classifiers_only, train_with_teacher
from edgekd.inputs import ModelInputs, forward
from edgekd.outputs import logits_of
from edgekd.stage import RunContext, Stage, register_stage
from edgekd.train import check
from edgekd.train.batchnorm import refresh_note
from edgekd.utils.fresh import fresh_copy


def mutual_term(logits: torch.Tensor, others: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """Mean KL from each other member's (detached) softened prediction to this one's, times T^2."""
    log_own = F.log_softmax(logits / temperature, dim=1)
    terms = [F.kl_div(log_own, F.softmax(o.detach() / temperature, dim=1), reduction="batchmean") for o in others]
    return temperature**2 * torch.stack(terms).mean()


class MutualObjective:
    """The KD objective for the student plus, for every member, the mutual term against the others.

    The members' losses are summed: each depends only on its own weights (the others are detached),
    so one optimizer step over all of them is each member's own step."""

    def __init__(self, base: DistillObjective, peers: nn.ModuleList, temperature: float, weight: float) -> None:
        self.base, self.temperature, self.weight = base, temperature, weight
        self.extra_modules = base.extras_with(peers=peers)

    def __call__(
        self, model: nn.Module, x: ModelInputs, y: torch.Tensor, index: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loss, logits, _ = self.base.step(model, x, y, index)
        cohort = [logits] + [logits_of(forward(peer, x)) for peer in self.extra_modules["peers"]]
        loss = loss + self.weight * mutual_term(logits, cohort[1:], self.temperature)
        for k, peer_logits in enumerate(cohort[1:], start=1):
            others = cohort[:k] + cohort[k + 1 :]
            loss = (
                loss
                + F.cross_entropy(peer_logits, y)
                + self.weight * mutual_term(peer_logits, others, self.temperature)
            )
        return loss, logits


@register_stage("mutual")
@dataclass
class MutualDistill(TeachingConfig, Stage):
    """Deep Mutual Learning: the student trains in a cohort whose members teach each other online.

    ``ek.MutualDistill(epochs=5, peers=1, mutual_weight=1.0)``. Options: those of
    :class:`~edgekd.distill.teaching.TeachingConfig` (``alpha=1`` leaves out the pretrained teacher:
    pure mutual learning) and:

    Args:
        peers: how many fresh copies of the student's architecture learn beside it (>= 1 unless
            ``teacher_learns``).
        teacher_learns: a copy of the (first) teacher joins the cohort and keeps training; the
            pipeline's teacher itself is left as it was.
        mutual_weight: weight of the KL towards the other members, for every member.
    """

    peers: int = 1
    teacher_learns: bool = False
    mutual_weight: float = 1.0
    name: str = "mutual"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.peers, int) and self.peers >= 0, "peers", f"must be an integer >= 0, got {self.peers}")
        check(
            self.peers + int(self.teacher_learns) >= 1,
            "peers",
            "the cohort needs a member beside the student: peers >= 1 or teacher_learns",
        )
        check(self.mutual_weight >= 0, "mutual_weight", f"must be >= 0, got {self.mutual_weight}")

    def validate(self, teachers: list[nn.Module], student: nn.Module) -> None:
        super().validate(teachers, student)
        if self.teacher_learns:
            insides_refused(teachers, "mutual teacher_learns (a copy of the teacher that trains)")

    def cohort(self, ctx: RunContext, student: nn.Module) -> nn.ModuleList:
        """The student's peers: fresh copies of its architecture, then the learning teacher copy."""
        members = [fresh_copy(student, ctx.seed + 1000 + k) for k in range(self.peers)]
        if self.teacher_learns:
            teacher = copy.deepcopy(ctx.teachers[0])
            teacher.requires_grad_(True)
            members.append(teacher)
        return nn.ModuleList(members)

    def run(self, ctx: RunContext, student: nn.Module) -> nn.Module:
        classifiers_only(ctx, self.name, "peers teach each other their class distributions")
        peers = self.cohort(ctx, student)

        def with_peers(base: DistillObjective) -> MutualObjective:
            return MutualObjective(base, peers, self.temperature, self.mutual_weight)

        history, facts = train_with_teacher(ctx, student, self, desc=self.name, wrap=with_peers)
        members = f"{self.peers} peer{'s' * (self.peers != 1)}" + (
            " + the teacher learning" if self.teacher_learns else ""
        )
        best = f"best epoch {history.best_epoch}/{len(history.epochs)}"
        ctx.record(
            f"mutual learning with {members}; {self.describe()}; {best}{refresh_note(facts)}",
            history=history.as_dict(), cohort=len(peers) + 1, **facts,
        )  # fmt: skip
        return student
