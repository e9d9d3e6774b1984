"""A run: the Pipeline loop over the stages, its folder (lock, resume points), the ledger and the rows
measured on models and files. The checks before training live in :mod:`edgekd.train.preflight`."""

from edgekd.utils.lazy import lazy_attributes

_NAMES = {"Pipeline": ("edgekd.run.pipeline", "Pipeline"), "PipelineResult": ("edgekd.run.pipeline", "PipelineResult")}
_MODULES = ("folder", "ledger", "lock", "measure", "pipeline", "rerender")

__all__ = list(_NAMES)

__getattr__ = lazy_attributes(globals(), _NAMES, _MODULES)
