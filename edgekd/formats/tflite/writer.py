"""TFLite export (FP32 or full INT8) through litert-torch, gated by the LiteRT interpreter.

An INT8 model runs integer kernels throughout. Its interface is float by default (a QUANTIZE op in
front, a DEQUANTIZE op behind, easiest for apps) or int8 with ``io="int8"``, which saves those two
conversions on device; the manifest gives the scale and zero point either way. The batch size is 1
and the layout that of the PyTorch model (NCHW for images). A text's sequence length is the padded one
even when the data asks for a dynamic length (litert-torch cannot lower a free sequence axis of
attention); the manifest's ``fixed_axes`` says so.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from edgekd.catalog import catalog
from edgekd.data.sources import DataBundle
from edgekd.errors import ConfigError
from edgekd.formats.failures import conversion_error
from edgekd.formats.format import FileWriter
from edgekd.formats.tflite.float_io import float_interface
from edgekd.inputs import ModelInputs, call_arguments, detached, named_inputs, rows
from edgekd.quantize.compat import fix_pattern_export
from edgekd.quantize.model import QuantizedModel
from edgekd.quantize.quantizer import Int8Quantizer
from edgekd.utils.modes import inference
from edgekd.utils.naming import check_choice
from edgekd.utils.quiet import native_stderr_captured, quiet_import

TFLITE_SCHEMA_VERSION = 3


def tflite_writer(
    model: nn.Module, example: ModelInputs, data: DataBundle | None = None, io: str = "float"
) -> FileWriter:
    """The TFLite writer for ``model`` (FP32 module or :class:`QuantizedModel`); see :func:`edgekd.export.to_tflite`."""
    check_choice("io", io, catalog("formats").get("tflite").choices["io"])  # the list recipes validate with
    quantized = isinstance(model, QuantizedModel)
    if io == "int8" and not quantized:
        raise ConfigError("io: int8 input/output needs a quantized model (run the Quantize stage first)")
    example = rows(detached(example), slice(0, 1))
    free = data.signature.free_axes if data is not None else {}

    def write(staged: Path) -> dict:
        _convert(model, example, staged)
        if quantized and io == "float":
            staged.write_bytes(float_interface(staged.read_bytes()))
        facts = {"tflite_schema_version": TFLITE_SCHEMA_VERSION, "io": io if quantized else "float"}
        if free:  # litert-torch cannot lower a free sequence axis (a BERT's attention compares it to ints)
            named = named_inputs(example)
            facts["fixed_axes"] = {name: [int(named[name].shape[a + 1]) for a in axes] for name, axes in free.items()}
        return facts

    return FileWriter(example, write)


def _convert(model: nn.Module, example: ModelInputs, staged: Path) -> None:
    litert_torch = quiet_import("litert_torch")
    kwargs = {}
    target = model
    if isinstance(model, QuantizedModel):
        fix_pattern_export()
        quant_config = quiet_import("litert_torch.quantize.quant_config")
        kwargs["quant_config"] = quant_config.QuantConfig(pt2e_quantizer=Int8Quantizer(qat=False))
        target = model.graph_module
    try:
        with inference(model), native_stderr_captured(replay=False):
            args, keyword_inputs = call_arguments(example)
            litert_torch.convert(target, args, keyword_inputs or None, **kwargs).export(str(staged))
    except Exception as exc:  # noqa: BLE001 - converter errors come as many types; the user gets one line
        raise conversion_error("TFLite", exc, model, example, quantized=isinstance(model, QuantizedModel)) from exc
