"""Two compatibility fixes between torch 2.13, torchao 0.18 and litert-torch, kept in one place.

torchao exports its QAT conv-bn patterns (and litert-torch its own) by handing a bare function to
``torch.export.export``, which on torch 2.13 only accepts an ``nn.Module`` ("Expected `mod` to be an
instance of `torch.nn.Module`, got function"). Wrapping the pattern in a tiny module is all it takes.
The fixed helper is installed once, wherever torchao and litert-torch bound the original.

The same helper is memoized: converting one QAT model re-exports the same few dozen patterns about
150 times (0.2 s each, most of a small model's QAT wall time). A pattern's graph depends only on
its code, the constants it closes over and the shapes of its example inputs, which is the cache key;
callers get a copy, so nothing they do to it reaches the cache. And a model without, say, transposed
convolutions never pays for the transposed-conv patterns: torchao's conv-bn fusing and folding are
skipped for each kind of convolution the graph does not call (no such pattern could match there).

Second: litert-torch finds adds, concatenations and pools by the ``source_fn_stack`` metadata that
strict tracing leaves on each node. torch 2.13's non-strict ``torch.export`` leaves none, so those
annotators match nothing and the ops stay float between their neighbours' quantize ops: a residual
add whose input is the previous block's add then runs in float, and ONNX Runtime cannot fuse it.
``restore_source_functions`` puts back the source that each such aten op stands for, so the
library's own annotators quantize them as designed.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import GraphModule, Node

from edgekd.utils.quiet import quiet_import

# Modules that bind the pattern-export helper by name at import time, so each needs the fixed one.
_USERS = (
    "torchao.quantization.pt2e.utils",
    "torchao.quantization.pt2e.qat_utils",
    "litert_torch.quantize.pt2e_quantizer_utils",
)
_HELPER = "_get_aten_graph_module_for_pattern"


class PatternModule(nn.Module):
    """A function as a module, so torch.export accepts it."""

    def __init__(self, function: Callable) -> None:
        super().__init__()
        self.function = function

    def forward(self, *args, **kwargs):
        return self.function(*args, **kwargs)


_CACHE: dict[tuple, object] = {}


class _Uncacheable(Exception):
    pass


def _freeze(value) -> object:
    """A hashable stand-in that determines the traced pattern, or _Uncacheable."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype, value.device.type)
    if isinstance(value, (bool, int, float, str, type(None), torch.dtype)):
        return value
    if isinstance(value, (tuple, list)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if callable(value) and hasattr(value, "__code__"):
        return _function_key(value)
    if callable(value) and getattr(value, "__module__", "").startswith("torch"):
        return ("torch", id(value))  # torch builtins live as long as the process
    raise _Uncacheable


def _function_key(function: Callable) -> tuple:
    cells = tuple(_freeze(cell.cell_contents) for cell in (function.__closure__ or ()))
    return ("function", function.__code__, cells)


def _cache_key(pattern, example_inputs, is_cuda, kwargs) -> tuple | None:
    function = pattern.function if isinstance(pattern, PatternModule) else pattern
    function = getattr(function, "fn", function)  # torchao's own wrapper module keeps it as .fn
    if isinstance(function, nn.Module) or not hasattr(function, "__code__"):
        return None
    try:
        return (_function_key(function), _freeze(tuple(example_inputs)), is_cuda, _freeze(kwargs))
    except _Uncacheable:
        return None


def _fixed(original: Callable) -> Callable:
    def helper(pattern, example_inputs, is_cuda: bool = False, **kwargs):
        key = _cache_key(pattern, example_inputs, is_cuda, kwargs)
        if key is not None and key in _CACHE:
            return copy.deepcopy(_CACHE[key])
        if not isinstance(pattern, nn.Module):
            pattern = PatternModule(pattern)
        graph = original(pattern, example_inputs, is_cuda, **kwargs)
        if key is not None:
            _CACHE[key] = copy.deepcopy(graph)
        return graph

    helper.edgekd_fixed = True  # type: ignore[attr-defined]
    return helper


def fix_pattern_export() -> bool:
    """Install the wrapped helper wherever it is bound; returns whether anything was changed."""
    changed = False
    for name in _USERS:
        module = quiet_import(name)
        current = getattr(module, _HELPER, None)
        if current is None or getattr(current, "edgekd_fixed", False):
            continue
        setattr(module, _HELPER, _fixed(current))
        changed = True
    return _skip_absent_convolutions() or changed


# torchao fuses (prepare) and folds (convert) conv-bn pairs for conv1d, conv2d and both transposed convs in
# turn, exporting a dozen pattern graphs for each; a graph without that kind of convolution cannot match them
_CONV_BN_HELPERS = ("_fuse_conv_bn_qat_helper", "_fold_conv_bn_qat_helper")
_QAT_UTILS = "torchao.quantization.pt2e.qat_utils"


def _skip_absent_convolutions() -> bool:
    module = quiet_import(_QAT_UTILS)
    changed = False
    for name in _CONV_BN_HELPERS:
        current = getattr(module, name, None)
        if current is None or getattr(current, "edgekd_fixed", False):
            continue
        setattr(module, name, _only_when_present(current))
        changed = True
    return changed


def _only_when_present(helper: Callable) -> Callable:
    def run(m: GraphModule, conv_fn: Callable, *args, **kwargs) -> GraphModule:
        if not has_op(m, conv_fn.__name__):
            return m  # no pattern anchored on this convolution can match: nothing to fuse or fold
        return helper(m, conv_fn, *args, **kwargs)

    run.edgekd_fixed = True  # type: ignore[attr-defined]
    return run


def has_op(model: GraphModule, name: str) -> bool:
    """Whether the graph calls the aten op ``name`` (any overload: ``conv2d.default``, ``conv2d.padding``)."""
    return any(
        node.op == "call_function" and getattr(node.target, "__name__", "").split(".")[0] == name
        for node in model.graph.nodes
    )


_aten = torch.ops.aten
# aten op -> the source litert-torch's annotators look for (see its pt2e_quantizer_utils)
_SOURCES: dict = {
    _aten.add.Tensor: operator.add,
    _aten.add_.Tensor: operator.add,
    _aten.cat.default: torch.cat,
    _aten.max_pool2d.default: F.max_pool2d,
    _aten.adaptive_avg_pool2d.default: F.adaptive_avg_pool2d,
}


def restore_source_functions(model: GraphModule) -> int:
    """Tag float adds, concatenations and pools (a spatial mean counts) with their source; returns the count."""
    tagged = 0
    for node in model.graph.nodes:
        if node.op != "call_function" or node.meta.get("source_fn_stack") or not _float_output(node):
            continue
        source = _SOURCES.get(node.target)
        if source is None and node.target == _aten.mean.dim and _spatial_mean(node):
            source = F.adaptive_avg_pool2d
        if source is None:
            continue
        node.meta["source_fn_stack"] = [(node.name, source)]
        tagged += 1
    return tagged


def _float_output(node: Node) -> bool:
    value = node.meta.get("val")
    return isinstance(value, torch.Tensor) and value.dtype.is_floating_point


def _spatial_mean(node: Node) -> bool:
    """A mean over every axis after (batch, channel) of a 4-D tensor: a global average pool."""
    source = node.args[0]
    value = source.meta.get("val") if isinstance(source, Node) else None
    dims = node.args[1] if len(node.args) > 1 else None
    if not isinstance(value, torch.Tensor) or value.dim() != 4 or not isinstance(dims, (list, tuple)):
        return False
    return sorted(int(d) % 4 for d in dims) == [2, 3]
