"""Writing a model as a checked file: the format's writer, then the parity gate, then the manifest.

Format-independent: the format's own package (:mod:`edgekd.formats`) writes the file; this module stages
it, gates it in its runtime and moves it into place (:func:`edgekd.export.artifact.publish`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from edgekd.data.sources import DataBundle
from edgekd.errors import ConfigError, first_line
from edgekd.export.artifact import Artifact, Gate, publish
from edgekd.formats import exports
from edgekd.inputs import ModelInputs, Signature, forward
from edgekd.outputs import output_names, output_selection, raw_output, several_outputs, tensors_in
from edgekd.quantize.graph import FreeAxes
from edgekd.utils.modes import inference
from edgekd.utils.naming import unknown


def export_file(
    fmt: str,
    model: nn.Module,
    example: ModelInputs,
    path: str | Path,
    data: DataBundle | None = None,
    gate: Gate | None = None,
    **options,
) -> Artifact:
    """Write ``model`` as a ``fmt`` file at ``path``, checked in its runtime; ``options`` are the format's."""
    writable = exports()
    if fmt not in writable:
        raise ConfigError(f"export: {unknown('export format', fmt, writable)}")
    names = check_runs_on_example(model, example)
    writer = writable[fmt].write_function()(model, example, data, **options)
    return publish(fmt, path, writer.write, model, writer.example, data, gate, free=writer.free, outputs=names)


def check_runs_on_example(model: nn.Module, example: ModelInputs) -> list[str] | None:
    """The model and the example fit each other, or one line says how they do not (before any converter).
    Returns the names of its outputs when its forward returns several tensors (each is exported), else None."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    tensors = example.values() if isinstance(example, Mapping) else [example]
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise ConfigError(
            f"example: expected one input batch (a tensor, or a dict of named tensors), got {type(example).__name__}"
        )
    try:
        with inference(model):
            output = raw_output(model, lambda: forward(model, example))
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, TypeError, ValueError, IndexError) as exc:
        raise ConfigError(
            f"{type(model).__name__} cannot run on the example {Signature.of(example).text()}: {first_line(exc)}"
        ) from exc
    several = several_outputs(output) if output_selection(model) is None else None
    if not several:
        return None
    names = output_names(output)
    if len(set(names)) != len(names) or len(names) != len(tensors_in(output)):
        raise ConfigError(
            f"{type(model).__name__} returns {several}: its outputs cannot be named one by one; return a tuple or "
            "a dict of tensors, or choose one with ek.select_output(model, index or name)"
        )
    return names


def to_onnx(
    model: nn.Module,
    example: ModelInputs,
    path: str | Path,
    data: DataBundle | None = None,
    gate: Gate | None = None,
    opset: int | None = None,
    activations: str = "auto",
    free_axes: FreeAxes | None = None,
) -> Artifact:
    """Export ``model`` (FP32 module or :class:`QuantizedModel`) to ``path``, checked in ONNX Runtime.

    Args:
        model: an FP32 ``nn.Module`` or the :class:`QuantizedModel` the Quantize stage returns.
        example: one input batch (a tensor, or a dict of named tensors) that fixes shapes and dtypes;
            the batch axis stays dynamic.
        path: where the ``.onnx`` goes (with ``.onnx.data`` beside it above 1 GiB of weights, and the
            ``.onnx.json`` manifest). A file that fails its parity gate is kept as ``.rejected``.
        data: when given, the parity gate runs on its test inputs and the file's test accuracy is
            measured in ONNX Runtime; without it, on ``example``.
        gate: parity tolerances (:class:`~edgekd.export.artifact.Gate`); the defaults suit most models.
        opset: the ONNX opset (default: the exporter's).
        activations: INT8 only: ``uint8``, ``int8`` or ``auto`` (uint8 on x86, where ONNX Runtime
            fuses only uint8 activations into integer kernels throughout); the learned scales are kept.
        free_axes: per-sample axes left free in the file besides the batch, ``{"input_ids": [0],
            "attention_mask": [0]}`` for a dynamic sequence length; default: those the data declares
            (``ek.data.text(..., sequence="dynamic")``). A QuantizedModel keeps the axes it was captured
            with. The parity gate also runs on inputs cut to half their length along those axes.
    Returns: the :class:`~edgekd.export.artifact.Artifact` (path, size, sha256, parity, accuracy).
    """
    return export_file("onnx", model, example, path, data, gate, opset=opset, activations=activations,
                       free_axes=free_axes)  # fmt: skip


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
    return export_file("tflite", model, example, path, data, gate, io=io)


def to_executorch(
    model: nn.Module, example: ModelInputs, path: str | Path, data: DataBundle | None = None, gate: Gate | None = None
) -> Artifact:
    """Export ``model`` (FP32 module or :class:`QuantizedModel`) to an ExecuTorch ``.pte`` at ``path``, lowered to
    the XNNPACK delegate and checked in ExecuTorch's runtime (needs ``pip install 'edgekd[executorch]'``).

    Args:
        model: an FP32 ``nn.Module`` or the :class:`QuantizedModel` the Quantize stage returns (the same INT8
            graph as the ONNX and TFLite files, its weights folded to int8 for XNNPACK).
        example: one input batch; the file takes batch 1, as the TFLite file does.
        path: where the ``.pte`` goes (with its ``.pte.json`` manifest, which lists the ops XNNPACK runs and
            those left on the portable CPU kernels).
        data, gate: as in :func:`to_onnx`.
    Returns: the :class:`~edgekd.export.artifact.Artifact`.
    """
    return export_file("executorch", model, example, path, data, gate)
