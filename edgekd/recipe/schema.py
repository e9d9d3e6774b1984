"""YAML recipes: a file that mirrors the Python API, validated before anything runs.

Every error names the file and the key (``recipe.yaml: stages[0].distill.alpha: must be in [0, 1]``).
Stage and data options are checked against the Python signatures they feed, so a recipe accepts
exactly what the API accepts and nothing drifts apart.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from edgekd import formats, tasks, teachers
from edgekd.data import sources as data_sources
from edgekd.data.sources import DataBundle
from edgekd.distill.queried import insides_refused
from edgekd.errors import ConfigError, DataError, EdgekdError
from edgekd.export.plan import export_plan
from edgekd.models import registry as models
from edgekd.models.checkpoint import EXPORTED_SUFFIXES
from edgekd.models.files import load_model
from edgekd.outputs import resolve_selector, select_output
from edgekd.stage import stage_class
from edgekd.train import TrainConfig
from edgekd.train.preflight import with_task
from edgekd.utils.naming import unknown
from edgekd.utils.typed import typed

TEACHER_LAYERS = "teacher-layers"  # a student cut from the (trained) teacher: DistilBERT's initialization
TOP_KEYS = {
    "name",
    "out_dir",
    "seed",
    "device",
    "data",
    "teacher",
    "teachers",
    "student",
    "stages",
    "export",
    "targets",
    "bench_teacher",
    "task",
    "monitor",
}
MODEL_KEYS = {"model", "args", "checkpoint", "pretrain", "weight", "output"}


@dataclass
class ModelSpec:
    model: str
    args: dict = field(default_factory=dict)
    checkpoint: str | None = None
    pretrain: TrainConfig | None = None
    weight: float = 1.0
    output: Any = None  # where the logits are in the forward's output: a name, an index or "module:function"
    queried: dict | None = (
        None  # a teacher that is a file, a function or outputs on disk ({file: ...}, edgekd.teachers)
    )


@dataclass
class Recipe:
    """A validated recipe; :meth:`build` turns it into the objects the Pipeline takes."""

    path: Path
    name: str
    out_dir: str
    seed: int
    device: str
    data_source: str
    data_args: dict
    teachers: list[ModelSpec]
    student: ModelSpec
    stages: list[Any]
    export: dict[str, dict]
    targets: list  # bench Targets, loaded and checked
    raw: dict
    bench_teacher: bool = False
    task: Any = None  # a Task (edgekd.tasks), or None: the data's own


def load(path: str | Path) -> Recipe:
    """Read and validate a recipe file; every problem is a ConfigError naming file and key."""
    source = Path(path)
    if not source.is_file():
        raise ConfigError(f"recipe '{source}' does not exist")
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: YAML syntax error{where}: {problem}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not a text file ({exc.reason})") from exc
    try:
        return parse(raw, source)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def parse(raw: Any, source: Path = Path("<recipe>")) -> Recipe:
    if not isinstance(raw, dict):
        raise ConfigError("a recipe must be a mapping of keys (name, data, teacher, student, stages, ...)")
    _check_keys(raw, TOP_KEYS, "")
    for required in ("data", "student", "stages"):
        if required not in raw:
            raise ConfigError(f"missing required key '{required}'")
    if ("teacher" in raw) == ("teachers" in raw):
        raise ConfigError("give exactly one of 'teacher' (one model) or 'teachers' (a list)")
    teachers_raw = [raw["teacher"]] if "teacher" in raw else raw["teachers"]
    if not isinstance(teachers_raw, list) or not teachers_raw:
        raise ConfigError("teachers: must be a non-empty list of models")
    data_source, data_args = _parse_data(raw["data"])
    return Recipe(
        path=source,
        name=typed(raw.get("name", source.stem), str, "name"),
        out_dir=typed(raw.get("out_dir", f"runs/{source.stem}"), str, "out_dir"),
        seed=typed(raw.get("seed", 0), int, "seed"),
        device=typed(raw.get("device", "auto"), str, "device"),
        data_source=data_source,
        data_args=data_args,
        teachers=[
            _parse_model(t, f"teachers[{i}]" if "teachers" in raw else "teacher") for i, t in enumerate(teachers_raw)
        ],
        student=_parse_model(raw["student"], "student"),
        stages=_parse_stages(raw["stages"]),
        export=export_plan(raw.get("export") or []),
        targets=_checked_targets(typed(raw.get("targets", []), list[str], "targets")),
        raw=raw,
        bench_teacher=typed(raw.get("bench_teacher", False), bool, "bench_teacher"),
        task=_parse_task(raw.get("task"), raw.get("monitor")),
    )


def _parse_task(raw: Any, monitor: Any) -> Any:
    """``task: regression`` or ``task: {name: regression, loss: l1}``, and ``monitor: mae``: built now, so a
    wrong name, option or metric fails before any data is read."""
    if raw is None and monitor is None:
        return None
    monitor = typed(monitor, str, "monitor") if monitor is not None else None
    if raw is None:
        return ("data", monitor)  # the data's own task, monitored on this metric (checked once data is built)
    if isinstance(raw, dict):
        options = dict(raw)
        name = typed(options.pop("name", None), str, "task.name")
        return tasks.get(name, monitor, **options)
    return tasks.get(typed(raw, str, "task"), monitor)


def _check_keys(section: dict, allowed: set[str], where: str) -> None:
    for key in section:
        if key not in allowed:
            section = f"{where.rstrip('.')}: " if where else ""
            raise ConfigError(f"{section}{unknown('key', key, allowed)}")


def _parse_data(section: Any) -> tuple[str, dict]:
    if isinstance(section, str):
        section = {"source": section}
    if not isinstance(section, dict) or "source" not in section:
        raise ConfigError(f"data: must be a mapping with 'source' (one of {', '.join(data_sources.source_names())})")
    source = section["source"]
    build = data_sources.source(source)
    args = {k: v for k, v in section.items() if k != "source"}
    return source, _check_call_args(build, args, "data.")


def _check_call_args(fn: Callable, args: dict, where: str) -> dict:
    """Keys and value types checked against ``fn``'s signature and type hints."""
    params = inspect.signature(fn).parameters
    hints = typing.get_type_hints(fn)
    _check_keys(args, set(params), where)
    for key, value in args.items():
        if key in hints:
            args[key] = typed(value, hints[key], f"{where}{key}")
    return args


