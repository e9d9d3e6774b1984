"""Benchmark exported models: latency, memory, size and accuracy, each file in its own runtime and
a fresh process, on cpu, mobile-like and gpu targets; reports in JSON, Markdown and HTML.

Names load on first use, so the measuring worker (``edgekd.bench.worker``) imports only numpy and
the runtime it measures.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "Target": ("edgekd.bench.targets", "Target"),
    "builtin_names": ("edgekd.bench.targets", "builtin_names"),
    "load_target": ("edgekd.bench.targets", "load_target"),
    "compare": ("edgekd.bench.comparison", "compare"),
    "load_report": ("edgekd.bench.comparison", "load_report"),
    "run": ("edgekd.bench.harness", "run"),
    "write_report": ("edgekd.bench.report", "write"),
}

__all__ = list(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'edgekd.bench' has no attribute '{name}'")
    module_name, attribute = _NAMES[name]
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value
    return value
