"""Writing a study's results: JSON plus a Markdown table, each with the command and machine facts."""

from __future__ import annotations

import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from edgekd.utils.environment import machine_facts
from edgekd.utils.fileio import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def results_dir(quick: bool = False) -> Path:
    """Where studies write: ``$EDGEKD_RESULTS`` when set, else the committed folder, or for a quick
    (toy-size) run a scratch folder, so that toy numbers never replace the committed results."""
    if "EDGEKD_RESULTS" in os.environ:
        return Path(os.environ["EDGEKD_RESULTS"])
    return Path(tempfile.gettempdir()) / "edgekd-quick-results" if quick else RESULTS


COMMAND: str | None = None  # set by benchmarks.run, which hands the study its own argv


def command_line() -> str:
    """The command that regenerates the results, as typed from the repository root."""
    if COMMAND is not None:
        return COMMAND
    return "python -m " + " ".join([__import__("__main__").__spec__.name, *map(shlex.quote, sys.argv[1:])])


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (0 for a single seed)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table: first column left-aligned, the rest (numbers) right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def save(study: str, results: dict, table_md: str, started: float, quick: bool = False) -> Path:
    payload = {
        "study": study,
        "quick": quick,
        "command": command_line(),
        "wall_s": round(time.perf_counter() - started, 1),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_facts(),
        "results": results,
    }
    folder = results_dir(quick)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{study}.json", json.dumps(payload, indent=2) + "\n")
    machine = payload["machine"]
    header = (
        f"# {study}\n\nCommand: `{payload['command']}`  \n"
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['libraries']['torch']}, "
        f"{machine['torch_threads']} threads  \n"
        f"Wall time of the study: {payload['wall_s']:.0f} s, {payload['date']}\n\n"
    )
    if quick:
        header += "**Quick run at toy size: a smoke test, not a result.**\n\n"
    atomic_write_text(folder / f"{study}.md", header + table_md)
    print(f"[{study}] wall time {payload['wall_s']:.0f} s; results: {folder / study}.json and .md", flush=True)
    return folder / f"{study}.json"
