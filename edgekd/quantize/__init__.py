"""INT8 quantization: PT2E QAT / PTQ into a :class:`QuantizedModel` that exports to ONNX and TFLite."""

from edgekd.quantize.model import QuantizationScheme, QuantizedModel, TensorQuantization
from edgekd.quantize.pt2e import ObservedGraph, calibrate, convert, prepare
from edgekd.quantize.stage import Quantize

__all__ = [
    "ObservedGraph",
    "QuantizationScheme",
    "QuantizedModel",
    "Quantize",
    "TensorQuantization",
    "calibrate",
    "convert",
    "prepare",
]
