"""Knowledge distillation: losses by name, feature taps and adapters, the Distill stage."""

from edgekd.distill.losses import feature_loss_names, get_feature_loss, kd_loss, register_feature_loss, soft_targets
from edgekd.distill.objective import DistillObjective
from edgekd.distill.stage import Distill
from edgekd.distill.taps import Adapter, FeatureTaps, build_adapters
from edgekd.distill.teaching import TeachingConfig, train_with_teacher

__all__ = [
    "Adapter",
    "Distill",
    "DistillObjective",
    "FeatureTaps",
    "build_adapters",
    "feature_loss_names",
    "get_feature_loss",
    "kd_loss",
    "register_feature_loss",
    "soft_targets",
    "TeachingConfig",
    "train_with_teacher",
]
