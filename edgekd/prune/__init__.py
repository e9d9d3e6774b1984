"""Structured pruning on torch-pruning's dependency graph: the Prune stage and its tools."""

from edgekd.batchnorm import recalibrate_batchnorm
from edgekd.prune.engine import IMPORTANCES, PruneSpec, PruningError, build_pruner, prune_step
from edgekd.prune.sensitivity import layer_sensitivity, write_report
from edgekd.prune.stage import Prune

__all__ = [
    "IMPORTANCES",
    "Prune",
    "PruneSpec",
    "PruningError",
    "build_pruner",
    "layer_sensitivity",
    "prune_step",
    "recalibrate_batchnorm",
    "write_report",
]
