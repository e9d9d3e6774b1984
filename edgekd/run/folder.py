"""The run folder: what a run leaves on disk and what lets a killed run resume.

``run.json`` records what the run was asked to do (the recipe or the Python arguments, the code
version); a resume must match it. ``report.json`` / ``report.md`` are rewritten after every stage
with the ledger so far, so a crash leaves the last good state. ``checkpoints/NN-stage/`` holds each
stage's model, ``run.lock`` the process that owns the folder. Nothing here knows what a stage does.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from edgekd.errors import ConfigError
from edgekd.models.files import load_model
from edgekd.run.ledger import REPORT_SCHEMA_VERSION, Ledger, LedgerRow, write_reports
from edgekd.run.lock import RunLock
from edgekd.train import distributed
from edgekd.utils.fileio import atomic_write_text
from edgekd.utils.version import __version__

RUN_RECORD = "run.json"
REPORT = "report.json"


@dataclasses.dataclass
class ResumePoint:
    """Where a killed run picks up: the ledger of its completed stages, their count and the last student."""

    ledger: Ledger
    done: int
    student: nn.Module
    previous_wall_s: float


class RunFolder:
    def __init__(self, path: str | Path, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite

    def check_fresh(self) -> None:
        """Refuse to write over an earlier run unless asked: its results are never lost by accident."""
        blocked = next((p for p in (self.path, *self.path.parents) if p.exists() and not p.is_dir()), None)
        if blocked is not None:
            where = f"out_dir '{self.path}'" + (f": '{blocked}'" if blocked != self.path else "")
            raise ConfigError(f"{where} is a file, not a folder; choose another out_dir")
        if (self.path / REPORT).exists() and not self.overwrite:
            raise ConfigError(
                f"run folder '{self.path}' already holds a run; choose another out_dir, resume it or overwrite it"
            )

    def check_resumable(self, record: dict) -> None:
        """A resume must find an unfinished run of the same recipe and edgekd version."""
        record_path = self.path / RUN_RECORD
        if not record_path.is_file() or not (self.path / REPORT).is_file():
            raise ConfigError(f"nothing to resume in '{self.path}': no {RUN_RECORD} and {REPORT} there")
        try:
            recorded = json.loads(record_path.read_text())
        except ValueError as exc:
            raise ConfigError(f"{record_path}: not readable ({exc}); cannot resume") from exc
        differences = diff_keys(recorded, json.loads(json.dumps(record, default=str)))
        if differences:
            raise ConfigError(
                f"cannot resume '{self.path}' with a different recipe or edgekd version; differing: "
                + "; ".join(differences[:6])
                + (f" (and {len(differences) - 6} more)" if len(differences) > 6 else "")
            )
        if json.loads((self.path / REPORT).read_text()).get("status") == "completed":
            raise ConfigError(f"run '{self.path}' already completed; nothing to resume")

    def open(self) -> RunLock | nullcontext:
        """Create the folder and hold its lock for the ``with`` block (rank 0's under torchrun: the
        other ranks write nothing and hold nothing)."""
        if not distributed.is_main():
            return nullcontext()
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        return RunLock(self.path)

    def write_record(self, record: dict) -> None:
        if distributed.is_main():
            atomic_write_text(self.path / RUN_RECORD, json.dumps(record, indent=2) + "\n")

    def stage_dir(self, index: int, name: str) -> Path:
        """``checkpoints/01-distill`` for the first stage (``index`` counts from 0)."""
        return self.path / "checkpoints" / f"{index + 1:02d}-{name}"

    def resume_point(self, stage_names: Sequence[str], student: nn.Module, device: torch.device) -> ResumePoint:
        """The completed stages' ledger rows and the student the last of them saved."""
        report = json.loads((self.path / REPORT).read_text())
        ledger, done = Ledger(), 0
        for row in report["ledger"]:
            if row["kind"] == "input" or (row["kind"] == "stage" and row["stage"] == stage_names[done]):
                ledger.add(LedgerRow(**row))
                done += row["kind"] == "stage"
        resumed = student.to(device)
        if done:
            folder = self.stage_dir(done - 1, stage_names[done - 1])
            path = folder / "model.pt2" if (folder / "model.pt2").is_file() else folder / "model.pt"
            resumed = load_model(copy.deepcopy(student), path).to(device)
        return ResumePoint(ledger, done, resumed, float(report.get("wall_s", 0.0)))

    def write_report(self, report: dict, ledger: Ledger) -> None:
        if distributed.is_main():
            write_reports(self.path, report, ledger)


def diff_keys(before, after, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like trees, with both values."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after), key=str)
        return [d for k in keys for d in diff_keys(before.get(k), after.get(k), f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [d for i, (a, b) in enumerate(zip(before, after)) for d in diff_keys(a, b, f"{prefix}[{i}]")]
    return [] if before == after else [f"{prefix or '<top>'}: {before!r} -> {after!r}"]


def stage_config(stage: object) -> dict:
    """A dataclass stage's options as JSON values (what the run record and the report show)."""
    if dataclasses.is_dataclass(stage):
        return json.loads(json.dumps(dataclasses.asdict(stage), default=str))
    return {}


class RunReport:
    """The report being built as the run goes: rewritten after every step, so a crash leaves the last good state."""

    def __init__(self, folder: RunFolder, skeleton: dict, teacher_notes: list[dict]) -> None:
        self.folder, self.ledger, self.started = folder, Ledger(), time.perf_counter()
        self.pretrain_s = sum(note.get("wall_s", 0.0) for note in teacher_notes)
        self.report = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "edgekd_version": __version__,
            "run_name": folder.path.name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **skeleton,
        }

    def write(self, status: str) -> dict:
        wall = time.perf_counter() - self.started + self.pretrain_s + self.report.get("previous_wall_s", 0.0)
        report = {
            **self.report,
            "status": status,
            "wall_s": round(wall, 2),
            "teacher_pretrain_s": round(self.pretrain_s, 2),
            "ledger": self.ledger.as_dicts(),
        }
        self.folder.write_report(report, self.ledger)
        return report

    @contextmanager
    def stop_recorded(self, where: str) -> Iterator[None]:
        """The report says where the run stopped (failed or interrupted), then the error goes on."""
        try:
            yield
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {exc}"
            self.write(f"{reason} ({where})")
            raise
