"""The Pipeline: runs stages in order on a student and records what each one did.

A stage is any object with a ``name`` and ``run(ctx, student) -> student``. Stages never import each
other; they meet here and in the Trainer, so a new stage is a new file and one line in a recipe.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from edgekd import __version__
from edgekd.bench.targets import Target, load_target
from edgekd.data import DataBundle, example_inputs
from edgekd.environment import machine_facts
from edgekd.errors import ConfigError, DataError
from edgekd.export_plan import export_plan
from edgekd.fileio import atomic_write, atomic_write_text
from edgekd.formats import FORMATS
from edgekd.inputs import ModelInputs, forward, to_device
from edgekd.ledger import REPORT_SCHEMA_VERSION, Ledger, LedgerRow, write_reports
from edgekd.metrics import count_macs, count_params, size_bytes
from edgekd.modelfile import load_model, save_model
from edgekd.modes import inference
from edgekd.outputs import OutputError, logits_of, logits_selected, output_selection, select_output
from edgekd.runlock import RunLock
from edgekd.train import TrainConfig, Trainer, evaluate, resolve_device

RUN_RECORD = "run.json"
OUTPUT_HINT = "; if the logits are elsewhere in the output, select them with output= (name, index or function)"


@runtime_checkable
class Stage(Protocol):
    """One step of the pipeline: takes the current student, returns the next one.

    A stage may also define ``validate(teachers, student)``; the Pipeline calls it before any
    training so that configuration mistakes surface at once.
    """

    name: str

    def run(self, ctx: RunContext, student: nn.Module) -> nn.Module: ...


@dataclass
class RunContext:
    """What a stage may use: the teachers, the data, the run folder and a Trainer factory."""

    teachers: list[nn.Module]
    teacher_weights: list[float] | None
    data: DataBundle
    run_dir: Path
    device: torch.device
    seed: int
    quiet: bool
    stage_dir: Path = field(default=Path("."))
    notes: dict = field(default_factory=dict)
    resume: bool = False  # true for the stage a resumed run picks up: its Trainer continues from last.pt

    def trainer(self, config: TrainConfig, desc: str) -> Trainer:
        """The shared training loop, checkpointing into this stage's folder."""
        return Trainer(
            config, self.device, self.stage_dir, quiet=self.quiet, desc=desc, seed=self.seed, resume=self.resume
        )


@dataclass
class PipelineResult:
    model: nn.Module
    artifacts: dict[str, Path]
    report: dict
    run_dir: Path
    teachers: list[nn.Module] = field(default_factory=list)


