"""The figures a study table shows for each file: ``edgekd bench`` on the mobile-like target."""

from __future__ import annotations

from pathlib import Path

import edgekd as ek
from edgekd.formats import files_of


def measure_on_mobile_like(files: dict[str, Path], data, quick: bool) -> dict[str, dict]:
    """Size (with any side data file), mobile-like p50 latency, peak memory and whole-test-set accuracy
    of each named file; a file the benchmark could not measure stops the study with its error."""
    report = ek.bench.run(list(files.values()), targets=["mobile-like"], data=data, quiet=True,
                          **({"runs": 5, "min_s": 0.05} if quick else {}))  # fmt: skip
    by_path = {entry["path"]: entry for entry in report["results"]}
    measured = {}
    for name, path in files.items():
        entry = by_path.get(str(path), {})
        if entry.get("status", "ok") != "ok" or "latency" not in entry:
            raise RuntimeError(f"benchmark of {name} ({path.name}) failed: {entry.get('error') or entry.get('reason')}")
        measured[name] = {
            "size_bytes": sum(f.stat().st_size for f in files_of(path)),
            "p50_ms": entry["latency"]["p50_ms"],
            "peak_memory_bytes": entry["peak_memory_bytes"],
            "accuracy": entry.get("accuracy", {}).get("top1"),
        }
    return measured
