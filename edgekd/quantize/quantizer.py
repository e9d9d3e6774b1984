"""The INT8 scheme: litert-torch's TFLite-compatible PT2E quantizer, with the changes users need.

Weights are int8 symmetric per channel, activations int8 per tensor, BatchNorm folded. On top:

- a ReLU or ReLU6 right after a conv, linear or add gets the output observer itself, so the scale
  covers only what the activation lets through. TFLite fuses the activation into the conv the same
  way, ONNX Runtime then drops the Clip and runs QLinearConv, and no int8 level is wasted on values
  the activation clips away;
- a zero padding (``F.pad``, as TensorFlow-style "same" convolutions write it) shares the
  quantization of its input, and so does the conv that reads it: padding with the zero point is
  exact in int8, where a scale of its own would add a requantization in front of every such conv;
- the residual stream that a LayerNorm (or RMS / group norm) reads stays in float: the adds,
  concatenations and dropouts between one norm and the next. A transformer's class token is a
  small row in a tensor of large ones, so a scale shared over the stream leaves it a handful of
  levels, and the norm then magnifies each one-level rounding difference between runtimes into a
  changed decision (a ViT-Small's files agreed with their graph on 92% of samples). The linears,
  convs and matmuls around the stream stay int8, as ONNX Runtime's own transformer recipes do;
- with ``weight_range="narrow"``, conv and linear weights use [-63, 63], which x86 kernels without
  VNNI sum without saturating (``edgekd.quantize.weight_range``);
- modules named in ``exclude`` stay in float (a layer whose calibration collapses, or an op the
  integer kernels lack).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e.quantizer import (
    QuantizationAnnotation,
    QuantizationSpec,
    SharedQuantizationSpec,
)

from edgekd.quantize.compat import restore_source_functions
from edgekd.quantize.weight_range import NARROW_MAX
from edgekd.utils.quiet import quiet_import

litert_pt2e = quiet_import("litert_torch.quantize.pt2e_quantizer")

ACTIVATIONS = {
    torch.ops.aten.relu.default,
    torch.ops.aten.relu_.default,
    torch.ops.aten.hardtanh.default,
    torch.ops.aten.hardtanh_.default,
}
PADS = {torch.ops.aten.pad.default, torch.ops.aten.constant_pad_nd.default}
NORMS = {
    torch.ops.aten.layer_norm.default,
    torch.ops.aten.native_layer_norm.default,
    torch.ops.aten.rms_norm.default,
    torch.ops.aten.group_norm.default,
}
# Ops that carry the residual stream from one norm to the next without computing a new feature.
STREAM_OPS = {
    torch.ops.aten.add.Tensor,
    torch.ops.aten.add_.Tensor,
    torch.ops.aten.cat.default,
    torch.ops.aten.dropout.default,
    torch.ops.aten.expand.default,
    torch.ops.aten.clone.default,
}
# A stream that begins by concatenating a learned token (a ViT's class token) with embedded patches
# stays float back to the embedding: the TFLite converter gives a concatenation one scale for all its
# inputs, which leaves the small token row a handful of levels again.
RESHAPES = {
    torch.ops.aten.transpose.int,
    torch.ops.aten.permute.default,
    torch.ops.aten.flatten.using_ints,
    torch.ops.aten.view.default,
    torch.ops.aten.reshape.default,
}
EMBEDDINGS = {torch.ops.aten.conv2d.default, torch.ops.aten.linear.default}

WEIGHTED = {
    torch.ops.aten.conv1d.default,
    torch.ops.aten.conv2d.default,
    torch.ops.aten.conv_transpose2d.input,
    torch.ops.aten.linear.default,
}
_ANNOTATION = "quantization_annotation"


class Int8Quantizer(litert_pt2e.PT2EQuantizer):
    """Static INT8 for QAT (``qat=True``) or post-training calibration."""

    def __init__(self, qat: bool, exclude: Sequence[str] = (), weight_range: str = "full") -> None:
        super().__init__()
        self.qat = qat
        self.exclude = list(exclude)
        self.weight_range = weight_range  # "full" or "narrow" (edgekd.quantize.weight_range)
        self.set_global(litert_pt2e.get_symmetric_quantization_config(is_per_channel=True, is_qat=qat))

    def annotate(self, model: GraphModule) -> GraphModule:
        restore_source_functions(model)  # else adds, concatenations and pools stay float (compat.py)
        model = super().annotate(model)
        if self.exclude:
            # The base class matches module names on dynamo's mangled keys, which non-strict export
            # does not produce; exclusion is done here on the module paths instead.
            drop_annotations(model, [n for n in model.graph.nodes if self.is_excluded(n)])
        if self.weight_range == "narrow":
            for node in model.graph.nodes:
                if node.op == "call_function" and node.target in WEIGHTED:
                    narrow_weight_range(node)
        unannotate_sizes(model)
        stream = [n for n in model.graph.nodes if n.op == "call_function" and n.target in NORMS]
        drop_annotations(model, residual_stream([n.args[0] for n in stream]))
        for node in model.graph.nodes:
            if node.op == "call_function" and node.target in ACTIVATIONS and not self.is_excluded(node):
                observe_after_activation(node)
            if node.op == "call_function" and node.target in PADS and not self.is_excluded(node):
                share_through_zero_padding(node)
        if self.exclude:
            unquantize_float_only_outputs(model, self.is_excluded)
        return model

    def is_excluded(self, node: Node) -> bool:
        return any(in_module(path, name) for path in module_paths(node) for name in self.exclude)


def unquantize_float_only_outputs(model: GraphModule, excluded) -> None:
    """A tensor read only by layers kept in float stays float: rounding it to int8 would keep the error the
    exclusion was meant to remove (an outlier channel squeezing the others into a few levels), and buy no
    int8 kernel. The producer still runs in int8 where its own inputs and weights are."""
    for node in model.graph.nodes:
        annotation = node.meta.get(_ANNOTATION)
        if annotation is None or annotation.output_qspec is None or not node.users:
            continue
        if all(excluded(user) for user in node.users) and not any(
            _shares_with(other, {node}) for other in model.graph.nodes if other is not node
        ):
            annotation.output_qspec = None


def _is_tensor(node: object) -> bool:
    value = node.meta.get("val") if isinstance(node, Node) else None
    return value is None or isinstance(value, torch.Tensor)


def unannotate_sizes(model: GraphModule) -> None:
    """Sizes are not activations: a Swin's patch merging multiplies the batch size (a SymInt) by a
    constant, which the pattern for ``mul`` annotates like a tensor product; an observer on an int then
    fails in the first QAT step. Such inputs and outputs stay unobserved."""
    for node in model.graph.nodes:
        annotation = node.meta.get(_ANNOTATION)
        if annotation is None:
            continue
        for source in [s for s in annotation.input_qspec_map if not _is_tensor(s)]:
            del annotation.input_qspec_map[source]
        if not _is_tensor(node):
            annotation.output_qspec = None


def observe_after_activation(activation: Node) -> None:
    """Move the output observer of the activation's producer onto the activation itself."""
    producer = activation.args[0]
    if not isinstance(producer, Node) or len(producer.users) != 1:
        return
    annotation = producer.meta.get(_ANNOTATION)
    if annotation is None or not isinstance(annotation.output_qspec, QuantizationSpec):
        return
    activation.meta[_ANNOTATION] = QuantizationAnnotation(
        input_qspec_map={}, output_qspec=annotation.output_qspec, _annotated=True
    )
    annotation.output_qspec = None