def _parse_model(section: Any, where: str) -> ModelSpec:
    teacher = where != "student"
    if teacher and isinstance(section, str) and Path(section).suffix.lower() in (*formats.suffixes(), ".npz"):
        section = {"outputs" if section.lower().endswith(".npz") else "file": section}
    if teacher and isinstance(section, dict) and any(key in section for key in teachers.SOURCE_KEYS):
        return _parse_queried(section, where)
    if isinstance(section, str):
        section = {"model": section}
    if not isinstance(section, dict) or "model" not in section:
        more = ", or {file: teacher.onnx}, {function: 'module:function'}, {outputs: soft_labels.npz}" if teacher else ""
        raise ConfigError(f"{where}: must be a model name or a mapping with 'model'{more}")
    _check_keys(section, MODEL_KEYS, f"{where}.")
    name = typed(section["model"], str, f"{where}.model")
    if name == TEACHER_LAYERS:
        if where != "student":
            raise ConfigError(f"{where}.model: {TEACHER_LAYERS} builds a student from the teacher's blocks")
        _check_keys(section.get("args") or {}, {"layers"}, f"{where}.args.")
    elif ":" not in name and name not in models.names():
        raise ConfigError(f"{where}.model: {unknown('model', name, models.names())}")
    pretrain = section.get("pretrain")
    if pretrain is not None:
        pretrain = _build_dataclass(TrainConfig, pretrain, f"{where}.pretrain.")
    checkpoint = section.get("checkpoint")
    if checkpoint is not None:
        checkpoint = typed(checkpoint, str, f"{where}.checkpoint")
        if not Path(checkpoint).is_file():
            raise ConfigError(f"{where}.checkpoint: file '{checkpoint}' does not exist")
        if Path(checkpoint).suffix.lower() in EXPORTED_SUFFIXES:
            instead = f"pass it as {where}: {{file: {checkpoint}}}" if teacher else "a student trains as a module"
            suffix = Path(checkpoint).suffix.lower()
            raise ConfigError(
                f"{where}.checkpoint: '{checkpoint}' is an exported {suffix} file, not weights; {instead}"
            )
    if checkpoint is not None and pretrain is not None:
        raise ConfigError(f"{where}: give 'checkpoint' (trained weights) or 'pretrain' (train on labels), not both")
    weight = typed(section.get("weight", 1.0), float, f"{where}.weight")
    if weight <= 0:
        raise ConfigError(f"{where}.weight: must be > 0, got {weight}")
    output = section.get("output")
    resolve_selector(output, f"{where}.output")  # a function reference that does not import fails here
    args = typed(section.get("args", {}), dict, f"{where}.args")
    return ModelSpec(name, args, checkpoint, pretrain, weight, output)


