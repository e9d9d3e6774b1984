"""Export to ONNX and TFLite, each artifact gated by its own runtime and described by a manifest."""

from edgekd.export.artifact import Artifact, Gate, runtime_accuracy
from edgekd.export.failures import ExportError, ParityError
from edgekd.export.onnx import to_onnx
from edgekd.export.parity import ParityReport
from edgekd.export.tflite import to_tflite
from edgekd.formats import EXPORTS

FORMATS = tuple(EXPORTS)

__all__ = [
    "FORMATS",
    "Artifact",
    "ExportError",
    "Gate",
    "ParityError",
    "ParityReport",
    "runtime_accuracy",
    "to_onnx",
    "to_tflite",
]
