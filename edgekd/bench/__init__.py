"""Benchmark exported models: latency, memory, size and accuracy, each file in its own runtime and
a fresh process, on cpu, mobile-like and gpu targets; reports in JSON, Markdown and HTML.

Names load on first use, so the measuring worker (``edgekd.bench.worker``) imports only numpy and
the runtime it measures.
"""

from __future__ import annotations

from edgekd.utils.lazy import lazy_attributes

_NAMES = {
    "Target": ("edgekd.targets", "Target"),
    "builtin_names": ("edgekd.targets", "builtin_names"),
    "load_target": ("edgekd.targets", "load_target"),
    "run": ("edgekd.bench.harness", "run"),
}

__all__ = list(_NAMES)


__getattr__ = lazy_attributes(globals(), _NAMES)
