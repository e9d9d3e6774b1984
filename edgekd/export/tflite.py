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

from edgekd.data import DataBundle
from edgekd.errors import ConfigError
from edgekd.export.artifact import Artifact, Gate, publish
from edgekd.export.failures import conversion_error
from edgekd.export.tflite_io import float_interface
from edgekd.export_plan import TFLITE_IO, check_choice
from edgekd.inputs import ModelInputs, call_arguments, detached, named_inputs, rows
from edgekd.quantize.compat import fix_pattern_export
from edgekd.quantize.model import QuantizedModel
from edgekd.quantize.quantizer import Int8Quantizer
from edgekd.utils.modes import inference
from edgekd.utils.quiet import native_stderr_captured, quiet_import

IO_TYPES = TFLITE_IO  # the one list, shared with recipe validation
TFLITE_SCHEMA_VERSION = 3


def to_tflite(
    model: nn.Module,
    example: ModelInputs,
    path: str | Path,
    io: str = "float",
    data: DataBundle | None = None,
    gate: Gate | None = None,
) -> Artifact:
    """Export ``model`` (FP32 module or :class:`QuantizedModel`) to ``path``, checked in LiteRT.

    Args:
        model: an FP32 ``nn.Module`` or the :class:`QuantizedModel` the Quantize stage returns.
        example: one input batch (a tensor, or a dict of named tensors); the file is written for it.
        path: where the ``.tflite`` goes, with its ``.tflite.json`` manifest; a file that fails its
            parity gate is kept as ``.rejected``.
        io: INT8 only: ``float`` (float tensors in and out, a QUANTIZE op in front and a DEQUANTIZE
            behind: easiest for apps) or ``int8`` (the app quantizes with the manifest's scales).
        data: when given, the parity gate runs on its test inputs and the file's test accuracy is
            measured in LiteRT; without it, on ``example``.
        gate: parity tolerances (:class:`~edgekd.export.artifact.Gate`).
    Returns: the :class:`~edgekd.export.artifact.Artifact`.
    """
    check_choice("io", io, IO_TYPES)
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

    return publish("tflite", path, write, model, example, data, gate)


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
