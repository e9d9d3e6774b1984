"""Structured pruning on torch-pruning's dependency graph: the engine (``engine``), per-layer sensitivity
(``sensitivity``), vocabulary trimming (``vocabulary``) and the Prune stage (``stage``, also ``ek.Prune``).

The stage is not imported here: it uses the budget search (:mod:`edgekd.search`), which uses the engine.
"""

from edgekd.prune.engine import PruneSpec, PruningError, build_pruner, importance_names, prune_step
from edgekd.prune.sensitivity import layer_sensitivity, write_report

__all__ = [
    "importance_names",
    "PruneSpec",
    "PruningError",
    "build_pruner",
    "layer_sensitivity",
    "prune_step",
    "write_report",
]
