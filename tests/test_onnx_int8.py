"""INT8 ONNX in the form ONNX Runtime runs fastest: uint8 activations, fused pools, quantized residual adds."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from int8_fixtures import example_batch, ptq
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgekd.errors import ConfigError
from edgekd.export import to_onnx, to_tflite
from edgekd.export.plan import export_plan
from edgekd.formats.onnx.int8 import pool_as_global_average, resolve_activation_type, shift_activations_to_uint8
from edgekd.formats.onnx.runner import OnnxRunner


def _session(model: onnx.ModelProto | str, optimized=None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if optimized:
        options.optimized_model_filepath = str(optimized)
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _zero_point_types(model: onnx.ModelProto) -> dict[str, set[int]]:
    """Element type of each Q/DQ zero point, split into activations (computed input) and weights."""
    inits = {i.name: i for i in model.graph.initializer}
    kinds: dict[str, set[int]] = {"activation": set(), "weight": set()}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            kind = "weight" if node.input[0] in inits else "activation"
            kinds[kind].add(inits[node.input[2]].data_type)
    return kinds


def _optimized_ops(path, tmp_path) -> list[str]:
    _session(str(path), tmp_path / "optimized.onnx")
    return [n.op_type for n in onnx.load(tmp_path / "optimized.onnx").graph.node]


@pytest.mark.slow
def test_uint8_activations_are_exact_and_fuse_into_integer_kernels(small_net_int8, tiny_images, tmp_path):
    example = example_batch(tiny_images)
    signed = to_onnx(small_net_int8, example, tmp_path / "s8.onnx", data=tiny_images, activations="int8")
    unsigned = to_onnx(small_net_int8, example, tmp_path / "u8.onnx", data=tiny_images, activations="uint8")
    assert signed.parity.passed and unsigned.parity.passed
    zero_points = _zero_point_types(onnx.load(unsigned.path))
    assert zero_points == {"activation": {TensorProto.UINT8}, "weight": {TensorProto.INT8}}
    assert _zero_point_types(onnx.load(signed.path))["activation"] == {TensorProto.INT8}
    x = torch.cat([b[0] for b in tiny_images.test]).numpy()
    assert np.array_equal(OnnxRunner(signed.path).run(x), OnnxRunner(unsigned.path).run(x))  # bit for bit
    ops = _optimized_ops(unsigned.path, tmp_path)
    assert "QLinearConv" in ops and "QLinearAdd" in ops and "QLinearGlobalAveragePool" in ops
    assert not {"Conv", "Add", "ReduceMean", "GlobalAveragePool"} & set(ops)  # nothing left in float
    manifest = json.loads((tmp_path / "u8.onnx.json").read_text())
    assert manifest["activations"] == "uint8" and manifest["uint8_activation_tensors"] > 0
    assert json.loads((tmp_path / "s8.onnx.json").read_text())["activations"] == "int8"


def test_auto_activations_follow_the_machine(small_net, tmp_path):
    assert resolve_activation_type("auto", "x86_64") == "uint8"
    assert resolve_activation_type("auto", "AMD64") == "uint8"
    assert resolve_activation_type("auto", "aarch64") == "int8"
    assert resolve_activation_type("int8", "x86_64") == "int8"
    with pytest.raises(ConfigError, match="activations: must be one of auto, uint8, int8, got 'uint16'"):
        to_onnx(small_net, torch.zeros(2, 1, 12, 12), tmp_path / "m.onnx", activations="uint16")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_fp32_export_ignores_the_activation_type(small_net, tiny_images, tmp_path):
    artifact = to_onnx(small_net, example_batch(tiny_images), tmp_path / "m.onnx", activations="uint8")
    assert artifact.precision == "fp32" and artifact.manifest["activations"] is None


def _quantized_pair_graph(reader_op: str, as_output: bool = False) -> onnx.ModelProto:
    """x -> Q(int8) -> [DQ or another reader] -> y."""
    scale = numpy_helper.from_array(np.array(0.05, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(-3, np.int8), "zero")
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]
    if reader_op == "DequantizeLinear":
        nodes.append(helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["q"], ["q2"]))
        nodes.append(helper.make_node("DequantizeLinear", ["q2", "scale", "zero"], ["y"]))
    if as_output:
        outputs.append(helper.make_tensor_value_info("q", TensorProto.INT8, [1, 4]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])], outputs, [scale, zero]
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def test_only_pairs_read_by_dequantizers_alone_are_shifted():
    x = {"x": np.array([[-1.0, 0.0, 0.33, 9.0]], np.float32)}
    plain = _quantized_pair_graph("DequantizeLinear")
    before = _session(plain).run(["y"], x)[0]
    assert shift_activations_to_uint8(plain) == 1
    assert np.array_equal(_session(plain).run(["y"], x)[0], before)
    for kept in (_quantized_pair_graph("Identity"), _quantized_pair_graph("DequantizeLinear", as_output=True)):
        assert shift_activations_to_uint8(kept) == 0
        assert {i.data_type for i in kept.graph.initializer if i.name == "zero"} == {TensorProto.INT8}


def _pool_graph(axes: list[int], keepdims: int) -> onnx.ModelProto:
    scale = numpy_helper.from_array(np.array(0.02, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(5, np.uint8), "zero")
    axes_init = numpy_helper.from_array(np.array(axes, np.int64), "axes")
    out_shape = [2, 3, 1, 1] if keepdims else [2, 3]
    if axes == [1]:
        out_shape = [2, 1, 4, 4] if keepdims else [2, 4, 4]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["d"]),
        helper.make_node("ReduceMean", ["d", "axes"], ["m"], keepdims=keepdims),
        helper.make_node("QuantizeLinear", ["m", "scale", "zero"], ["mq"]),
        helper.make_node("DequantizeLinear", ["mq", "scale", "zero"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [scale, zero, axes_init],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


@pytest.mark.parametrize(("axes", "keepdims", "rewritten"), [([2, 3], 1, 1), ([-1, -2], 0, 1), ([1], 1, 0)])
def test_a_spatial_mean_becomes_a_global_average_pool(axes, keepdims, rewritten):
    x = {"x": np.random.default_rng(0).uniform(0, 4, (2, 3, 4, 4)).astype(np.float32)}
    model = _pool_graph(axes, keepdims)
    before = _session(model).run(["y"], x)[0]
    assert pool_as_global_average(model) == rewritten
    onnx.checker.check_model(model)
    after = _session(model).run(["y"], x)[0]
    assert after.shape == before.shape and np.abs(after - before).max() <= 0.02 + 1e-6  # at most one step
    assert ("GlobalAveragePool" in [n.op_type for n in model.graph.node]) == bool(rewritten)


class ChainedResiduals(nn.Module):
    """Two residual blocks back to back: the second add reads the first add's output directly."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU6())
        self.body1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width), nn.Conv2d(width, width, 1))
        self.body2 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width), nn.Conv2d(width, width, 1))
        self.head = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.body1(x)
        x = x + self.body2(x)
        return self.head(x.mean((-1, -2)))


