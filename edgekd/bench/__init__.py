"""Benchmark exported models: latency, memory, size and accuracy, each file in its own runtime and
a fresh process, on cpu, mobile-like and gpu targets; reports in JSON, Markdown and HTML.

Names load on first use, so the measuring worker (``edgekd.bench.worker``) imports only numpy and
the runtime it measures.
"""

from __future__ import annotations

from edgekd.utils.lazy import lazy_attributes

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


__getattr__ = lazy_attributes(globals(), _NAMES)
