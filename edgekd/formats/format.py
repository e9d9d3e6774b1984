"""What a file format is: its suffix, the runtime that loads it, its writer, runner and cost counter.

One :class:`Format` per format lives in its own package (``edgekd.formats.onnx``...) and is found through
the ``formats`` catalog (:mod:`edgekd.catalog`), so a new format is a package with a ``FORMAT`` entry.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the bench worker reads this module and never imports torch
    from edgekd.inputs import ModelInputs


@dataclass
class FileWriter:
    """A format's writer bound to one model: what the gate feeds the file, and how to write it.

    ``write(staged)`` fills the staged path and returns the format's facts for the manifest; ``example``
    is the input the file is written for (a TFLite file takes batch 1); ``free`` the per-sample axes left
    free in the file, which the gate also checks at half length."""

    example: ModelInputs
    write: Callable[[Path], dict]
    free: Mapping[str, Sequence[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    runtime: str  # the name targets list in ``runtimes``
    runtime_label: str
    module: str  # holds the runner class, ``fixed_batch(path)`` and ``file_cost(path)``
    runner: str
    writer: str | None = None  # "module:function" returning a :class:`FileWriter`; None: not a recipe export
    options: dict[str, tuple] = field(default_factory=dict)  # export option -> accepted types
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)  # export option -> its values, default first
    devices: tuple[str, ...] = ("cpu",)
    counted: bool = True  # whether ``cost`` can count its layers for the roofline estimate
    requires: str | None = None  # the optional package its writer and runtime need (an extra of the same name)

    order: int = 0  # where the format comes in tables and reports

    def runner_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.runner)

    def write_function(self):
        if self.writer is None:
            raise ValueError(f"{self.name} files are not written by an export step")
        module, name = self.writer.split(":")
        return getattr(importlib.import_module(module), name)

    def fixed_batch(self, path: Path) -> int | None:
        """The batch size the file was written with when it cannot change (read from its header)."""
        return importlib.import_module(self.module).fixed_batch(Path(path))

    def import_runtime(self) -> None:
        """Import the runtime alone, so the benchmark's memory baseline does not count its import."""
        importlib.import_module(self.module).import_runtime()

    def cost(self, path: Path) -> dict:
        """MACs, bytes and whether the kernels are int8, counted from the file's own layers."""
        return importlib.import_module(self.module).file_cost(Path(path))


def side_data_path(path: str | Path) -> Path:
    """Where a model file keeps its weights when they do not fit inside it (ONNX external data)."""
    path = Path(path)
    return path.with_name(path.name + ".data")


def manifest_path(path: str | Path) -> Path:
    """The manifest written beside every exported file (``model.onnx.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def max_input_shapes(path: str | Path) -> dict[str, list[int]]:
    """The longest per-sample shape of each input with free axes (a dynamic sequence length), as the
    file's manifest gives it: timings and cost estimates take free axes at their longest, never at 1."""
    try:
        described = json.loads(manifest_path(path).read_text())["model_inputs"]["inputs"]
        return {entry["name"]: [int(d) for d in entry["max_shape"]] for entry in described if "max_shape" in entry}
    except (OSError, ValueError, KeyError, TypeError):  # no manifest, or one without free axes
        return {}


def copy_model_file(source: str | Path, target: str | Path) -> Path:
    """``source`` copied to ``target``; its side data goes beside it under the name the file itself refers to."""
    import shutil

    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    side = side_data_path(source)
    if side.exists():
        shutil.copyfile(side, target.parent / side.name)
    return target


def files_of(path: str | Path) -> list[Path]:
    """The file and its side data file, when it has one: all that an app must ship."""
    side = side_data_path(path)
    return [Path(path), side] if side.exists() else [Path(path)]