@pytest.mark.slow
def test_chained_residual_adds_are_quantized_in_both_formats(tiny_images, tmp_path):
    torch.manual_seed(0)
    quantized = ptq(ChainedResiduals().eval(), tiny_images)
    dequantize = torch.ops.quantized_decomposed.dequantize_per_tensor.default
    adds = [n for n in quantized.program.graph.nodes if n.target == torch.ops.aten.add.Tensor]
    assert len(adds) == 2
    for add in adds:  # every input of every add is an int8 tensor brought back to float
        assert all(arg.target == dequantize for arg in add.args), [str(a.target) for a in add.args]
    example = example_batch(tiny_images)
    onnx_file = to_onnx(quantized, example, tmp_path / "r.onnx", data=tiny_images)
    ops = _optimized_ops(onnx_file.path, tmp_path)
    assert ops.count("QLinearAdd") == 2 and "Add" not in ops and "Conv" not in ops
    tflite_file = to_tflite(quantized, example, tmp_path / "r.tflite", data=tiny_images)
    assert onnx_file.parity.passed and tflite_file.parity.passed


def test_recipes_take_the_activation_type():
    assert export_plan({"onnx": {"activations": "uint8"}}) == {"onnx": {"activations": "uint8"}}
    with pytest.raises(ConfigError, match="export.onnx.activations: must be one of auto, uint8, int8, got 'u8'"):
        export_plan({"onnx": {"activations": "u8"}})
