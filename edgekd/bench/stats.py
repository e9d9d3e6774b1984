"""Latency statistics as the trusted benchmark tools report them."""

from __future__ import annotations

import numpy as np

CV_WARNING = 0.10


def summarize(times_ms: list[float]) -> dict[str, float]:
    """mean, std, min, p50, p90, p99, max and the coefficient of variation (std / mean)."""
    values = np.asarray(times_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no timings to summarize")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {
        "count": int(values.size),
        "mean_ms": mean,
        "std_ms": std,
        "min_ms": float(values.min()),
        "p50_ms": float(np.percentile(values, 50)),
        "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
        "cv": std / mean if mean > 0 else 0.0,
    }


def histogram(times_ms: list[float], bins: int = 24) -> dict[str, list]:
    """The distribution of the timed runs, compact enough for every report: bin edges and counts over
    [min, max] (a long tail shows as far, sparse bins)."""
    values = np.asarray(times_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no timings to summarize")
    counts, edges = np.histogram(values, bins=bins if values.max() > values.min() else 1)
    return {"edges_ms": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def unstable(summary: dict[str, float]) -> bool:
    return summary["cv"] > CV_WARNING