def _parse_queried(section: dict, where: str) -> ModelSpec:
    """A teacher that is a file, a function or outputs on disk; its own keys are checked by building it."""
    spec = {key: value for key, value in section.items() if key not in ("weight", "output")}
    teachers.as_teacher(spec, where)  # a missing file, an unknown key or a function that does not import fails here
    weight = typed(section.get("weight", 1.0), float, f"{where}.weight")
    if weight <= 0:
        raise ConfigError(f"{where}.weight: must be > 0, got {weight}")
    output = section.get("output")
    resolve_selector(output, f"{where}.output")
    source = next(key for key in teachers.SOURCE_KEYS if key in section)
    return ModelSpec(f"{source}:{section[source]}", weight=weight, output=output, queried=spec)


def _parse_stages(section: Any) -> list[Any]:
    if not isinstance(section, list) or not section:
        raise ConfigError("stages: must be a non-empty list like '- distill: {epochs: 5}'")
    stages = []
    for i, item in enumerate(section):
        if isinstance(item, str):
            item = {item: {}}
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(
                f"stages[{i}]: must be one stage name mapped to its options, e.g. 'distill: {{epochs: 5}}'"
            )
        ((kind, options),) = item.items()
        try:
            cls = stage_class(str(kind))
        except ConfigError as exc:
            raise ConfigError(f"stages[{i}]: {exc}") from exc
        stages.append(_build_stage(cls, options or {}, f"stages[{i}].{kind}."))
    return stages


def _checked_targets(names: list[str]) -> list:
    """The named targets, loaded once here: the Pipeline takes them as they are."""
    from edgekd.targets import load_target

    loaded = []
    for name in names:
        try:
            loaded.append(load_target(name))
        except ConfigError as exc:
            raise ConfigError(f"targets: {exc}") from exc
    return loaded


def _build_stage(cls: type, options: Any, where: str) -> Any:
    """A stage from its recipe options: a dataclass checks them against its typed fields."""
    if dataclasses.is_dataclass(cls):
        return _build_dataclass(cls, options, where)
    if not isinstance(options, dict):
        raise ConfigError(f"{where.rstrip('.')}: must be a mapping of options")
    return cls(**_check_call_args(cls, dict(options), where))


def _build_dataclass(cls: type, options: Any, where: str) -> Any:
    if not isinstance(options, dict):
        raise ConfigError(f"{where.rstrip('.')}: must be a mapping of options")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    _check_keys(options, set(fields), where)
    checked = {key: typed(value, hints[key], f"{where}{key}") for key, value in options.items()}
    try:
        return cls(**checked)
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from exc


def build_model(spec: ModelSpec, where: str, teacher: nn.Module | None = None) -> nn.Module:
    """The model a spec names; ``teacher-layers`` cuts the student from ``teacher``'s blocks."""
    if spec.queried is not None:
        model = teachers.as_teacher(spec.queried, where)
        if spec.output is not None:
            select_output(model, resolve_selector(spec.output, f"{where}.output"))
        return model
    try:
        if spec.model == TEACHER_LAYERS:
            from edgekd.models.transformers import from_teacher_layers

            if teacher is None:
                raise ConfigError(f"{where}.model: {TEACHER_LAYERS} needs a teacher")
            insides_refused([teacher], f"{where}.model: {TEACHER_LAYERS} (a student cut from the teacher's blocks)")
            model = from_teacher_layers(teacher, spec.args.get("layers", "every_other"))
        else:
            model = models.get(spec.model, **spec.args)
    except TypeError as exc:
        raise ConfigError(f"{where}.args: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{where}.model: '{spec.model}' did not return a torch.nn.Module")
    if spec.checkpoint:
        load_model(model, spec.checkpoint)
    if spec.output is not None:
        select_output(model, resolve_selector(spec.output, f"{where}.output"))
    return model


def build_data(recipe: Recipe) -> DataBundle:
    """The recipe's data, carrying its ``task``/``monitor`` when the recipe names them."""
    bundle = _source_data(recipe, recipe.task if isinstance(recipe.task, tasks.Task) else None)
    if recipe.task is None:
        return bundle
    if isinstance(recipe.task, tuple):  # only a monitor: the data's task, checked against the metric here
        return with_task(bundle, None, recipe.task[1])
    return with_task(bundle, recipe.task, None)


def _source_data(recipe: Recipe, task: Any) -> DataBundle:
    make = data_sources.source(recipe.data_source)
    args = dict(recipe.data_args)
    if task is not None and "task" not in args and "task" in inspect.signature(make).parameters:
        args["task"] = task  # targets are read as the task stores them (a 0/1 matrix as labels, say)
    try:
        return make(**args)
    except DataError as exc:  # "padding: must be ..." names a key of the recipe's data block: say where
        key = str(exc).split(":", 1)[0]
        if key in recipe.data_args:
            raise DataError(f"{recipe.path}: data.{exc}") from exc
        raise
    except EdgekdError:
        raise
    except TypeError as exc:
        raise ConfigError(f"{recipe.path}: data: {exc}") from exc
