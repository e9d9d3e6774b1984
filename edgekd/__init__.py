"""edgekd: distill, prune, quantize, export and benchmark PyTorch models for edge deployment."""

__version__ = "0.1.0"

from edgekd.quiet import quiet_third_party  # noqa: E402

quiet_third_party()

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
    "Quantize",
    "export",
    "quantize",
]

_LAZY = {
    "Quantize": ("edgekd.quantize", "Quantize"),
    "quantize": ("edgekd.quantize", None),
    "export": ("edgekd.export", None),
}


def __getattr__(name: str):
    """Quantization and export pull in torchao and litert-torch (seconds to import): load them on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'edgekd' has no attribute '{name}'")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module