class Pipeline:
    """Teacher(s) + student + data + ordered stages -> a run folder with checkpoints and a report."""

    def __init__(
        self,
        teacher: nn.Module | Sequence[nn.Module],
        student: nn.Module,
        data: DataBundle,
        stages: Sequence[Stage],
        out_dir: str | Path = "runs/edgekd",
        teacher_weights: Sequence[float] | None = None,
        export: Sequence[str] | Mapping[str, dict | None] = (),
        targets: Sequence[str | Target] = (),
        seed: int = 0,
        device: str = "auto",
        quiet: bool = False,
        overwrite: bool = False,
        config: dict | None = None,
    ) -> None:
        self.teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
        if not self.teachers or not all(isinstance(t, nn.Module) for t in self.teachers):
            raise ConfigError("teacher must be a torch.nn.Module or a non-empty list of them")
        if not isinstance(student, nn.Module):
            raise ConfigError("student must be a torch.nn.Module")
        if teacher_weights is not None and len(teacher_weights) != len(self.teachers):
            raise ConfigError(f"teacher_weights has {len(teacher_weights)} values for {len(self.teachers)} teachers")
        for i, stage in enumerate(stages):
            if not isinstance(stage, Stage):
                raise ConfigError(f"stages[{i}] ({type(stage).__name__}) has no name and run(ctx, student) method")
        self.export = export_plan(export)
        try:  # a typo fails here, not after an hour of training
            self.targets = [t if isinstance(t, Target) else load_target(t) for t in targets]
        except ConfigError as exc:
            raise ConfigError(f"targets: {exc}") from exc
        if self.targets and not self.export:
            raise ConfigError("targets: benchmarking measures exported files; add export: [onnx, tflite]")
        self.student = student
        self.data = data
        self.stages = list(stages)
        self.teacher_weights = list(teacher_weights) if teacher_weights is not None else None
        self.out_dir = Path(out_dir)
        self.seed = seed
        self.device = resolve_device(device)
        self.quiet = quiet
        self.overwrite = overwrite
        self.config = config or {}
        self.teacher_notes: list[dict] = [{} for _ in self.teachers]

    def preflight(self, resume: bool = False) -> None:
        """Every check that can fail before minutes of training: run folder, inputs, outputs."""
        if resume:
            self._check_resumable()
        else:
            self.check_run_dir()
        self._check_models_accept_data()
        for index, stage in enumerate(self.stages):
            validate = getattr(stage, "validate", None)
            if callable(validate):
                try:
                    validate(self.teachers, self.student)
                except ConfigError as exc:
                    raise ConfigError(f"stages[{index}].{stage.name}: {exc}") from exc

    def run(self, resume: bool = False) -> PipelineResult:
        """Run every stage; with ``resume`` continue a killed run from its last completed stage and, inside
        the stage it was in, from its last completed epoch."""
        self.preflight(resume)
        run_dir = self._prepare_run_dir()
        with RunLock(run_dir), logits_selected(*self.teachers, self.student):
            result = self._run(run_dir, resume)
        if output_selection(result.model) is None:
            select_output(result.model)  # the final student returns its logits tensor, whatever it came as
        return result

    def _run(self, run_dir: Path, resume: bool) -> PipelineResult:
        started = time.perf_counter()
        ctx = RunContext(self.teachers, self.teacher_weights, self.data, run_dir, self.device, self.seed, self.quiet)
        report = self._report_skeleton(run_dir)
        if resume:
            ledger, done, student, report["previous_wall_s"] = self._resume_point(run_dir)
            report["resumed"] = True
            self._log(f"resuming {run_dir} after stage {done}/{len(self.stages)}")
        else:
            atomic_write_text(run_dir / RUN_RECORD, json.dumps(self._run_record(), indent=2) + "\n")
            ledger, done, student = Ledger(), 0, self.student.to(self.device)
            for i, teacher in enumerate(self.teachers):
                teacher.to(self.device).eval()
                note = self.teacher_notes[i]
                label = self._teacher_label(i)
                ledger.add(self._measure(label, "input", teacher, note.get("wall_s", 0.0), note.get("notes", "")))
            ledger.add(self._measure("student", "input", student, 0.0, "before any stage"))
        for teacher in self.teachers:
            teacher.to(self.device).eval()
        self._write(run_dir, report, ledger, started, "running")
        for index, stage in enumerate(self.stages):
            if index < done:
                continue
            ctx.resume = resume and index == done
            with self._stop_recorded(run_dir, report, ledger, started, f"stage {index + 1}: {stage.name}"):
                student = self._run_stage(ctx, index, stage, student, ledger)
            self._write(run_dir, report, ledger, started, "running")
        save_model(student, run_dir / "student.pt")
        artifacts: dict[str, Path] = {}
        for fmt, options in self.export.items():
            with self._stop_recorded(run_dir, report, ledger, started, f"export {fmt}"):
                artifacts[fmt] = self._export(fmt, options, student, run_dir, ledger)
            report["artifacts"] = {name: str(path.relative_to(run_dir)) for name, path in artifacts.items()}
            self._write(run_dir, report, ledger, started, "running")
        if self.targets:
            with self._stop_recorded(run_dir, report, ledger, started, "benchmark"):
                report["bench"] = self._bench(student, artifacts, run_dir, ledger)
        report = self._write(run_dir, report, ledger, started, "completed")
        return PipelineResult(student, artifacts, report, run_dir, self.teachers)

    @contextmanager
    def _stop_recorded(self, run_dir: Path, report: dict, ledger: Ledger, started: float, where: str):
        """The report says where the run stopped (failed or interrupted), then the error goes on."""
        try:
            yield
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {exc}"
            self._write(run_dir, report, ledger, started, f"{reason} ({where})")
            raise

    def _run_record(self) -> dict:
        """What a resume must match: the recipe (or the Python arguments) and the code version."""
        return {
            "edgekd_version": __version__,
            "config": self.config,
            "stages": [{"name": s.name, "config": _stage_config(s)} for s in self.stages],
            "export": self.export,
            "targets": [t.name for t in self.targets],
            "seed": self.seed,
            "data": self.data.describe(),
        }

    def _check_resumable(self) -> None:
        record_path = self.out_dir / RUN_RECORD
        if not record_path.is_file() or not (self.out_dir / "report.json").is_file():
            raise ConfigError(f"nothing to resume in '{self.out_dir}': no {RUN_RECORD} and report.json there")
        try:
            recorded = json.loads(record_path.read_text())
        except ValueError as exc:
            raise ConfigError(f"{record_path}: not readable ({exc}); cannot resume") from exc
        current = json.loads(json.dumps(self._run_record(), default=str))
        differences = diff_keys(recorded, current)
        if differences:
            raise ConfigError(
                f"cannot resume '{self.out_dir}' with a different recipe or edgekd version; differing: "
                + "; ".join(differences[:6])
                + (f" (and {len(differences) - 6} more)" if len(differences) > 6 else "")
            )
        if json.loads((self.out_dir / "report.json").read_text()).get("status") == "completed":
            raise ConfigError(f"run '{self.out_dir}' already completed; nothing to resume")

    def _resume_point(self, run_dir: Path) -> tuple[Ledger, int, nn.Module, float]:
        """The ledger of the completed stages, their count, and the student the last one left."""
        report = json.loads((run_dir / "report.json").read_text())
        ledger = Ledger()
        done = 0
        for row in report["ledger"]:
            if row["kind"] == "input" or (row["kind"] == "stage" and row["stage"] == self.stages[done].name):
                ledger.add(LedgerRow(**row))
                done += row["kind"] == "stage"
        student = self.student.to(self.device)
        if done:
            folder = run_dir / "checkpoints" / f"{done:02d}-{self.stages[done - 1].name}"
            path = folder / "model.pt2" if (folder / "model.pt2").is_file() else folder / "model.pt"
            student = load_model(copy.deepcopy(self.student), path).to(self.device)
        return ledger, done, student, float(report.get("wall_s", 0.0))

    def _export(self, fmt: str, options: dict, student: nn.Module, run_dir: Path, ledger: Ledger) -> Path:
        """Write one artifact (gated by its runtime) and add its row, measured on the file itself."""

        self._log(f"export {fmt}")
        writer = FORMATS[fmt].write_function()
        path = run_dir / "artifacts" / f"model{FORMATS[fmt].suffix}"
        artifact = writer(student.cpu(), self._example(), path, data=self.data, **options)
        last = ledger.rows[-1]
        row = LedgerRow(
            stage=fmt,
            kind="artifact",
            test_accuracy=artifact.test_accuracy,
            params=last.params,
            macs=last.macs,
            size_bytes=artifact.size_bytes,
            wall_s=round(artifact.export_s, 2),
            notes=f"{artifact.precision} {artifact.path.name}; parity: {artifact.parity.summary()}",
            details={
                "path": str(artifact.path.relative_to(run_dir)),
                "manifest": str(artifact.manifest_path.relative_to(run_dir)),
                "sha256": artifact.sha256,
                "precision": artifact.precision,
                "parity": artifact.parity.as_dict(),
            },
        )
        ledger.add(row)
        self._log(f"{fmt}: test accuracy {100 * row.test_accuracy:.2f}% measured on {artifact.path.name}")
        return artifact.path

    def _run_stage(self, ctx: RunContext, index: int, stage: Stage, student: nn.Module, ledger: Ledger) -> nn.Module:
        ctx.stage_dir = ctx.run_dir / "checkpoints" / f"{index + 1:02d}-{stage.name}"
        ctx.notes = {}
        self._log(f"stage {index + 1}/{len(self.stages)}: {stage.name}")
        stage_start = time.perf_counter()
        student = stage.run(ctx, student)
        if not isinstance(student, nn.Module):
            raise ConfigError(f"stage '{stage.name}' returned {type(student).__name__}, not a torch.nn.Module")
        wall = time.perf_counter() - stage_start
        save_model(student, ctx.stage_dir / "model.pt")
        row = self._measure(stage.name, "stage", student, wall, ctx.notes.pop("summary", ""))
        row.details = ctx.notes
        ledger.add(row)
        self._log(f"{stage.name}: test accuracy {100 * row.test_accuracy:.2f}% ({wall:.1f} s)")
        return student

    def _bench(self, student: nn.Module, artifacts: dict[str, Path], run_dir: Path, ledger: Ledger) -> dict:
        """Every artifact (and the PyTorch model as the reference) on every target, in fresh processes."""
        from edgekd import bench  # the harness and its plotting load on first use

        self._log(f"benchmark on {', '.join(t.name for t in self.targets)}")
        files = list(artifacts.values())
        reference = self._torch_reference(student, run_dir / "artifacts" / "model.pt2")
        if reference is not None:
            files.append(reference)
        result = bench.run(files, self.targets, data=self.data, quiet=self.quiet)
        paths = bench.write_report(result, run_dir / "bench", ledger_md=ledger.to_markdown())
        self._log(f"benchmark report: {paths['html']}")
        return result

    def _torch_reference(self, student: nn.Module, path: Path) -> Path | None:
        """The final student as a ``torch.export`` archive, measured as the PyTorch eager reference."""
        program = getattr(student, "program", None)
        if program is None:
            from edgekd.quantize.graph import CaptureError, capture

            example = self._example()
            try:
                with inference(student):
                    program = capture(student.cpu(), example)
            except CaptureError as exc:
                self._log(f"no PyTorch reference in the benchmark: {exc}")
                return None
        atomic_write(path, lambda handle: torch.export.save(program, handle))
        return path

    def _example(self) -> ModelInputs:
        """Two validation inputs (CPU): shape checks, export examples, graph capture."""
        return example_inputs(self.data.val, 2)

    def _teacher_label(self, index: int) -> str:
        return "teacher" if len(self.teachers) == 1 else f"teacher[{index}]"

    def _check_models_accept_data(self) -> None:
        """Fail before any training when a model cannot take the data's inputs or classes."""
        sample = to_device(self._example(), self.device)
        named = [(self._teacher_label(i), t) for i, t in enumerate(self.teachers)]
        for role, model in [*named, ("student", self.student)]:
            try:
                with inference(model.to(self.device)):
                    out = logits_of(forward(model, sample))
            except OutputError as exc:
                raise DataError(f"{role} ({type(model).__name__}): {exc}") from exc
            except (RuntimeError, ValueError, TypeError) as exc:
                first = str(exc).strip().splitlines()[0]
                raise DataError(
                    f"{role} ({type(model).__name__}) cannot take inputs {self.data.signature.text()} "
                    f"from data '{self.data.name}': {first}"
                ) from exc
            if out.dim() != 2 or out.shape[1] != self.data.num_classes:
                hint = "" if output_selection(model) not in (None, "auto") else OUTPUT_HINT
                raise DataError(
                    f"{role} ({type(model).__name__}) outputs {tuple(out.shape)} but data '{self.data.name}' has "
                    f"{self.data.num_classes} classes; expected (batch, {self.data.num_classes}) logits{hint}"
                )

    def check_run_dir(self) -> None:
        """Refuse to write over an earlier run unless asked: its results are never lost by accident."""
        if (self.out_dir / "report.json").exists() and not self.overwrite:
            raise ConfigError(
                f"run folder '{self.out_dir}' already holds a run; choose another out_dir, resume it or overwrite it"
            )

    def _prepare_run_dir(self) -> Path:
        run_dir = self.out_dir
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        return run_dir

    def _measure(self, stage: str, kind: str, model: nn.Module, wall: float, notes: str) -> LedgerRow:
        return LedgerRow(
            stage=stage,
            kind=kind,
            test_accuracy=evaluate(model, self.data.test, self.device),
            val_accuracy=evaluate(model, self.data.val, self.device),
            params=count_params(model),
            macs=count_macs(model, self.data.signature),
            size_bytes=size_bytes(model),
            wall_s=round(wall, 2),
            notes=notes,
        )

    def _report_skeleton(self, run_dir: Path) -> dict:
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "edgekd_version": __version__,
            "run_name": run_dir.name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": self.data.describe(),
            "teachers": [type(t).__name__ for t in self.teachers],
            "teacher_weights": self.teacher_weights,
            "student": type(self.student).__name__,
            "stages": [{"name": s.name, "config": _stage_config(s)} for s in self.stages],
            "export": self.export,
            "targets": [t.name for t in self.targets],
            "seed": self.seed,
            "config": self.config,
            "environment": machine_facts(str(self.device)),
        }

    def _write(self, run_dir: Path, report: dict, ledger: Ledger, started: float, status: str) -> dict:
        wall = time.perf_counter() - started
        pretrain = sum(note.get("wall_s", 0.0) for note in self.teacher_notes)
        report = {
            **report,
            "status": status,
            "wall_s": round(wall + pretrain + report.get("previous_wall_s", 0.0), 2),
            "teacher_pretrain_s": round(pretrain, 2),
            "ledger": ledger.as_dicts(),
        }
        write_reports(run_dir, report, ledger)
        return report

    def _log(self, line: str) -> None:
        if not self.quiet:
            print(f"[edgekd] {line}", flush=True)


def diff_keys(before, after, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like trees, with both values."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after), key=str)
        return [d for k in keys for d in diff_keys(before.get(k), after.get(k), f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [d for i, (a, b) in enumerate(zip(before, after)) for d in diff_keys(a, b, f"{prefix}[{i}]")]
    return [] if before == after else [f"{prefix or '<top>'}: {before!r} -> {after!r}"]


def _stage_config(stage: Stage) -> dict:
    if dataclasses.is_dataclass(stage):
        return json.loads(json.dumps(dataclasses.asdict(stage), default=str))
    return {}
