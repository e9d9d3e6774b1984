"""ExecuTorch export (FP32 or INT8): ``torch.export`` at batch 1, lowered with the XNNPACK partitioner.

INT8 comes from the same PT2E graph as the ONNX and TFLite files: its weight quantize ops are folded into
int8 constants (torchao's constant folding, what ``convert_pt2e(fold_quantize=True)`` does) so the XNNPACK
delegate takes the quantized convolutions and matmuls; what it does not take runs on ExecuTorch's portable
CPU kernels, and the manifest lists both. The batch is fixed at 1, as in the TFLite file: XNNPACK plans
a dynamic batch only up to a size the conv tracer guesses, and batch 1 is what an app on a phone runs.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from edgekd.data.sources import DataBundle
from edgekd.formats.executorch.runner import executorch_runtime
from edgekd.formats.executorch.runtime import require
from edgekd.formats.failures import ExportError, conversion_error, module_of_op
from edgekd.formats.format import FileWriter
from edgekd.inputs import ModelInputs, call_arguments, detached, rows
from edgekd.quantize.model import QuantizedModel
from edgekd.utils.modes import inference
from edgekd.utils.quiet import native_stderr_captured, quiet_import

DELEGATE_CALL = "executorch_call_delegate"
IGNORED_NODES = ("getitem", "sym_size")  # bookkeeping of the graph, not compute an app pays for


def executorch_writer(model: nn.Module, example: ModelInputs, data: DataBundle | None = None) -> FileWriter:
    """The ExecuTorch writer for ``model`` (FP32 module or :class:`QuantizedModel`); see
    :func:`edgekd.export.to_executorch`."""
    require("export: executorch")
    example = rows(detached(example), slice(0, 1))
    quantized = isinstance(model, QuantizedModel)

    def write(staged: Path) -> dict:
        program = _captured(model, example)
        exir = quiet_import("executorch.exir")
        partitioner = quiet_import("executorch.backends.xnnpack.partition.xnnpack_partitioner")
        try:
            with native_stderr_captured(replay=False):
                edge = exir.to_edge_transform_and_lower(program, partitioner=[partitioner.XnnpackPartitioner()])
        except Exception as exc:  # noqa: BLE001 - the lowering raises many types; the user gets one line
            raise conversion_error("ExecuTorch", exc, model, example, quantized=quantized) from exc
        graph = edge.exported_program().graph_module  # read before to_executorch() turns ops into out variants
        facts, missing = placement(graph), kernels_missing(graph)
        if missing:
            where = module_of_op(model, example, missing[0].split("::")[-1])
            raise ExportError(
                f"ExecuTorch conversion failed at op '{missing[0]}'" + (f" in module {where}" if where else "")
                + ": XNNPACK does not take it and this ExecuTorch build has no portable kernel for it; replace "
                "that op with a supported one" + (", or keep its module in float with Quantize(exclude=[...])"
                                                   if quantized else "")
            )  # fmt: skip
        try:
            with native_stderr_captured(replay=False):
                lowered = edge.to_executorch()
        except Exception as exc:  # noqa: BLE001
            raise conversion_error("ExecuTorch", exc, model, example, quantized=quantized) from exc
        staged.write_bytes(lowered.buffer)
        return {"delegate": "XNNPACK", "batch": 1, **facts}

    return FileWriter(example, write)


def _captured(model: nn.Module, example: ModelInputs) -> torch.export.ExportedProgram:
    """The graph to lower: an FP32 module as it is, an INT8 one with its weights folded to int8."""
    args, kwargs = call_arguments(example)
    try:
        if isinstance(model, QuantizedModel):
            constant_fold = quiet_import("torchao.quantization.pt2e.constant_fold")
            quantize_pt2e = quiet_import("torchao.quantization.pt2e.quantize_pt2e")
            graph = copy.deepcopy(model.graph_module)
            constant_fold.constant_fold(graph, quantize_pt2e._quant_node_constraint)  # noqa: SLF001 - fold_quantize's own rule
            return torch.export.export(graph, args, kwargs or None)
        with inference(model):
            return torch.export.export(model, args, kwargs or None)
    except Exception as exc:  # noqa: BLE001
        raise conversion_error("ExecuTorch", exc, model, example, quantized=isinstance(model, QuantizedModel)) from exc


def kernels_missing(graph: torch.fx.GraphModule) -> list[str]:
    """Ops left outside the delegate that the runtime has no kernel for (``aten::avg_pool3d``): such a file
    lowers, then fails to load on the device; it is refused here instead, naming the op."""
    registered = {name.split(".")[0] for name in executorch_runtime().operator_registry.operator_names}
    namespaces = {name.split("::")[0] for name in registered}
    missing = []
    for node in graph.graph.nodes:
        if node.op != "call_function" or _op_name(node.target) in (DELEGATE_CALL, *IGNORED_NODES):
            continue
        parts = getattr(node.target, "__name__", "").split(".")
        qualified = f"{parts[0]}::{parts[1]}" if len(parts) == 3 else None
        if qualified and parts[0] in namespaces and qualified not in registered and qualified not in missing:
            missing.append(qualified)
    return missing


def placement(graph: torch.fx.GraphModule) -> dict:
    """Which ops the XNNPACK delegate runs and which stay on the portable CPU kernels, with counts."""
    delegated: Counter = Counter()
    portable: Counter = Counter()
    for node in graph.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node.target)
        if name == DELEGATE_CALL:
            lowered = getattr(graph, node.args[0].target)
            for inner in lowered.original_module.graph.nodes:
                if inner.op == "call_function" and _op_name(inner.target) not in IGNORED_NODES:
                    delegated[_op_name(inner.target)] += 1
        elif name not in IGNORED_NODES:
            portable[name] += 1
    return {
        "delegated_subgraphs": sum(
            1 for n in graph.graph.nodes if n.op == "call_function" and _op_name(n.target) == DELEGATE_CALL
        ),
        "delegated_ops": dict(sorted(delegated.items())),
        "portable_ops": dict(sorted(portable.items())),
    }


def _op_name(target) -> str:
    """``aten.convolution.default`` -> ``convolution`` (an ATen or quantized op, edge dialect or not); a Python
    function or a higher-order op by its own name."""
    parts = getattr(target, "__name__", str(target)).split(".")  # aten.add.Tensor (edge) or add.Tensor (ATen)
    return parts[1] if len(parts) == 3 else parts[0]
