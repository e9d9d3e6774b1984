"""The quantized student: a converted PT2E graph that runs in PyTorch and exports to ONNX / TFLite.

It holds the exported program of ``convert_pt2e`` (weights kept with their quantize ops, which is
the form litert-torch turns into integer kernels and ONNX export folds into int8 initializers), the
scheme it was made with, and the input/output quantization an app needs for int8 I/O.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.fx import GraphModule

from edgekd.errors import CheckpointError
from edgekd.quantize.safe_archive import check_archive
from edgekd.utils.fileio import atomic_write
from edgekd.utils.quiet import quiet_import

quiet_import("torchao.quantization.pt2e")  # registers the quantized_decomposed ops used below (quietly)

QUANTIZE_OPS = (
    torch.ops.quantized_decomposed.quantize_per_tensor.default,
    torch.ops.quantized_decomposed.quantize_per_channel.default,
)
DEQUANTIZE_OPS = (
    torch.ops.quantized_decomposed.dequantize_per_tensor.default,
    torch.ops.quantized_decomposed.dequantize_per_channel.default,
)
FORMAT = "edgekd-int8-v1"


@dataclass
class TensorQuantization:
    """int8 value = round(real / scale) + zero_point."""

    scale: float
    zero_point: int
    dtype: str = "int8"


@dataclass
class QuantizationScheme:
    mode: str  # "qat" or "ptq"
    exclude: list[str] = field(default_factory=list)
    weights: str = "int8 symmetric per-channel"
    activations: str = "int8 asymmetric per-tensor"
    weight_range: str = "full"  # or "narrow": [-63, 63] (edgekd.quantize.weight_range)
    bias_corrected_layers: int = 0  # layers whose bias took the mean shift of their int8 weights

    def __post_init__(self) -> None:
        if self.weight_range == "narrow" and "[-63, 63]" not in self.weights:
            self.weights += ", range [-63, 63]"


class QuantizedModel(nn.Module):
    """A converted INT8 graph (reference representation) plus what exporters and apps need to know."""

    file_suffix = ".pt2"

    def __init__(self, program: torch.export.ExportedProgram, scheme: QuantizationScheme) -> None:
        super().__init__()
        self.program = program
        self.scheme = scheme
        self.graph_module: GraphModule = program.module()

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.graph_module(*args, **kwargs)

    def train(self, mode: bool = True) -> QuantizedModel:
        # A converted graph computes the same either way; the flag is kept for callers that read or
        # restore it (and for converters that warn about "training mode").
        for module in self.modules():
            module.training = mode
        return self

    @property
    def input_quantization(self) -> TensorQuantization | None:
        """The quantize op applied to the model input (None if the first layer was excluded)."""
        quantized = self.input_quantizations
        return next(iter(quantized.values())) if len(quantized) == 1 else None

    @property
    def input_quantizations(self) -> dict[str, TensorQuantization]:
        """Input name -> the quantize op applied to it, for each input that enters int8 directly."""
        found = {}
        for node in self.graph_module.graph.nodes:
            if node.op != "placeholder":
                continue
            for user in node.users:
                if user.target in QUANTIZE_OPS[:1]:
                    found[node.name] = TensorQuantization(float(user.args[1]), int(user.args[2]))
                    break
        return found

    @property
    def output_quantization(self) -> TensorQuantization | None:
        """The dequantize op that produces the model output (None if the last layer stayed float)."""
        output = next(n for n in self.graph_module.graph.nodes if n.op == "output")
        producer = output.args[0][0] if isinstance(output.args[0], (tuple, list)) else output.args[0]
        if producer.target in DEQUANTIZE_OPS[:1]:
            return TensorQuantization(float(producer.args[1]), int(producer.args[2]))
        return None

    def boundaries(self) -> dict:
        """Where the graph turns int8 (the input quantize, the output dequantize) and the scheme."""
        inp, out = self.input_quantization, self.output_quantization
        return {
            "input": asdict(inp) if inp else None,
            "inputs": {name: asdict(q) for name, q in self.input_quantizations.items()},
            "output": asdict(out) if out else None,
            "scheme": asdict(self.scheme),
        }

    def weight_count(self) -> int:
        """Elements of every weight and bias tensor (a converted graph registers them as plain attributes)."""
        return sum(t.numel() for t, _quantized in self._weights())

    def int8_size_bytes(self) -> int:
        """Bytes the weights take on device: int8 where quantized, their own dtype elsewhere (biases)."""
        return sum(t.numel() * (1 if quantized else t.element_size()) for t, quantized in self._weights())

    def _weights(self) -> list[tuple[torch.Tensor, bool]]:
        """(tensor, is int8-quantized) for each weight/bias; scales and zero points are not counted."""
        graph = self.graph_module
        qparams, quantized = set(), set()
        for node in graph.graph.nodes:
            if node.target in QUANTIZE_OPS or node.target in DEQUANTIZE_OPS:
                qparams.update(a.target for a in node.args[1:] if isinstance(a, torch.fx.Node) and a.op == "get_attr")
                if node.target in QUANTIZE_OPS and node.args[0].op == "get_attr":
                    quantized.add(node.args[0].target)
        weights = []
        for node in graph.graph.nodes:
            if node.op == "get_attr" and node.users and node.target not in qparams:
                value = _fetch(graph, node.target)
                if isinstance(value, torch.Tensor):
                    weights.append((value, node.target in quantized))
        return weights

    def save(self, path: str | Path) -> Path:
        """One ``.pt2`` file (torch.export's own format: graph as JSON, tensors as data), written atomically."""
        path = Path(path)
        extra = {"edgekd.json": json.dumps({"format": FORMAT, "scheme": asdict(self.scheme)})}

        atomic_write(path, lambda handle: torch.export.save(self.program, handle, extra_files=extra))
        return path

    @classmethod
    def load(cls, path: str | Path) -> QuantizedModel:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such quantized model file")
        check_archive(path)
        extra = {"edgekd.json": ""}
        try:
            program = torch.export.load(path, extra_files=extra)
            meta = json.loads(extra["edgekd.json"] or "{}")
        except Exception as exc:  # noqa: BLE001 - a damaged file fails in many ways
            raise CheckpointError(f"{path}: not a readable quantized model ({type(exc).__name__}: {exc})") from exc
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not an edgekd quantized model (format {meta.get('format')!r})")
        return cls(program, QuantizationScheme(**meta["scheme"]))


def _fetch(module: nn.Module, dotted: str):
    value = module
    for part in dotted.split("."):
        value = getattr(value, part)
    return value
