"""edgekd: distill, prune, quantize, export and benchmark PyTorch models for edge deployment.

Names are imported on first use: ``import edgekd`` stays cheap, and a benchmark worker that runs an
ONNX or TFLite file never pays for importing torch.
"""

from __future__ import annotations

from edgekd.utils.lazy import lazy_attributes
from edgekd.utils.version import __version__

_NAMES = {
    "Distill": ("edgekd.distill", "Distill"),
    "MutualDistill": ("edgekd.distill.mutual", "MutualDistill"),
    "AdversarialDistill": ("edgekd.distill.adversarial", "AdversarialDistill"),
    "BornAgain": ("edgekd.distill.born_again", "BornAgain"),
    "SelfDistill": ("edgekd.distill.self_distill", "SelfDistill"),
    "Pipeline": ("edgekd.run.pipeline", "Pipeline"),
    "PipelineResult": ("edgekd.run.pipeline", "PipelineResult"),
    "RunContext": ("edgekd.stage", "RunContext"),
    "Stage": ("edgekd.stage", "Stage"),
    "register_stage": ("edgekd.stage", "register_stage"),
    "Prune": ("edgekd.prune.stage", "Prune"),
    "Quantize": ("edgekd.quantize", "Quantize"),
    "Train": ("edgekd.train.stage", "Train"),
    "TrimVocabulary": ("edgekd.prune.vocabulary", "TrimVocabulary"),
    "TrainConfig": ("edgekd.train", "TrainConfig"),
    "Trainer": ("edgekd.train", "Trainer"),
    "evaluate": ("edgekd.train", "evaluate"),
    "seed_everything": ("edgekd.train", "seed_everything"),
    "pretrain": ("edgekd.train.pretrain", "pretrain"),
    "select_output": ("edgekd.outputs", "select_output"),
    "modelfile": ("edgekd.models.files", ""),  # the name it had before the models package
}
_MODULES = (
    "bench", "catalog", "data", "errors", "export", "models", "outputs", "quantize", "report", "tasks", "teachers",
)  # fmt: skip

__all__ = ["__version__", *_NAMES, *_MODULES]


__getattr__ = lazy_attributes(globals(), _NAMES, _MODULES)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
