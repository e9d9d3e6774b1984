"""Training: the one loop every training stage runs (``loop``), the checks that every model takes the data
before any training (``preflight``) and the labels-only Train stage (``stage``)."""

from edgekd.train.loop import (
    CrossEntropy,
    EpochRecord,
    History,
    LabelLoss,
    Objective,
    TrainConfig,
    Trainer,
    check,
    evaluate,
    resolve_device,
    restore_rng,
    rng_state,
    seed_everything,
)

__all__ = [
    "CrossEntropy",
    "EpochRecord",
    "History",
    "LabelLoss",
    "Objective",
    "TrainConfig",
    "Trainer",
    "check",
    "evaluate",
    "resolve_device",
    "restore_rng",
    "rng_state",
    "seed_everything",
]
