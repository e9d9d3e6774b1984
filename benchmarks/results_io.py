"""Writing a study's results: JSON plus a Markdown table, each with the command and machine facts."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

from edgekd.environment import machine_facts
from edgekd.fileio import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def results_dir() -> Path:
    """Where studies write: the committed folder, or ``$EDGEKD_RESULTS`` (quick runs, tests)."""
    return Path(os.environ.get("EDGEKD_RESULTS", RESULTS))


COMMAND: str | None = None  # set by benchmarks.run, which hands the study its own argv


def command_line() -> str:
    """The command that regenerates the results, as typed from the repository root."""
    if COMMAND is not None:
        return COMMAND
    return "python -m " + " ".join([__import__("__main__").__spec__.name, *map(shlex.quote, sys.argv[1:])])


def save(study: str, results: dict, table_md: str, started: float) -> Path:
    payload = {
        "study": study,
        "command": command_line(),
        "wall_s": round(time.perf_counter() - started, 1),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_facts(),
        "results": results,
    }
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{study}.json", json.dumps(payload, indent=2) + "\n")
    machine = payload["machine"]
    header = (
        f"# {study}\n\nCommand: `{payload['command']}`  \n"
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch {machine['libraries']['torch']}, "
        f"{machine['torch_threads']} threads  \n"
        f"Wall time of the study: {payload['wall_s']:.0f} s, {payload['date']}\n\n"
    )
    atomic_write_text(folder / f"{study}.md", header + table_md)
    return folder / f"{study}.json"
