"""Adversarial distillation: a discriminator learns to tell teacher logits from student logits, and
the student learns to fool it while also taking the usual KD loss.

Matching the teacher's output distribution as a whole, not only per sample (Wang et al., 2018 KDGAN;
Xu et al., 2018). The discriminator is a small MLP on softened probabilities, trained by its own
optimizer on each batch before the student's step; it lives in the Trainer's ``extra_modules`` so a
resumed run gets it back, and it is never exported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.objective import DistillObjective
from edgekd.distill.teaching import TeachingConfig, classifiers_only, train_with_teacher
from edgekd.inputs import ModelInputs
from edgekd.stage import RunContext, Stage, register_stage
from edgekd.train import check, distributed
from edgekd.train.batchnorm import refresh_note


def discriminator(num_classes: int, hidden: int) -> nn.Sequential:
    """Probability vector in, one "came from the teacher" logit out."""
    return nn.Sequential(nn.Linear(num_classes, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                         nn.LeakyReLU(0.2), nn.Linear(hidden, 1))  # fmt: skip


class AdversarialObjective:
    """KD loss plus ``weight`` x the non-saturating GAN loss of the student against the discriminator."""

    def __init__(self, base: DistillObjective, critic: nn.Module, lr: float, temperature: float, weight: float) -> None:
        self.base, self.temperature, self.weight = base, temperature, weight
        self.extra_modules = base.extras_with(discriminator=critic)
        self.optimizer = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.999))
        self.last_discriminator_loss = float("nan")

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softmax(logits / self.temperature, dim=1)

    def __call__(
        self, model: nn.Module, x: ModelInputs, y: torch.Tensor, index: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loss, logits, teacher = self.base.step(model, x, y, index)
        critic = self.extra_modules["discriminator"]
        real = self._probabilities(torch.stack([teacher[k] for k in teacher if k.startswith("logits/")]).mean(0))
        fake = self._probabilities(logits.detach())
        real_score, fake_score = critic(real), critic(fake)
        critic_loss = F.binary_cross_entropy_with_logits(
            real_score, torch.ones_like(real_score)
        ) + F.binary_cross_entropy_with_logits(fake_score, torch.zeros_like(fake_score))
        self.optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        distributed.mean_gradients(critic.parameters())  # under torchrun every rank's critic steps alike
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # no stale gradient for the Trainer's optimizer to apply
        self.last_discriminator_loss = critic_loss.item()
        critic.requires_grad_(False)  # the student's step must not move the discriminator
        try:
            fooled = critic(self._probabilities(logits))
        finally:
            critic.requires_grad_(True)
        loss = loss + self.weight * F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
        return loss, logits


@register_stage("adversarial")
@dataclass
class AdversarialDistill(TeachingConfig, Stage):
    """Adversarial distillation: KD plus a discriminator the student learns to fool.

    ``ek.AdversarialDistill(epochs=5, adversarial_weight=0.1)``. Options: those of
    :class:`~edgekd.distill.teaching.TeachingConfig` and:

    Args:
        adversarial_weight: weight of the student's "fool the discriminator" loss against the KD loss.
        discriminator_lr: learning rate of the discriminator's own Adam optimizer.
        discriminator_hidden: width of the discriminator's two hidden layers.
    """

    adversarial_weight: float = 0.1
    discriminator_lr: float = 1e-4
    discriminator_hidden: int = 64
    name: str = "adversarial"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.adversarial_weight >= 0, "adversarial_weight", f"must be >= 0, got {self.adversarial_weight}")
        check(self.discriminator_lr > 0, "discriminator_lr", f"must be > 0, got {self.discriminator_lr}")
        hidden = self.discriminator_hidden
        check(isinstance(hidden, int) and hidden >= 1, "discriminator_hidden", f"must be an integer >= 1, got {hidden}")

    def run(self, ctx: RunContext, student: nn.Module) -> nn.Module:
        classifiers_only(ctx, self.name, "its discriminator reads (batch, classes) logits")
        critic = discriminator(ctx.data.num_classes, self.discriminator_hidden).to(ctx.device)
        built: list[AdversarialObjective] = []

        def with_discriminator(base: DistillObjective) -> AdversarialObjective:
            built.append(AdversarialObjective(base, critic, self.discriminator_lr, self.temperature,
                                              self.adversarial_weight))  # fmt: skip
            return built[0]

        history, facts = train_with_teacher(ctx, student, self, desc=self.name, wrap=with_discriminator)
        best = f"best epoch {history.best_epoch}/{len(history.epochs)}"
        ctx.record(
            f"adversarial KD (weight {self.adversarial_weight:g}); {self.describe()}; {best}{refresh_note(facts)}",
            history=history.as_dict(), discriminator_loss=round(built[0].last_discriminator_loss, 4), **facts,
        )  # fmt: skip
        return student
