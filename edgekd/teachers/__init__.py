"""Teachers you can only query: an exported file run in its runtime, a Python function (a service's
client), or a file of its outputs (soft labels). Each becomes a module without insides
(:class:`edgekd.distill.queried.QueriedTeacher`) that response distillation, multi-teacher averaging and
every stage's recovery training use like any teacher; what needs its layers says so in one line.

``ek.Pipeline(teacher="teacher.onnx", ...)``, ``teacher=my_client_function``,
``teacher=ek.teachers.soft_labels("answers.npz")``; in recipes ``teacher: {file: teacher.onnx}``,
``teacher: {function: "package.module:function"}``, ``teacher: {outputs: answers.npz}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from torch import nn

from edgekd.distill.queried import QueriedTeacher, QueryBudgetError, is_queried
from edgekd.errors import ConfigError
from edgekd.formats import format_of, suffixes
from edgekd.models.checkpoint import EXPORTED_SUFFIXES
from edgekd.teachers.files import FileTeacher
from edgekd.teachers.functions import FunctionTeacher
from edgekd.teachers.soft_labels import SoftLabels, save_soft_labels

__all__ = [
    "QUERY_OPTIONS", "SOURCE_KEYS", "FileTeacher", "FunctionTeacher", "QueriedTeacher", "QueryBudgetError",
    "SoftLabels", "answers_any_input", "as_teacher", "from_file", "from_function", "is_queried",
    "save_soft_labels", "soft_labels",
]  # fmt: skip

SOURCE_KEYS = ("file", "function", "outputs")  # how a recipe names a teacher that is not a model
QUERY_OPTIONS = ("max_queries", "per_second", "gives")  # what a file or function teacher also takes


def answers_any_input(teacher: nn.Module) -> bool:
    """False for outputs on disk, which answer only the training samples they were written for."""
    return not isinstance(teacher, SoftLabels)


def from_file(path: str | Path, **options) -> FileTeacher:
    """A teacher that is an exported file (``.onnx``, ``.tflite``...); options as :class:`QueriedTeacher`."""
    return FileTeacher(path, **options)


def from_function(fn: Callable | str, takes: str = "numpy", **options) -> FunctionTeacher:
    """A teacher that is a function of a batch; see :class:`FunctionTeacher`."""
    return FunctionTeacher(fn, takes=takes, **options)


def soft_labels(path: str | Path) -> SoftLabels:
    """A teacher that is a file of its outputs per training sample; see :mod:`edgekd.teachers.soft_labels`."""
    return SoftLabels(path)


def as_teacher(teacher: object, where: str = "teacher") -> nn.Module:
    """A teacher as the Pipeline takes it: a module as it is; a path to an exported file or to soft labels
    (``.npz``); a function; or a recipe's ``{file: ...}`` / ``{function: ...}`` / ``{outputs: ...}``."""
    if isinstance(teacher, nn.Module):
        return teacher
    if isinstance(teacher, (str, Path)):
        return _from_path(Path(teacher), where)
    if isinstance(teacher, Mapping):
        return _from_mapping(dict(teacher), where)
    if callable(teacher) and not isinstance(teacher, type):
        return FunctionTeacher(teacher)
    raise ConfigError(
        f"{where}: expected a torch.nn.Module, an exported file ({', '.join(suffixes())}), soft labels (.npz) or a "
        f"function of a batch, got {type(teacher).__name__}"
    )


def _from_path(path: Path, where: str) -> nn.Module:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return SoftLabels(path)
    if format_of(path) is not None:
        return FileTeacher(path)
    if suffix in EXPORTED_SUFFIXES:
        raise ConfigError(
            f"{where}: '{path}' is a {suffix} file, which edgekd cannot run; export it to .onnx or .tflite"
        )
    if suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt"):
        raise ConfigError(
            f"{where}: '{path}' holds weights, not a model: build the model, load them (torch.load + "
            "load_state_dict, or a recipe's {model: ..., checkpoint: ...}) and pass the module"
        )
    raise ConfigError(
        f"{where}: '{path}' is not a teacher edgekd can query (an exported file {', '.join(suffixes())} or soft "
        "labels .npz)"
    )


def _from_mapping(spec: dict, where: str) -> nn.Module:
    sources = [key for key in SOURCE_KEYS if key in spec]
    if len(sources) != 1:
        raise ConfigError(f"{where}: give exactly one of {', '.join(SOURCE_KEYS)}")
    source = sources[0]
    allowed = (
        {source}
        | ({"takes"} if source == "function" else set())
        | (set(QUERY_OPTIONS) if source != "outputs" else set())
    )
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ConfigError(
            f"{where}.{extra[0]}: not an option of a {source} teacher (it takes {', '.join(sorted(allowed))})"
        )
    options = {key: spec[key] for key in spec if key != source}
    try:
        if source == "file":
            return FileTeacher(spec["file"], **options)
        if source == "function":
            return FunctionTeacher(spec["function"], **options)
        return SoftLabels(spec["outputs"])
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
