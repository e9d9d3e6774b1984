"""Reading a benchmark report and picking its rows: what every rendering of a report shares."""

from __future__ import annotations

import json
from pathlib import Path

from edgekd.errors import ConfigError


def read_report(file: Path, where: str | Path) -> dict:
    """A ``report.json`` as a dict; ConfigError naming ``where`` when it is missing or not JSON."""
    if not file.is_file():
        raise ConfigError(f"{where}: no report.json there")
    try:
        report = json.loads(file.read_text())
    except ValueError as exc:
        raise ConfigError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(report, dict):
        raise ConfigError(f"{file}: not an edgekd report")
    return report


BENCH_KIND = "edgekd-bench"
BENCH_KEYS = ("results", "machine", "created")


def check_bench_report(report: object, where: str = "report") -> dict:
    """``report`` if it is what ``edgekd.bench.run`` returns, else a ConfigError naming what is missing."""
    if not isinstance(report, dict):
        raise ConfigError(f"{where}: expected the dict edgekd.bench.run returns, got {type(report).__name__}")
    if report.get("kind") != BENCH_KIND:
        raise ConfigError(f"{where}: not an edgekd benchmark report (its 'kind' is not '{BENCH_KIND}')")
    missing = [key for key in BENCH_KEYS if key not in report]
    if missing or not isinstance(report["results"], list):
        raise ConfigError(f"{where}: a benchmark report without {', '.join(missing) or 'a list of results'}")
    return report


def ok_rows(report: dict) -> list[dict]:
    return [r for r in report["results"] if r.get("status") == "ok"]


def label(row: dict) -> str:
    return f"{row['artifact']} @ {row['target']} b{row['batch']}"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both lower latency and higher accuracy."""
    front = []
    for i, (latency, accuracy) in enumerate(points):
        dominated = any(
            (lat <= latency and acc >= accuracy) and (lat < latency or acc > accuracy)
            for j, (lat, acc) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def file_score(row: dict | None) -> str:
    """A bench row's task score: ``97.12%`` top-1 for a classifier, ``miou 0.8123`` for another task."""
    if row and row.get("accuracy"):
        return f"{100 * row['accuracy']['top1']:.2f}%"
    metrics = (row or {}).get("metrics")
    if metrics and metrics.get("value") is not None:
        return f"{metrics['metric']} {metrics['value']:.4g}"
    return "-"


PERCENT_METRICS = ("accuracy", "pixel_accuracy", "exact_match")


def ledger_score(row: dict, split: str = "test") -> tuple[str, float | None]:
    """A ledger row's score on ``split`` as (text, value): its task's monitored metric (accuracy for a
    classifier, and for reports written before tasks existed)."""
    metric = row.get("metric", "accuracy")
    value = row.get(f"{split}_score", row.get(f"{split}_accuracy"))
    if value is None:
        return "-", None
    return (f"{100 * value:.2f}%" if metric in PERCENT_METRICS else f"{value:.4g}"), value


def ledger_metric(ledger: list[dict]) -> str:
    """The metric a run's ledger scores (its first row's)."""
    return ledger[0].get("metric", "accuracy") if ledger else "accuracy"


def count_text(value: int | None) -> str:
    """``1,234`` for a parameter or MAC count, ``-`` where the row cannot know it (a teacher given as a file)."""
    return "-" if value is None else f"{value:,}"
