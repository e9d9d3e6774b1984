"""Training a student from the teacher(s): the settings and the call that every training stage shares.

Distill uses it for its whole run; pruning recovery and QAT use it so they too learn from the
teacher, with adapters built afresh for the student's current shape each time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from edgekd.distill.losses import get_feature_loss
from edgekd.distill.objective import DistillObjective
from edgekd.distill.queried import insides_refused
from edgekd.distill.teacher_cache import TeacherCache
from edgekd.errors import ConfigError
from edgekd.stage import RunContext
from edgekd.train import History, TrainConfig, check
from edgekd.train.batchnorm import after_training
from edgekd.train.loop import Objective
from edgekd.utils.modules import resolve_module


@dataclass
class TeachingConfig(TrainConfig):
    """Training options plus how the teacher teaches: KD temperature and weight, feature hints.

    Every :class:`~edgekd.train.TrainConfig` option applies (``epochs``, ``lr``, ``optimizer``,
    ``schedule``, ``weight_decay``, ``patience``, ``grad_clip``...), and:

    Args:
        temperature: softens both distributions in the KD loss (Hinton et al.); > 0.
        alpha: weight of the cross-entropy on the labels; ``1 - alpha`` goes to the KD loss on the
            teachers' soft targets (``alpha=1``: labels only). In [0, 1].
        features: ``{student module: teacher module}`` pairs whose outputs are matched (an adapter
            fills any channel or size gap; it trains with the student and is never exported).
        feature_loss: how features are matched: mse, cosine, attention, rkd or sp.
        feature_weight: weight of the feature loss against the KD loss.
        layer_map: block-to-block taps for transformers (or any model whose blocks sit in one
            ``nn.ModuleList``): ``"uniform"`` (TinyBERT: student block m learns from teacher block
            (m+1)N/M - 1), ``"last"`` (MiniLM), or ``{student block: teacher block}``; added to
            ``features``.
        layer_parts: which part of each mapped block is tapped: ``""`` (the block's output) or a
            submodule path such as ``attention.self.query``.
        cache_teacher: keep the teacher's logits from the first epoch when the training data comes in
            a fixed order without augmentation, instead of running the teacher every epoch.
    """

    temperature: float = 4.0
    alpha: float = 0.5
    features: dict[str, str] = field(default_factory=dict)
    feature_loss: str = "mse"
    feature_weight: float = 1.0
    layer_map: str | dict[int, int] | None = None
    layer_parts: list[str] = field(default_factory=lambda: [""])
    cache_teacher: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.temperature > 0, "temperature", f"must be > 0, got {self.temperature}")
        check(0.0 <= self.alpha <= 1.0, "alpha", f"must be in [0, 1], got {self.alpha}")
        check(self.feature_weight >= 0, "feature_weight", f"must be >= 0, got {self.feature_weight}")
        check(isinstance(self.features, dict), "features", "must map student module names to teacher module names")
        check(isinstance(self.layer_parts, list) and bool(self.layer_parts), "layer_parts",
              "must be a non-empty list of block parts ('' for the block itself)")  # fmt: skip
        try:
            get_feature_loss(self.feature_loss)
        except ConfigError as exc:
            raise ConfigError(f"feature_loss: {exc}") from exc

    def feature_pairs(self, teacher: nn.Module, student: nn.Module) -> dict[str, str]:
        """Every tapped pair: those ``layer_map`` expands to, then ``features`` (which win on a clash)."""
        if self.layer_map is None:
            return dict(self.features)
        from edgekd.distill.layer_map import layer_pairs

        try:
            return {**layer_pairs(student, teacher, self.layer_map, self.layer_parts), **self.features}
        except ConfigError as exc:
            message = str(exc) if str(exc).startswith("layer_map") else f"layer_map: {exc}"
            raise ConfigError(message) from exc

    def validate_taps(self, teachers: list[nn.Module], student: nn.Module) -> None:
        """Check the tap names before any training: a typo costs seconds, not a teacher's training."""
        if self.features or self.layer_map is not None:
            insides_refused(teachers, "feature distillation (features=, layer_map=)")
        for student_name, teacher_name in self.feature_pairs(teachers[0], student).items():
            resolve_module(student, student_name, "student")
            resolve_module(teachers[0], teacher_name, "teacher")

    def validate(self, teachers: list[nn.Module], student: nn.Module) -> None:
        """A teaching stage's check before any training: its tap names (a stage adds its own checks)."""
        self.validate_taps(teachers, student)

    def describe(self) -> str:
        parts = [f"T={self.temperature:g}", f"alpha={self.alpha:g}"]
        if self.layer_map is not None:
            tapped = ", ".join(part or "output" for part in self.layer_parts)
            parts.append(f"{self.feature_loss} on blocks mapped {self.layer_map} ({tapped})")
        if self.features:
            taps = ", ".join(f"{s}<-{t}" for s, t in self.features.items())
            parts.append(f"{self.feature_loss} on {taps}")
        return "; ".join(parts)


def classifiers_only(ctx: RunContext, stage: str, why: str) -> None:
    """One line, before any training, where a family's losses only mean something for class logits."""
    if ctx.data.task.name != "classification":
        raise ConfigError(f"{stage}: {why}, so it takes a classification task, not {ctx.data.task.name}; use distill")


def train_with_teacher(
    ctx: RunContext,
    student: nn.Module,
    config: TeachingConfig,
    desc: str,
    wrap: Callable[[DistillObjective], Objective] | None = None,
    epoch_end: Callable[[], None] | None = None,
) -> tuple[History, dict]:
    """Run the Trainer on the distillation objective; returns the history and facts for the ledger.

    ``wrap`` turns the KD objective into a family's own (a cohort of peers, a discriminator) that adds
    its terms to the KD loss; what it trains beside the student lives in its ``extra_modules``.
    ``epoch_end`` runs after each epoch's steps (a stage's schedule)."""
    config.validate_taps(ctx.teachers, student)
    train = ctx.data.train
    cache = (
        TeacherCache(train.dataset_size) if config.cache_teacher and getattr(train, "deterministic", False) else None
    )
    sample = ctx.example
    objective = DistillObjective(
        ctx.teachers,
        student,
        sample,
        temperature=config.temperature,
        alpha=config.alpha,
        teacher_weights=ctx.teacher_weights,
        features=config.feature_pairs(ctx.teachers[0], student),
        feature_loss=config.feature_loss,
        feature_weight=config.feature_weight,
        cache=cache,
        task=ctx.data.task,
        sample_ids=getattr(train, "ids", None),
    )
    trained = wrap(objective) if wrap is not None else objective
    try:
        share = cache.share if cache is not None else None  # under torchrun, each rank's teacher outputs to all
        calls = [call for call in (share, epoch_end) if call is not None]
        after_epoch = (lambda: [call() for call in calls]) if calls else None
        history = ctx.trainer(config, desc=desc, epoch_end=after_epoch).fit(student, ctx.data, trained)
    finally:
        objective.close()
    facts = {
        "teacher_cache": "on" if cache is not None and cache.enabled else "off",
        "adapters": 0 if objective.extra_modules is None else len(objective.extra_modules),
        **after_training(student, history, ctx.data, ctx.device),
    }
    return history, facts
