"""INT8 quantization: PT2E QAT / PTQ into a :class:`QuantizedModel` that exports to ONNX and TFLite.

Names load on first use: torchao and litert-torch take seconds to import.
"""

from edgekd.utils.lazy import lazy_attributes

_MODEL = ("QuantizationScheme", "QuantizedModel", "TensorQuantization")
_NAMES = {
    **{
        name: ("edgekd.quantize.model", name) for name in ("QuantizationScheme", "QuantizedModel", "TensorQuantization")
    },
    **{name: ("edgekd.quantize.pt2e", name) for name in ("ObservedGraph", "calibrate", "convert", "prepare")},
    "Quantize": ("edgekd.quantize.stage", "Quantize"),
    "layer_sensitivity": ("edgekd.quantize.sensitivity", "layer_sensitivity"),
}
_MODULES = (
    "bias", "bias_correction", "compat", "embedding", "graph", "model", "pt2e", "quantizer", "safe_archive",
    "sensitivity", "stage", "weight_range",
)  # fmt: skip

__all__ = list(_NAMES)

__getattr__ = lazy_attributes(globals(), _NAMES, _MODULES)
