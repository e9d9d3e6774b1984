"""Benchmark exported models: latency, memory, size and accuracy, each file in its own runtime and
a fresh process, on cpu, mobile-like and gpu targets; reports in JSON, Markdown and HTML."""

from edgekd.bench.compare import compare, load_report
from edgekd.bench.harness import run
from edgekd.bench.report import write as write_report
from edgekd.bench.targets import Target, builtin_names, load_target

__all__ = ["Target", "builtin_names", "compare", "load_report", "load_target", "run", "write_report"]