def share_through_zero_padding(pad: Node) -> None:
    """A constant zero pad of a quantized tensor keeps its scale and zero point, as do its readers."""
    source = pad.args[0]
    if not isinstance(source, Node) or not _pads_with_zero(pad):
        return
    produced = source.meta.get(_ANNOTATION)
    if produced is None or produced.output_qspec is None:
        return  # the input is float: the pad stays float too
    shared = SharedQuantizationSpec(source)
    pad.meta[_ANNOTATION] = QuantizationAnnotation({source: shared}, output_qspec=shared, _annotated=True)
    for reader in pad.users:
        annotation = reader.meta.get(_ANNOTATION)
        if annotation is not None and pad in annotation.input_qspec_map:
            annotation.input_qspec_map[pad] = SharedQuantizationSpec(pad)


def _pads_with_zero(pad: Node) -> bool:
    if pad.target == torch.ops.aten.constant_pad_nd.default:
        value = pad.args[2] if len(pad.args) > 2 else pad.kwargs.get("value", 0)
        return not value
    mode = pad.args[2] if len(pad.args) > 2 else pad.kwargs.get("mode", "constant")
    value = pad.args[3] if len(pad.args) > 3 else pad.kwargs.get("value")
    return mode == "constant" and not value


def narrow_weight_range(node: Node) -> None:
    """Quantize the weight of a conv or linear to [-63, 63] (why: ``edgekd.quantize.weight_range``)."""
    annotation = node.meta.get(_ANNOTATION)
    weight = node.args[1] if len(node.args) > 1 else None
    if annotation is None or weight not in annotation.input_qspec_map:
        return
    spec = annotation.input_qspec_map[weight]
    if isinstance(spec, QuantizationSpec):
        annotation.input_qspec_map[weight] = dataclasses.replace(spec, quant_min=-NARROW_MAX, quant_max=NARROW_MAX)


def residual_stream(norm_inputs: list) -> list[Node]:
    """The stream ops that feed the norms' inputs, walking back until a conv, linear or matmul
    (through a token concatenation: up to and including the embedding that produced the patches)."""
    found: list[Node] = []
    pending = [(n, False) for n in norm_inputs if isinstance(n, Node)]
    while pending:
        node, after_cat = pending.pop()
        if node in found or node.op != "call_function":
            continue
        if node.target in STREAM_OPS or (after_cat and node.target in RESHAPES):
            found.append(node)
            below_cat = after_cat or node.target == torch.ops.aten.cat.default
            for arg in node.args:
                parts = arg if isinstance(arg, (list, tuple)) else [arg]
                pending.extend((p, below_cat) for p in parts if isinstance(p, Node))
        elif after_cat and node.target in EMBEDDINGS:
            found.append(node)
    return found


def drop_annotations(model: GraphModule, nodes: list[Node]) -> None:
    """Leave ``nodes`` in float, and any node whose shared scale pointed at one of them."""
    dropped = set()
    pending = list(nodes)
    while pending:
        for node in pending:
            node.meta.pop(_ANNOTATION, None)
            dropped.add(node)
        pending = [n for n in model.graph.nodes if n not in dropped and _shares_with(n, dropped)]


def _shares_with(node: Node, dropped: set[Node]) -> bool:
    annotation = node.meta.get(_ANNOTATION)
    if annotation is None:
        return False
    specs = [*annotation.input_qspec_map.values(), annotation.output_qspec]
    for spec in specs:
        if isinstance(spec, SharedQuantizationSpec):
            source = spec.edge_or_node
            sources = source if isinstance(source, tuple) else (source,)
            if any(s in dropped for s in sources):
                return True
    return False


def module_paths(node: Node) -> list[str]:
    """Dotted names of the modules a graph node was traced inside, outermost first."""
    stack = node.meta.get("nn_module_stack") or {}
    return [path.removeprefix("L['self'].") for path, _type in stack.values()]


def in_module(path: str, name: str) -> bool:
    return path == name or path.startswith(name + ".")
