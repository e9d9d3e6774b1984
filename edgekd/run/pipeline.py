"""The Pipeline: runs stages in order on a student and records what each one did.

A stage is any object with a ``name`` and ``run(ctx, student) -> student`` (see :mod:`edgekd.stage`).
Stages never import each other; they meet here and in the Trainer. What the run leaves on disk and
how it resumes is :mod:`edgekd.run.folder`; the rows the ledger gets are :mod:`edgekd.run.measure`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from edgekd.data.sources import DataBundle, as_bundle, dataset_size, example_inputs
from edgekd.distill.queried import is_queried
from edgekd.errors import ConfigError, EdgekdError, first_line
from edgekd.export.convert import export_file
from edgekd.export.plan import export_plan
from edgekd.formats import FORMATS, copy_model_file
from edgekd.inputs import ModelInputs
from edgekd.models.files import save_model
from edgekd.outputs import logits_selected, output_selection, select_output
from edgekd.quantize.model import QuantizedModel
from edgekd.run.folder import RunFolder, RunReport, stage_config
from edgekd.run.ledger import Ledger, LedgerRow, joined_notes, score_text
from edgekd.run.measure import artifact_row, model_row, soft_labels_row
from edgekd.run.measurement import file_measurement
from edgekd.stage import RunContext, Stage, is_stage, validate_stage
from edgekd.targets import Target, load_target
from edgekd.tasks import TaskSpec
from edgekd.teachers import FileTeacher, SoftLabels, answers_any_input, as_teacher
from edgekd.train import distributed, resolve_device
from edgekd.train.evaluation import near_chance
from edgekd.train.preflight import check_models_accept_data, unshipped_outputs, with_task
from edgekd.utils.environment import machine_facts
from edgekd.utils.progress import bars_hidden
from edgekd.utils.quiet import torch_deprecations_quieted
from edgekd.utils.version import __version__

__all__ = ["Pipeline", "PipelineResult", "RunContext", "Stage"]


@dataclass
class PipelineResult:
    model: nn.Module
    artifacts: dict[str, Path]
    report: dict
    run_dir: Path
    teachers: list[nn.Module] = field(default_factory=list)


class Pipeline:
    """Teacher(s) + student + data + ordered stages -> a run folder with checkpoints and a report.

    Args:
        teacher: one ``nn.Module`` or a list of them (their KD targets are averaged, see ``teacher_weights``).
        student: the model the stages shrink; it must take ``data``'s inputs and return its classes' logits
            (a tensor, a tuple, a dict or an object with ``.logits``; see :func:`edgekd.select_output`).
        data: a :class:`edgekd.data.sources.DataBundle` (``ek.data.mnist()``, ``from_arrays``, ``image_folder``...),
            or your own loaders as ``{"train": ..., "val": ..., "test": ..., "num_classes": N}``
            (see :func:`edgekd.data.sources.from_loaders`).
        stages: ``[ek.Distill(...), ek.Prune(...), ek.Quantize(...)]`` or any :class:`edgekd.stage.Stage`.
        out_dir: the run folder; an existing run there is refused unless ``overwrite`` (or ``run(resume=True)``).
        teacher_weights: one weight per teacher for the averaged soft targets (default equal).
        export: ``["onnx", "tflite"]`` or ``{"tflite": {"io": "int8"}, "onnx": {"opset": 18}}``: each file is
            written from the final student and must pass its parity gate.
        targets: benchmark targets (``"cpu"``, ``"mobile-like"``, ``"gpu"``, a TOML path or a Target) that
            measure the exported files; needs ``export``.
        bench_teacher: with ``targets``, also export the (first) teacher in FP32 to each format
            (``artifacts/teacher.onnx``...) and benchmark it beside the shipped files: the report then shows
            what the chain bought in size, latency and accuracy against where it started.
        seed: seeds every stage's Trainer. device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        quiet: no progress lines. config: what to record as the run's recipe (the CLI passes the YAML).
        task: what the outputs mean, for every stage (:mod:`edgekd.tasks`): ``classification``, ``multilabel``,
            ``regression``, ``segmentation`` or your own Task; default: the data's (read from its targets).
        monitor: the metric that picks each stage's best epoch (default: the task's; ``accuracy``, ``rmse``...).
    """

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
        bench_teacher: bool = False,
        seed: int = 0,
        device: str = "auto",
        quiet: bool = False,
        overwrite: bool = False,
        config: dict | None = None,
        task: TaskSpec = None,
        monitor: str | None = None,
    ) -> None:
        given = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
        if not given:
            raise ConfigError("teacher: give a module, an exported file, a function or soft labels (or a list of them)")
        self.teachers = [as_teacher(t, "teacher" if len(given) == 1 else f"teacher[{i}]") for i, t in enumerate(given)]
        if not isinstance(student, nn.Module):
            raise ConfigError("student must be a torch.nn.Module")
        if teacher_weights is not None and len(teacher_weights) != len(self.teachers):
            raise ConfigError(f"teacher_weights has {len(teacher_weights)} values for {len(self.teachers)} teachers")
        if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence):
            raise ConfigError(
                f"stages: expected a list of stages like [ek.Distill(epochs=3)], got {type(stages).__name__}"
            )
        for i, stage in enumerate(stages):
            if isinstance(stage, type):
                raise ConfigError(f"stages[{i}] is the class {stage.__name__}; give an instance: {stage.__name__}(...)")
            if not is_stage(stage):
                raise ConfigError(f"stages[{i}] ({type(stage).__name__}) has no name and run(ctx, student) method")
        self.export = export_plan(export)
        try:  # a typo fails here, not after an hour of training
            self.targets = [t if isinstance(t, Target) else load_target(t) for t in targets]
        except ConfigError as exc:
            raise ConfigError(f"targets: {exc}") from exc
        if self.targets and not self.export:
            raise ConfigError("targets: benchmarking measures exported files; add export: [onnx, tflite]")
        if bench_teacher and not self.targets:
            raise ConfigError("bench_teacher: the teacher is benchmarked beside the shipped files; add targets")
        if bench_teacher and is_queried(self.teachers[0]) and not isinstance(self.teachers[0], FileTeacher):
            raise ConfigError(
                f"bench_teacher: the teacher is {self.teachers[0].describe()}, no file to measure; leave "
                "bench_teacher out, or give the teacher as a module or an exported file"
            )
        self.bench_teacher = bench_teacher
        self.student, self.data, self.stages = student, with_task(as_bundle(data), task, monitor), list(stages)
        self.teacher_weights = list(teacher_weights) if teacher_weights is not None else None
        self.folder = RunFolder(out_dir, overwrite)
        self.out_dir = self.folder.path
        self.seed, self.device, self.quiet, self.config = seed, resolve_device(device), quiet, config or {}
        self._checked_for: bool | None = None  # the resume mode the last passed preflight was for

    def preflight(self, resume: bool = False) -> None:
        """Every check that can fail before minutes of training: run folder, inputs, outputs, stage options.

        :meth:`run` calls it; call it yourself to fail fast before work of your own (the CLI trains
        teachers after it). A passed preflight is not repeated by the run that follows."""
        distributed.start(self.device)
        if distributed.is_main():  # under torchrun rank 0 judges the folder before it writes into it
            if resume:
                self.folder.check_resumable(self._run_record())
            else:
                self.folder.check_fresh()
        distributed.barrier()
        self._check_queried_teachers()
        named = [(self._teacher_label(i), t) for i, t in enumerate(self.teachers) if answers_any_input(t)]
        check_models_accept_data([*named, ("student", self.student)], self.data, self._example(), self.device)
        for index, stage in enumerate(self.stages):
            try:
                validate_stage(stage, self.teachers, self.student)
            except ConfigError as exc:
                raise ConfigError(f"stages[{index}].{stage.name}: {exc}") from exc
        self._checked_for = resume

    def _check_queried_teachers(self) -> None:
        """Teachers seen only through their answers: what they answer is read as the task needs, outputs on
        disk fit the data, and a query budget covers at least every sample the run asks about once."""
        samples = sum(dataset_size(loader) for loader in (self.data.train, self.data.val, self.data.test))
        for i, teacher in enumerate(self.teachers):
            if not is_queried(teacher):
                continue
            teacher.classes = self.data.task.name == "classification"
            try:
                if isinstance(teacher, SoftLabels):
                    teacher.check_data(self.data)
                else:
                    teacher.expected_queries(samples)
            except ConfigError as exc:
                raise ConfigError(f"{self._teacher_label(i)}: {exc}") from exc

    @torch_deprecations_quieted()
    def run(self, resume: bool = False, teacher_notes: Sequence[dict] | None = None) -> PipelineResult:
        """Run every stage; with ``resume`` continue a killed run from its last completed stage and, inside
        the stage it was in, from its last completed epoch. ``teacher_notes``: per teacher, ``notes`` and
        ``wall_s`` of how it was made (pretraining), for its ledger row and the run's wall time."""
        if self._checked_for is not resume:
            self.preflight(resume)
        self._checked_for = None
        notes = list(teacher_notes) if teacher_notes is not None else [{} for _ in self.teachers]
        if len(notes) != len(self.teachers):
            raise ConfigError(f"teacher_notes has {len(notes)} entries for {len(self.teachers)} teachers")
        structured = self.data.task.structured  # every output is the task's: no stage sees the logits alone
        selected = contextlib.nullcontext() if structured else logits_selected(*self.teachers, self.student)
        with self.folder.open(), selected, bars_hidden(self.quiet):
            result = self._run(resume, notes)
        if output_selection(result.model) is None and not structured:
            select_output(result.model)  # the final student returns its logits tensor, whatever it came as
        return result

    def _run(self, resume: bool, teacher_notes: list[dict]) -> PipelineResult:
        run = RunReport(self.folder, self._report_facts(), teacher_notes)
        ctx = RunContext(
            self.teachers,
            self.teacher_weights,
            self.data,
            self.out_dir,
            self.device,
            self.seed,
            self.quiet,
            measurement=file_measurement(),
        )
        if resume:
            point = self.folder.resume_point([s.name for s in self.stages], self.student, self.device)
            run.ledger, done, student = point.ledger, point.done, point.student
            run.report.update(previous_wall_s=point.previous_wall_s, resumed=True)
            self._answers_kept(load=True)
            self._log(f"resuming {self.out_dir} after stage {done}/{len(self.stages)}")
        else:
            self.folder.write_record(self._run_record())
            done, student = 0, self.student.to(self.device)
            for i, teacher in enumerate(self.teachers):
                row = run.ledger.add(self._teacher_row(i, teacher.to(self.device).eval(), teacher_notes[i]))
                self._warn_if_at_chance(row)
            unshipped = None if self.data.task.structured else unshipped_outputs(student, self._example(), self.device)
            run.ledger.add(self._row("student", "input", student, 0.0, joined_notes("before any stage", unshipped),
                                     judged=False))  # fmt: skip
            if unshipped and distributed.is_main():
                print(f"[edgekd] note: {unshipped}", file=sys.stderr, flush=True)
        for teacher in self.teachers:
            teacher.to(self.device).eval()
        run.write("running")
        for index, stage in enumerate(self.stages[done:], start=done):
            ctx.begin(self.folder.stage_dir(index, stage.name), resume and index == done)
            asked = self._queries()
            with run.stop_recorded(f"stage {index + 1}: {stage.name}"):
                student = self._run_stage(ctx, index, stage, student, run.ledger)
            self._note_queries(run.ledger.rows[-1], asked)
            self._answers_kept(load=False)
            run.write("running")
        self._record_queries(run)
        artifacts: dict[str, Path] = {}
        with distributed.main_only() as main:  # files are written once; the other ranks wait
            if main:
                save_model(student, self.out_dir / "student.pt")
                artifacts = self._export_and_bench(student, run)
        return PipelineResult(student, artifacts, run.write("completed"), self.out_dir, self.teachers)

    def _export_and_bench(self, student: nn.Module, run: RunReport) -> dict[str, Path]:
        artifacts: dict[str, Path] = {}
        for fmt, options in self.export.items():
            with run.stop_recorded(f"export {fmt}"):
                artifacts[fmt] = self._export(fmt, options, student, run.ledger)
            run.report["artifacts"] = {name: str(path.relative_to(self.out_dir)) for name, path in artifacts.items()}
            run.write("running")
        if self.targets:
            with run.stop_recorded("benchmark"):
                run.report["bench"] = self._bench(student, artifacts, run.ledger)
        return artifacts

    def _run_stage(self, ctx: RunContext, index: int, stage: Stage, student: nn.Module, ledger: Ledger) -> nn.Module:
        self._log(f"stage {index + 1}/{len(self.stages)}: {stage.name}")
        stage_start = time.perf_counter()
        student = stage.run(ctx, student)
        if not isinstance(student, nn.Module):
            raise ConfigError(f"stage '{stage.name}' returned {type(student).__name__}, not a torch.nn.Module")
        if not isinstance(student, QuantizedModel):  # a graph converted the same way everywhere
            distributed.same_structure(student, f"stage {index + 1}: {stage.name}")
        wall = time.perf_counter() - stage_start
        if distributed.is_main():
            save_model(student, ctx.stage_dir / "model.pt")
        row = ledger.add(self._row(stage.name, "stage", student, wall, ctx.summary))
        row.details = ctx.details
        self._log(f"{stage.name}: test {row.metric} {score_text(row.metric, row.test_score)} ({wall:.1f} s)")
        return student

    def _export(self, fmt: str, options: dict, student: nn.Module, ledger: Ledger) -> Path:
        """Write one artifact (gated by its runtime) and add its row, measured on the file itself."""
        self._log(f"export {fmt}")
        path = self.out_dir / "artifacts" / f"model{FORMATS[fmt].suffix}"
        artifact = export_file(fmt, student.cpu(), self._example(), path, data=self.data, **options)
        row = ledger.add(artifact_row(fmt, artifact, ledger.rows[-1], self.out_dir, self.data.labels))
        self._log(f"{fmt}: test {row.metric} {score_text(row.metric, row.test_score)} measured on {artifact.path.name} "
                  f"({artifact.size_bytes / 1024:.1f} KiB, {artifact.export_s:.1f} s)")  # fmt: skip
        return artifact.path

    def _bench(self, student: nn.Module, artifacts: dict[str, Path], ledger: Ledger) -> dict:
        """Every artifact (and the PyTorch model as the reference) on every target, in fresh processes."""
        from edgekd import bench  # the harness and its plotting load on first use
        from edgekd import report as report_files
        from edgekd.formats.pt2.writer import torch_reference
        from edgekd.quantize.graph import CaptureError

        self._log(f"benchmark on {', '.join(t.name for t in self.targets)}")
        files = list(artifacts.values())
        if self.bench_teacher:
            files += self._teacher_files()
        try:
            reference = self.out_dir / "artifacts" / "model.pt2"
            files.append(torch_reference(student, self._example(), reference, self.data.signature.free_axes))
        except CaptureError as exc:
            self._log(f"no PyTorch reference in the benchmark: {exc}")
        result = bench.run(files, self.targets, data=self.data, quiet=self.quiet)
        paths = report_files.write_report(result, self.out_dir / "bench", ledger=ledger.as_dicts())
        self._log(f"benchmark report: {paths['html']}")
        return result

    def _teacher_files(self) -> list[Path]:
        """The first teacher as FP32 files in the run's formats, parity-gated like every artifact; a teacher
        that is a file is measured as it is. A teacher no exporter can write is left out, and the run says why."""
        teacher = self.teachers[0].cpu().eval()
        if isinstance(teacher, FileTeacher):
            return [copy_model_file(teacher.path, self.out_dir / "artifacts" / f"teacher{teacher.path.suffix}")]
        paths = []
        for fmt in self.export:
            self._log(f"export the teacher to {fmt} for the benchmark")
            path = self.out_dir / "artifacts" / f"teacher{FORMATS[fmt].suffix}"
            try:
                paths.append(export_file(fmt, teacher, self._example(), path, data=self.data).path)
            except EdgekdError as exc:
                self._warn(f"bench_teacher: the teacher is left out of the {fmt} benchmark: {first_line(exc)}")
        return paths

    def _teacher_row(self, index: int, teacher: nn.Module, note: dict) -> LedgerRow:
        label, notes = self._teacher_label(index), note.get("notes", "")
        if isinstance(teacher, SoftLabels):
            return soft_labels_row(label, teacher, self.data, notes)
        if is_queried(teacher):
            notes = joined_notes(teacher.describe(), notes)
        return self._row(label, "input", teacher, note.get("wall_s", 0.0), notes)

    def _answers_kept(self, load: bool) -> None:
        """Queried teachers' answers in the run folder after each stage, read back on resume."""
        for index, teacher in enumerate(self.teachers):
            if is_queried(teacher) and answers_any_input(teacher) and distributed.is_main():
                path = self.out_dir / "teacher_answers" / f"{self._teacher_label(index)}.npz"
                if load:
                    teacher.load_answers(path)
                else:
                    teacher.save_answers(path)

    def _queries(self) -> int:
        return sum(t.queries for t in self.teachers if is_queried(t))

    def _note_queries(self, row: LedgerRow, before: int) -> None:
        """A stage's row says how many samples the queried teachers were asked about during it."""
        if any(is_queried(t) and answers_any_input(t) for t in self.teachers):
            asked = self._queries() - before
            row.details["teacher_queries"] = asked
            row.notes = joined_notes(row.notes, f"teacher asked about {asked:,} new samples")

    def _record_queries(self, run: RunReport) -> None:
        """Each queried teacher's row ends with what it cost: samples asked about, answers reused."""
        facts = {}
        for index, teacher in enumerate(self.teachers):
            if not is_queried(teacher):
                continue
            label = self._teacher_label(index)
            facts[label] = {"source": teacher.describe(), **teacher.query_facts()}
            row = next((r for r in run.ledger.rows if r.stage == label), None)
            if row is None:
                continue
            row.details.update(facts[label])
            said = [*teacher.notes]
            if answers_any_input(teacher):
                said.append(f"asked about {teacher.queries:,} samples in all, {teacher.reused:,} answers reused")
            row.notes = joined_notes(row.notes, *said)
        if facts:
            run.report["teacher_queries"] = facts

    def _run_record(self) -> dict:
        """What a resume must match: the recipe (or the Python arguments) and the code version."""
        return {
            "edgekd_version": __version__,
            "config": self.config,
            "stages": [{"name": s.name, "config": stage_config(s)} for s in self.stages],
            "export": self.export,
            "targets": [t.name for t in self.targets],
            "bench_teacher": self.bench_teacher,
            "seed": self.seed,
            "data": self.data.describe(),
        }

    def _report_facts(self) -> dict:
        """What the report says about the run besides its ledger: data, models, stages, machine."""
        return {
            "data": self.data.describe(),
            "teachers": [t.describe() if is_queried(t) else type(t).__name__ for t in self.teachers],
            "teacher_weights": self.teacher_weights,
            "processes": distributed.describe(),
            "student": type(self.student).__name__,
            "stages": [{"name": s.name, "config": stage_config(s)} for s in self.stages],
            "export": self.export,
            "targets": [t.name for t in self.targets],
            "seed": self.seed,
            "config": self.config,
            "environment": machine_facts(str(self.device)),
        }

    def _row(self, stage: str, kind: str, model: nn.Module, wall: float, notes: str, judged: bool = True):
        return model_row(stage, kind, model, self.data, self.device, wall, notes, judged)

    def _example(self) -> ModelInputs:
        """Two validation inputs (CPU): shape checks, export examples, graph capture."""
        return example_inputs(self.data.val, 2)

    def _teacher_label(self, index: int) -> str:
        return "teacher" if len(self.teachers) == 1 else f"teacher[{index}]"

    def _warn_if_at_chance(self, row: LedgerRow) -> None:
        """A teacher no better than guessing teaches nothing: said in its ledger row and on the terminal."""
        agreement = row.details.get("agreement_with_training_labels")
        if agreement is not None:  # outputs on disk: judged against the training labels they came with
            if not near_chance(agreement, self.data.num_classes):
                return
            why = f"agrees with the training labels at chance ({100 * agreement:.1f}%); are its ids the training rows?"
        elif row.test_score is None:
            return
        elif self.data.task.name == "classification":
            accuracy = row.val_accuracy if row.val_accuracy is not None else row.test_accuracy
            if not near_chance(accuracy, self.data.num_classes):
                return
            why = f"is at chance ({100 * accuracy:.1f}% on validation, {self.data.num_classes} classes)"
        else:
            skill = self.data.task.no_skill(row.test_metrics, self.data.num_classes)
            if skill is None:
                return
            why = f"knows nothing ({skill})"
        advice = "load its trained weights or pretrain it first"
        if agreement is not None or row.params is None:  # a file, a function, outputs on disk: nothing to load
            advice = "check it is the teacher meant for this data and that it takes these inputs as they are"
        warning = f"warning: {row.stage} {why}: distilling from it teaches nothing; {advice}"
        row.notes = joined_notes(row.notes, warning)
        self._warn(warning)

    def _warn(self, line: str) -> None:
        if distributed.is_main():
            print(f"[edgekd] {line}", file=sys.stderr, flush=True)

    def _log(self, line: str) -> None:
        if not self.quiet and distributed.is_main():
            print(f"[edgekd] {line}", flush=True)
