"""The PT2E flow: capture, insert observers (QAT fake-quant or PTQ observers), calibrate, convert.

Each step wraps torchao / litert-torch so a failure reaches the user as one line.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.fx import GraphModule
from torchao.quantization.pt2e import (
    disable_observer,
    enable_observer,
    move_exported_model_to_eval,
    move_exported_model_to_train,
)
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e

from edgekd.errors import first_line
from edgekd.inputs import ModelInputs, forward, split_batch, to_device
from edgekd.outputs import output_selection, select_output
from edgekd.quantize.bias import snap_biases_to_int32
from edgekd.quantize.bias_correction import correct_biases
from edgekd.quantize.compat import fix_pattern_export
from edgekd.quantize.embedding import int8_embedding_lookups
from edgekd.quantize.graph import CaptureError, FreeAxes, capture, export_with_free_batch, module_path
from edgekd.quantize.model import QuantizationScheme, QuantizedModel
from edgekd.quantize.quantizer import Int8Quantizer
from edgekd.quantize.weight_range import resolve_weight_range
from edgekd.utils.modules import resolve_module
from edgekd.utils.quiet import torch_deprecations_quieted


class ObservedGraph(nn.Module):
    """A prepared PT2E graph that the Trainer can switch between train and eval like any module.

    ``train()`` runs BatchNorm and dropout in training form and lets observers follow the data;
    ``eval()`` freezes observers, so validating never moves the learned scales. Late in QAT a schedule
    may freeze either for good (``batchnorm_frozen``: BatchNorm and dropout stay in inference form,
    the running statistics fixed; ``observers_frozen``: the scales fixed while the weights still learn).
    """

    batchnorm_frozen = False
    observers_frozen = False

    def __init__(
        self, graph: GraphModule, weight_range: str = "full", int8_embeddings: list[str] | None = None
    ) -> None:
        super().__init__()
        self.graph = graph
        self.weight_range = weight_range  # as resolved when the observers went in
        self.int8_embeddings = list(int8_embeddings or [])  # tables convert writes as int8 rows, after QAT

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.graph(*args, **kwargs)

    def train(self, mode: bool = True) -> ObservedGraph:
        batchnorm_learns = mode and not self.batchnorm_frozen
        (move_exported_model_to_train if batchnorm_learns else move_exported_model_to_eval)(self.graph)
        self.graph.apply(enable_observer if mode and not self.observers_frozen else disable_observer)
        self.training = mode
        return self


def capture_mode(model: nn.Module, qat: bool) -> None:
    """Everything in eval form, BatchNorm in training form for QAT (so it can be folded as it learns).

    A whole model in training form would bake its random ops into the graph: EfficientNet's
    drop-connect (``torch.rand`` behind ``if self.training``) survives ``move_exported_model_to_eval``
    and convert, and the INT8 model and its files then differ on every call."""
    model.eval()
    if qat:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train()


@torch_deprecations_quieted()
def prepare(
    model: nn.Module,
    example: ModelInputs,
    qat: bool,
    exclude: Sequence[str] = (),
    weight_range: str = "auto",
    free: FreeAxes | None = None,
    int8_embeddings: bool = False,
    every_output: bool = False,
) -> ObservedGraph:
    """The student with observers (PTQ) or fake-quant modules (QAT) in place; the input model is untouched.
    ``weight_range``: ``full``, ``narrow`` or ``auto`` (``edgekd.quantize.weight_range``); ``free``: the
    per-sample axes (a text's sequence) left free in the graph besides the batch; ``int8_embeddings``:
    embedding tables not in ``exclude`` become weight-only int8 (``edgekd.quantize.embedding``);
    ``every_output``: the graph returns all the forward's outputs (a detector's), not the logits alone."""
    for name in exclude:
        resolve_module(model, name, "exclude")
    fix_pattern_export()
    work = copy.deepcopy(model)
    if output_selection(work) is None and not every_output:
        select_output(work)  # the graph returns the logits tensor, whatever the forward returns
    tables = []
    if int8_embeddings:
        tables = [n for n, m in work.named_modules() if type(m) is nn.Embedding and n not in exclude]
    capture_mode(work, qat)
    graph = capture(work, example, free).module()
    weight_range = resolve_weight_range(weight_range)
    quantizer = Int8Quantizer(qat=qat, exclude=exclude, weight_range=weight_range)
    try:
        prepared = (prepare_qat_pt2e if qat else prepare_pt2e)(graph, quantizer)
    except Exception as exc:  # noqa: BLE001
        raise CaptureError(f"inserting INT8 observers failed: {first_line(exc)}") from exc
    observed = ObservedGraph(prepared, weight_range, tables)
    observed.train(qat)
    return observed


@torch.no_grad()
def calibrate(observed: ObservedGraph, batches: Iterable, limit: int, device: torch.device) -> int:
    """Run up to ``limit`` batches through the observers with BatchNorm in eval form; returns the count."""
    observed.eval()
    observed.graph.apply(enable_observer)
    seen = 0
    for batch in batches:
        if seen >= limit:
            break
        forward(observed, to_device(split_batch(batch, labels=False)[0], device))
        seen += 1
    observed.graph.apply(disable_observer)
    return seen


@torch_deprecations_quieted()
def convert(
    observed: ObservedGraph,
    example: ModelInputs,
    scheme: QuantizationScheme,
    free: FreeAxes | None = None,
    correct_on: Iterable | None = None,
    correction_batches: int = 32,
) -> QuantizedModel:
    """Replace observers by quantize/dequantize ops with the learned scales; re-export for deployment.
    ``correct_on``: batches on which the mean output shift of each layer's int8 weights is measured and
    moved into its bias (``edgekd.quantize.bias_correction``; for post-training quantization)."""
    observed.eval()
    graph = copy.deepcopy(observed.graph).cpu()  # artifacts are built and checked on the CPU
    try:
        converted = convert_pt2e(graph, fold_quantize=False)
    except Exception as exc:  # noqa: BLE001
        raise CaptureError(f"converting the INT8 graph failed: {first_line(exc)}") from exc
    refuse_random_ops(converted)
    if correct_on is not None:
        corrected = correct_biases(converted, correct_on, correction_batches)
        scheme = dataclasses.replace(scheme, bias_corrected_layers=corrected)
    snap_biases_to_int32(converted)  # the float bias adds of the graph become the files' int32 adds
    if observed.int8_embeddings:  # QAT trained the float tables; the files store int8 rows
        observed.int8_embeddings = int8_embedding_lookups(converted, observed.int8_embeddings)
    program = export_with_free_batch(converted, to_device(example, "cpu"), free)
    return QuantizedModel(program, dataclasses.replace(scheme, weight_range=observed.weight_range))


_RANDOM_OPS = {"rand", "rand_like", "randn", "randn_like", "randint", "bernoulli", "native_dropout", "normal"}


def refuse_random_ops(graph: GraphModule) -> None:
    """An INT8 model must compute the same thing on every call; a random op left in its graph would
    make the PyTorch model and its files disagree by chance. Names the module that draws."""
    for node in graph.graph.nodes:
        name = getattr(node.target, "__name__", str(node.target)).split(".")[0]
        if node.op == "call_function" and name in _RANDOM_OPS:
            where = module_path(node) or "<model>"
            raise CaptureError(
                f"the INT8 graph draws random numbers ({name}) in module '{where}' on every call; "
                "make that op depend on self.training, or keep the module float with Quantize(exclude=[...])"
            )
