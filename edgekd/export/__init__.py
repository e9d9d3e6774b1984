"""Export: any format's file written, gated by its own runtime and described by a manifest.

Format-independent: the gate (:mod:`~edgekd.export.artifact`, :mod:`~edgekd.export.parity`), the
manifest, the plan of what a run writes; each format's writer lives in :mod:`edgekd.formats`.
"""

from edgekd.export.artifact import Artifact, Gate, runtime_accuracy
from edgekd.export.convert import export_file, to_onnx, to_tflite
from edgekd.export.parity import ParityReport
from edgekd.formats.failures import ExportError, ParityError

__all__ = [
    "Artifact",
    "ExportError",
    "Gate",
    "ParityError",
    "ParityReport",
    "export_file",
    "runtime_accuracy",
    "to_onnx",
    "to_tflite",
]


def __getattr__(name: str) -> tuple[str, ...]:
    if name == "FORMATS":  # the formats an export step can write, by name
        from edgekd.formats import exports

        return tuple(exports())
    raise AttributeError(f"module 'edgekd.export' has no attribute '{name}'")
