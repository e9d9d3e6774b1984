"""Per-layer INT8 sensitivity: the error each layer's quantization causes alone, to name the layers to keep
in float.

A whole-model INT8 drop says that something broke, not where. Here the model is prepared once with
fake-quant modules and calibrated; then, layer by layer, only that layer's weights and the activation it
reads are quantized and the rest stays float. Each layer is scored by the signal-to-quantization-noise
ratio of the model's output against the float model's (SQNR, dB: higher is safer) and by the task's own
metric on the same validation batches. The lowest-SQNR layers are the ones ``Quantize(exclude=[...])``
should keep in float first.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e import FakeQuantizeBase

from edgekd.inputs import ModelInputs, forward, split_batch, to_device
from edgekd.quantize.graph import module_path
from edgekd.quantize.pt2e import calibrate, prepare

WEIGHTED = {
    torch.ops.aten.conv1d.default,
    torch.ops.aten.conv2d.default,
    torch.ops.aten.conv3d.default,
    torch.ops.aten.linear.default,
}
_WALK = 4  # ops a quantizer may sit behind (a zero pad, a reshape of the folded weight)


@dataclass
class LayerSensitivity:
    """One layer quantized alone: the output's SQNR against float, and the task metric with it."""

    layer: str
    sqnr_db: float
    score: float
    drop_points: float  # the float model's score minus this one, in points (x100; lower-is-better flipped)

    def as_dict(self) -> dict:
        return asdict(self)


def _quantizer_behind(graph: GraphModule, node: Node | None) -> nn.Module | None:
    """The fake-quant module whose output reaches ``node`` through at most a few single-input ops."""
    for _ in range(_WALK):
        if not isinstance(node, Node):
            return None
        if node.op == "call_module":
            module = graph.get_submodule(node.target)
            if isinstance(module, FakeQuantizeBase):
                return module
        inputs = node.all_input_nodes
        if not inputs:
            return None
        node = inputs[0]
    return None


def layer_quantizers(graph: GraphModule) -> dict[str, list[nn.Module]]:
    """Each conv / linear module's fake-quant modules: its weights' and the activation it reads."""
    layers: dict[str, list[nn.Module]] = {}
    for node in graph.graph.nodes:
        if node.op != "call_function" or node.target not in WEIGHTED or len(node.args) < 2:
            continue
        found = [q for q in (_quantizer_behind(graph, node.args[1]), _quantizer_behind(graph, node.args[0])) if q]
        name = module_path(node)
        if found and name:
            layers.setdefault(name, []).extend(q for q in found if all(q is not k for k in layers[name]))
    return layers


def _outputs(model: nn.Module, batches: list) -> tuple[torch.Tensor, torch.Tensor]:
    outputs, targets = [], []
    for x, y in batches:
        outputs.append(forward(model, x).float())
        targets.append(y)
    return torch.cat(outputs), torch.cat(targets)


def sqnr_db(reference: torch.Tensor, approximation: torch.Tensor) -> float:
    """10 log10(signal power / noise power); infinite where the two are equal."""
    noise = (reference - approximation).double().pow(2).sum()
    signal = reference.double().pow(2).sum()
    if noise == 0:
        return math.inf
    return float(10 * torch.log10(signal.clamp_min(1e-30) / noise))


@torch.no_grad()
def layer_sensitivity(
    model: nn.Module,
    data,
    example: ModelInputs,
    calibration_batches: int = 8,
    eval_batches: int = 8,
    weight_range: str = "auto",
    exclude: tuple[str, ...] | list[str] = (),
) -> list[LayerSensitivity]:
    """Each conv / linear layer of ``model`` quantized alone (after calibrating every quantizer on
    ``calibration_batches`` training batches), judged on ``eval_batches`` validation batches; most
    sensitive (lowest SQNR) first. Runs on the CPU; ``model`` is untouched."""
    model, example = copy.deepcopy(model).cpu(), to_device(example, "cpu")
    observed = prepare(model, example, qat=True, exclude=exclude, weight_range=weight_range)
    calibrate(observed, data.train, calibration_batches, torch.device("cpu"))
    observed.eval()
    quantizers = [m for m in observed.graph.modules() if isinstance(m, FakeQuantizeBase)]
    batches = []
    for batch in data.val:
        if len(batches) >= eval_batches:
            break
        x, y = split_batch(batch)[:2]
        batches.append((to_device(x, "cpu"), y))
    task, width = data.task, data.num_classes

    def judged(enabled: list[nn.Module]) -> tuple[torch.Tensor, float]:
        for module in quantizers:
            module.disable_fake_quant()
        for module in enabled:
            module.enable_fake_quant()
        output, targets = _outputs(observed, batches)
        return output, float(task.metrics(output, targets, width)[task.monitor])

    reference, float_score = judged([])
    found = []
    for layer, modules in layer_quantizers(observed.graph).items():
        output, score = judged(modules)
        drop = round(100 * (task.rank(float_score) - task.rank(score)), 3)
        found.append(LayerSensitivity(layer, round(sqnr_db(reference, output), 2), score, drop))
    return sorted(found, key=lambda s: (s.sqnr_db, -s.drop_points))
