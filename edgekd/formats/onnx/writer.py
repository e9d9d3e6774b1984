"""ONNX export (FP32 or INT8) through torch's dynamo exporter, gated by ONNX Runtime.

INT8 models come out as a QDQ graph whose weights are int8 initializers with the scales learned in
QAT; ONNX Runtime fuses it into integer kernels (QLinearConv, QGemm). The batch dimension is left
free (``batch``) so a server can run any batch size; a model whose code fixes the batch size is
exported at the example's batch size instead.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from torch import nn

from edgekd.data.sources import DataBundle
from edgekd.formats.failures import conversion_error
from edgekd.formats.format import FileWriter, side_data_path
from edgekd.formats.onnx.int8 import (
    fold_weight_quantization,
    pool_as_global_average,
    resolve_activation_type,
    shift_activations_to_uint8,
)
from edgekd.formats.onnx.registry import shared_registry
from edgekd.inputs import ModelInputs, call_arguments, detached, forward, free_axis_name, rows
from edgekd.outputs import output_names, output_selection, raw_output, several_outputs
from edgekd.quantize.graph import FreeAxes, at_least_two, batch_dynamic_shapes
from edgekd.quantize.model import QuantizedModel
from edgekd.utils.modes import inference
from edgekd.utils.quiet import native_stderr_captured

OUTPUT_NAME = "logits"
SINGLE_FILE_LIMIT = 1 << 30  # below this, weights stay inside the .onnx (protobuf's own cap is 2 GiB)


def onnx_writer(
    model: nn.Module,
    example: ModelInputs,
    data: DataBundle | None = None,
    opset: int | None = None,
    activations: str = "auto",
    free_axes: FreeAxes | None = None,
) -> FileWriter:
    """The ONNX writer for ``model`` (FP32 module or :class:`QuantizedModel`); see :func:`edgekd.export.to_onnx`."""
    activation_type = resolve_activation_type(activations)
    quantized = isinstance(model, QuantizedModel)
    example = detached(example)
    free = data.signature.free_axes if free_axes is None and data is not None else dict(free_axes or {})

    def write(staged: Path) -> dict:
        proto = _export(model, example, opset, free)
        facts = _int8_rewrites(proto, activation_type, activations) if quantized else FP32_FACTS
        name_free_dimensions(proto, free)
        strip_debug_info(proto)
        _save(proto, staged)
        opsets = {entry.domain or "ai.onnx": entry.version for entry in proto.opset_import}
        return {"opset": opsets.get("ai.onnx"), "opsets": opsets, **facts}

    return FileWriter(example, write, free)


FP32_FACTS = {"int8_weight_tensors": 0, "activations": None}


def _int8_rewrites(proto: onnx.ModelProto, activation_type: str, requested: str) -> dict:
    """The rewrites ONNX Runtime needs for integer kernels (``onnx_int8``), and what they did."""
    return {
        "int8_weight_tensors": fold_weight_quantization(proto),
        "activations": activation_type,
        "activations_requested": requested,
        "uint8_activation_tensors": shift_activations_to_uint8(proto) if activation_type == "uint8" else 0,
        "global_pools": pool_as_global_average(proto),
    }


def _export(model: nn.Module, example: ModelInputs, opset: int | None, free: FreeAxes) -> onnx.ModelProto:
    quantized = isinstance(model, QuantizedModel)
    target = model.program if quantized else model  # the program's batch (and free axes) are already free
    batch = at_least_two(example)
    attempts = [(batch, None if quantized else batch_dynamic_shapes(batch, free))]
    names = _names(model, example)
    if not quantized:
        attempts.append((rows(example, slice(0, 1)), None))  # fixed batch for models whose code pins it
    error: BaseException | None = None
    for inputs, dynamic in attempts:
        args, kwargs = call_arguments(inputs)
        try:
            with inference(model), native_stderr_captured(replay=False), shared_registry():
                program = torch.onnx.export(
                    target, args, kwargs=kwargs, dynamo=True, dynamic_shapes=dynamic, opset_version=opset,
                    output_names=names, verbose=False,
                )  # fmt: skip
            return program.model_proto
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types; the user gets one line
            error = error or exc
    raise conversion_error("ONNX", error, model, rows(example, slice(0, 1)), quantized=quantized) from error


def _names(model: nn.Module, example: ModelInputs) -> list[str]:
    """``logits`` for a one-output model; each output's own name when the forward returns several."""
    with inference(model):
        output = raw_output(model, lambda: forward(model, example))
    return output_names(output) if several_outputs(output) and output_selection(model) is None else [OUTPUT_NAME]


def name_free_dimensions(proto: onnx.ModelProto, free: FreeAxes | None = None) -> None:
    """The exporter calls free dimensions ``s0``/``s43``; apps and the manifest read ``batch`` (and
    ``sequence`` for a text's free token axis)."""
    values = [*proto.graph.input, *proto.graph.output]
    renames = {}
    first = {v.type.tensor_type.shape.dim[0].dim_param for v in values if v.type.tensor_type.shape.dim}
    first.discard("")
    if len(first) == 1:
        renames[first.pop()] = "batch"
    for value in proto.graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis in (free or {}).get(value.name, ()):
            if axis + 1 < len(dims) and dims[axis + 1].dim_param:
                renames.setdefault(dims[axis + 1].dim_param, free_axis_name(axis))
    for value in [*values, *proto.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renames:
                dim.dim_param = renames[dim.dim_param]


def strip_debug_info(proto: onnx.ModelProto) -> None:
    """Drop the exporter's per-node stack traces and module paths: on a small model they outweigh the
    weights, and runtimes never read them (the PyTorch model stays the place to debug)."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    for value in list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output):
        del value.metadata_props[:]
    for init in proto.graph.initializer:
        del init.metadata_props[:]


def _save(proto: onnx.ModelProto, staged: Path) -> None:
    if proto.ByteSize() < SINGLE_FILE_LIMIT:
        onnx.save(proto, staged)
    else:
        side = side_data_path(staged).name
        onnx.save(proto, staged, save_as_external_data=True, all_tensors_to_one_file=True, location=side)
