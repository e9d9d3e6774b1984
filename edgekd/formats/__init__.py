"""One entry per file format: its suffix, the runtime that loads it, its writer, runner and cost.

Everything that differs between ONNX, TFLite and ``.pt2`` is reached from here: recipe validation
(the export options), the Pipeline's export step (the writer), the parity gate and the benchmark
(the runner, one class used by both), the roofline estimate (the cost counter) and the harness
(the fixed batch size read from the header). The table names modules by string, so reading it
imports no converter or runtime.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    runtime: str  # the name targets list in ``runtimes``
    runtime_label: str
    module: str  # holds the runner class, ``fixed_batch(path)`` and ``file_cost(path)``
    runner: str
    writer: str | None = None  # "module:function" of ``edgekd.export``; None: not a recipe export
    options: dict[str, tuple] = field(default_factory=dict)  # export option -> accepted types
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)  # export option -> its values, default first
    devices: tuple[str, ...] = ("cpu",)
    counted: bool = True  # whether ``cost`` can count its layers for the roofline estimate

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


FORMATS: dict[str, Format] = {
    "onnx": Format(
        "onnx", ".onnx", "onnx", "ONNX Runtime", "edgekd.formats.onnx", "OnnxRunner", "edgekd.export.onnx:to_onnx",
        {"opset": (int, type(None)), "activations": (str,)}, {"activations": ("auto", "uint8", "int8")},
        ("cpu", "cuda"),
    ),
    "tflite": Format(
        "tflite", ".tflite", "tflite", "LiteRT", "edgekd.formats.tflite", "LiteRTRunner",
        "edgekd.export.tflite:to_tflite", {"io": (str,)}, {"io": ("float", "int8")},
    ),
    "pt2": Format("pt2", ".pt2", "torch", "PyTorch", "edgekd.formats.pt2", "TorchRunner", devices=("cpu", "cuda"),
                  counted=False),
}  # fmt: skip
EXPORTS = {name: fmt for name, fmt in FORMATS.items() if fmt.writer}


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


def files_of(path: str | Path) -> list[Path]:
    """The file and its side data file, when it has one: all that an app must ship."""
    side = side_data_path(path)
    return [Path(path), side] if side.exists() else [Path(path)]


def format_of(path: str | Path) -> Format | None:
    suffix = Path(path).suffix.lower()
    return next((fmt for fmt in FORMATS.values() if fmt.suffix == suffix), None)


def runtime_of(path: str | Path) -> str | None:
    fmt = format_of(path)
    return fmt.runtime if fmt else None


def suffixes() -> list[str]:
    return [fmt.suffix for fmt in FORMATS.values()]
