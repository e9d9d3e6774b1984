"""File formats: one package each (``onnx/``, ``tflite/``, ``pt2/``) with its writer, runner and cost.

Everything that differs between ONNX, TFLite and ``.pt2`` is reached from here: recipe validation
(the export options), the export step (the writer), the parity gate and the benchmark (the runner, one
class used by both), the roofline estimate (the cost counter) and the harness (the fixed batch size read
from the header). Formats are entries of the ``formats`` catalog; reading the table imports no converter
or runtime.
"""

from __future__ import annotations

from pathlib import Path

from edgekd.catalog import catalog
from edgekd.formats.format import (
    FileWriter,
    Format,
    copy_model_file,
    files_of,
    manifest_path,
    max_input_shapes,
    side_data_path,
)

__all__ = [
    "EXPORTS", "FORMATS", "FileWriter", "Format", "all_formats", "copy_model_file", "exports", "files_of",
    "format_of", "manifest_path", "max_input_shapes", "runtime_of", "side_data_path", "suffixes",
]  # fmt: skip


def all_formats() -> dict[str, Format]:
    """Every file format, by name, in table order."""
    found = catalog("formats").load_all()
    return dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))


def exports() -> dict[str, Format]:
    """The formats an export step can write (``export: [onnx, tflite]``)."""
    return {name: fmt for name, fmt in all_formats().items() if fmt.writer}


def format_of(path: str | Path) -> Format | None:
    suffix = Path(path).suffix.lower()
    return next((fmt for fmt in all_formats().values() if fmt.suffix == suffix), None)


def runtime_of(path: str | Path) -> str | None:
    fmt = format_of(path)
    return fmt.runtime if fmt else None


def suffixes() -> list[str]:
    return [fmt.suffix for fmt in all_formats().values()]


def __getattr__(name: str) -> dict[str, Format]:
    if name == "FORMATS":
        return all_formats()
    if name == "EXPORTS":
        return exports()
    raise AttributeError(f"module 'edgekd.formats' has no attribute '{name}'")
