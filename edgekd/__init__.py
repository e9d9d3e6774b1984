"""edgekd: distill, prune, quantize, export and benchmark PyTorch models for edge deployment."""

__version__ = "0.1.0"

from edgekd import data, errors, modelfile, models  # noqa: E402
from edgekd.distill import Distill  # noqa: E402
from edgekd.pipeline import Pipeline, PipelineResult, RunContext, Stage  # noqa: E402
from edgekd.pretrain import pretrain  # noqa: E402
from edgekd.prune import Prune  # noqa: E402
from edgekd.supervised import Train  # noqa: E402
from edgekd.train import TrainConfig, Trainer, evaluate, seed_everything  # noqa: E402

__all__ = [
    "Distill",
    "Pipeline",
    "PipelineResult",
    "Prune",
    "RunContext",
    "Stage",
    "Train",
    "TrainConfig",
    "Trainer",
    "__version__",
    "data",
    "errors",
    "evaluate",
    "modelfile",
    "models",
    "pretrain",
    "seed_everything",
]
