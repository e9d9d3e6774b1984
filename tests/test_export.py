"""Export to ONNX and TFLite: runtimes load the files, the parity gate, manifests, I/O variants, failures."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from int8_fixtures import example_batch
from onnx import helper, numpy_helper
from torch import nn

import edgekd as ek
from edgekd.errors import ConfigError
from edgekd.export import ExportError, ParityError, to_onnx, to_tflite
from edgekd.formats.onnx.int8 import fold_weight_quantization
from edgekd.formats.onnx.runner import OnnxRunner
from edgekd.formats.runner import RuntimeLoadError, open_runner
from edgekd.formats.tflite.float_io import float_interface
from edgekd.formats.tflite.runner import LiteRTRunner


def _manifest(path) -> dict:
    return json.loads(path.with_name(path.name + ".json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_fp32_export_passes_parity_and_writes_a_manifest(small_net, tiny_images, tmp_path, fmt):
    writer = to_onnx if fmt == "onnx" else to_tflite
    artifact = writer(small_net, example_batch(tiny_images), tmp_path / f"m.{fmt}", data=tiny_images)
    assert artifact.path.is_file() and artifact.precision == "fp32"
    assert artifact.parity.passed and artifact.parity.relative_error < 1e-4
    assert artifact.test_accuracy == pytest.approx(ek.evaluate(small_net, tiny_images.test), abs=0.01)
    manifest = _manifest(artifact.path)
    assert manifest["input"]["shape"][1:] == [1, 12, 12] and manifest["input"]["layout"] == "NCHW"
    assert manifest["input"]["dtype"] == "float32" and manifest["input"]["quantization"] is None
    assert manifest["labels"] == tiny_images.labels and manifest["normalization"]["mean"] == tiny_images.mean
    assert manifest["size_bytes"] == artifact.path.stat().st_size == artifact.size_bytes
    assert len(manifest["sha256"]) == 64 and manifest["accuracy"]["test_accuracy"] == artifact.test_accuracy
    assert ("opset" in manifest) if fmt == "onnx" else manifest["tflite_schema_version"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


@pytest.mark.slow
def test_int8_onnx_has_int8_weights_that_onnx_runtime_fuses(small_net_int8, tiny_images, tmp_path):
    import onnxruntime as ort

    artifact = to_onnx(small_net_int8, example_batch(tiny_images), tmp_path / "q.onnx", data=tiny_images)
    assert artifact.precision == "int8" and artifact.parity.passed
    assert artifact.parity.top1_agreement >= 0.99 and artifact.parity.max_error_steps <= 4
    model = onnx.load(artifact.path)
    int8 = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) > 1]
    assert len(int8) == 4  # every conv and linear weight stored as int8
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] in {i.name for i in model.graph.initializer}
                   for n in model.graph.node)  # fmt: skip
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(artifact.path), options, providers=["CPUExecutionProvider"])
    fused = {n.op_type for n in onnx.load(tmp_path / "optimized.onnx").graph.node}
    assert "QLinearConv" in fused  # integer kernels, not float convs between Q/DQ
    manifest = _manifest(artifact.path)
    assert manifest["int8_boundaries"]["input"]["scale"] == pytest.approx(small_net_int8.input_quantization.scale)
    # batch dimension stays free for servers
    runner = OnnxRunner(artifact.path)
    assert runner.run(np.zeros((5, 1, 12, 12), np.float32)).shape == (5, 4)


@pytest.mark.slow
def test_int8_tflite_float_and_int8_interfaces(small_net_int8, tiny_images, tmp_path):
    example = example_batch(tiny_images)
    floating = to_tflite(small_net_int8, example, tmp_path / "f.tflite", data=tiny_images)
    integer = to_tflite(small_net_int8, example, tmp_path / "i.tflite", io="int8", data=tiny_images)
    f_run, i_run = LiteRTRunner(floating.path), LiteRTRunner(integer.path)
    assert f_run.input.dtype == "float32" and f_run.output.dtype == "float32"
    assert i_run.input.dtype == "int8" and i_run.output.dtype == "int8"
    assert i_run.input.scale == pytest.approx(small_net_int8.input_quantization.scale)
    x = torch.cat([b[0] for b in tiny_images.test])[:64].numpy()
    assert np.array_equal(f_run.run(x), i_run.run(x))  # same int8 kernels, only the boundary differs
    ops = {d["op_name"] for d in f_run.interpreter._get_ops_details()}
    assert {"QUANTIZE", "DEQUANTIZE"} <= ops
    manifest = _manifest(integer.path)
    assert manifest["input"]["quantization"]["zero_point"] == small_net_int8.input_quantization.zero_point
    assert manifest["io"] == "int8" and floating.parity.passed and integer.parity.passed
    assert integer.test_accuracy == pytest.approx(ek.evaluate(small_net_int8, tiny_images.test), abs=0.02)


@pytest.mark.slow
def test_a_broken_artifact_is_rejected_and_the_previous_one_kept(small_net_int8, tiny_images, tmp_path, monkeypatch):
    example = example_batch(tiny_images)
    good = to_onnx(small_net_int8, example, tmp_path / "q.onnx", data=tiny_images)
    before = good.path.read_bytes()

    import edgekd.formats.onnx.writer as onnx_export

    original = onnx_export.fold_weight_quantization

    def corrupt_scales(proto):
        folded = original(proto)
        for init in proto.graph.initializer:
            if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) == 1 and init.dims[0] == 16:
                values = numpy_helper.to_array(init) * 40.0  # a per-channel weight scale gone wrong
                init.CopyFrom(numpy_helper.from_array(values.astype(np.float32), init.name))
        return folded

    monkeypatch.setattr(onnx_export, "fold_weight_quantization", corrupt_scales)
    # scales 40x too large saturate every int8 activation: the file answers the same for every input, which
    # the gate names before it counts agreement
    expected = (
        r"q\.onnx: parity check failed \((top-1 agreement .*% < 99% on \d+ decisive samples|the artifact "
        r"returns the same output for all \d+ different inputs)"
    )
    with pytest.raises(ParityError, match=expected):
        to_onnx(small_net_int8, example, tmp_path / "q.onnx", data=tiny_images)
    assert (tmp_path / "q.onnx.rejected").is_file()
    assert good.path.read_bytes() == before  # the last good artifact is untouched


@pytest.mark.slow
def test_a_pruned_model_exports_in_fp32_and_after_quantization(small_net, tiny_images, tmp_path):
    import copy

    from int8_fixtures import ptq

    from edgekd.prune import PruneSpec, build_pruner, prune_step

    pruned = copy.deepcopy(small_net)
    example = example_batch(tiny_images)
    prune_step(build_pruner(pruned, example, PruneSpec(ratio=0.5, round_to=None), num_classes=4), pruned, example)
    assert pruned.stem[0].out_channels < 16
    for writer, suffix in ((to_onnx, "onnx"), (to_tflite, "tflite")):
        assert writer(pruned, example, tmp_path / f"p.{suffix}").parity.passed
    quantized = ptq(pruned, tiny_images)
    assert to_tflite(quantized, example, tmp_path / "pq.tflite", data=tiny_images).parity.passed


@pytest.mark.slow
def test_an_excluded_layer_stays_float_in_the_onnx_file(small_net, tiny_images, tmp_path):
    from int8_fixtures import ptq

    quantized = ptq(small_net, tiny_images, exclude=["project"])
    artifact = to_onnx(quantized, example_batch(tiny_images), tmp_path / "x.onnx", data=tiny_images)
    model = onnx.load(artifact.path)
    initializers = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    weight_kinds = []
    for node in (n for n in model.graph.node if n.op_type == "Conv"):
        source = node.input[1]
        weight_kinds.append("float" if source in initializers else producers[source].op_type)
    assert sorted(weight_kinds) == ["DequantizeLinear", "DequantizeLinear", "float"]


@pytest.mark.slow
def test_an_unsupported_op_names_the_op_and_the_module(tiny_images, tmp_path):
    class Digamma(nn.Module):
        def forward(self, x):
            return torch.digamma(x.abs() + 1)

    model = nn.Sequential(nn.Conv2d(1, 4, 3), Digamma(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))
    for writer, fmt in ((to_onnx, "ONNX"), (to_tflite, "TFLite")):
        with pytest.raises(ExportError, match=f"{fmt} conversion failed at op 'digamma' in module '1' \\(Digamma\\)"):
            writer(model.eval(), example_batch(tiny_images), tmp_path / f"m.{fmt.lower()}")
    assert list(tmp_path.iterdir()) == []


def test_bad_requests_are_one_line_errors(small_net, tiny_images, tmp_path):
    example = example_batch(tiny_images)
    with pytest.raises(ConfigError, match="int8 input/output needs a quantized model"):
        to_tflite(small_net, example, tmp_path / "m.tflite", io="int8")
    with pytest.raises(ConfigError, match="io: must be one of float, int8"):
        to_tflite(small_net, example, tmp_path / "m.tflite", io="uint8")
    with pytest.raises(ConfigError, match="needs the '.onnx' suffix"):
        to_onnx(small_net, example, tmp_path / "m.tflite")


def test_runtimes_refuse_missing_empty_and_foreign_files(tmp_path):
    with pytest.raises(RuntimeLoadError, match="no such file"):
        open_runner(tmp_path / "absent.onnx")
    (tmp_path / "empty.tflite").write_bytes(b"")
    with pytest.raises(RuntimeLoadError, match="empty file"):
        open_runner(tmp_path / "empty.tflite")
    (tmp_path / "text.onnx").write_text("hello")
    with pytest.raises(RuntimeLoadError, match="ONNX Runtime cannot load it"):
        open_runner(tmp_path / "text.onnx")
    (tmp_path / "text.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(RuntimeLoadError, match="LiteRT cannot load it"):
        open_runner(tmp_path / "text.tflite")
    with pytest.raises(RuntimeLoadError, match="not a model file edgekd can run"):
        open_runner(tmp_path / "model.pt")


def test_weight_quantize_folding_matches_onnx_semantics():
    weight = np.array([[0.5, -1.26], [2.0, 0.024]], np.float32)
    scale = np.array([0.01, 0.02], np.float32)
    zero = np.zeros(2, np.int8)
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["w", "s", "z"], ["q"], axis=0),
            helper.make_node("Clip", ["q", "lo", "hi"], ["qc"]),
            helper.make_node("DequantizeLinear", ["qc", "s", "z"], ["wd"], axis=0),
            helper.make_node("MatMul", ["x", "wd"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(scale, "s"),
            numpy_helper.from_array(zero, "z"),
            numpy_helper.from_array(np.array(-127, np.int8), "lo"),
            numpy_helper.from_array(np.array(127, np.int8), "hi"),
        ],
    )
    model = helper.make_model(graph)
    assert fold_weight_quantization(model) == 1
    assert [n.op_type for n in model.graph.node] == ["DequantizeLinear", "MatMul"]
    folded = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}["w_int8"]
    # row 0 at scale 0.01: 50, -126; row 1 at 0.02: 100, round-half-even(1.2) = 1; -127 clip not hit
    assert folded.dtype == np.int8 and folded.tolist() == [[50, -126], [100, 1]]


@pytest.mark.slow
def test_float_interface_rewrites_only_the_boundary(small_net_int8, tiny_images, tmp_path):
    integer = to_tflite(small_net_int8, example_batch(tiny_images), tmp_path / "i.tflite", io="int8")
    rewritten = tmp_path / "f.tflite"
    rewritten.write_bytes(float_interface(integer.path.read_bytes()))
    runner = LiteRTRunner(rewritten)
    assert runner.input.dtype == "float32"
    assert len(rewritten.read_bytes()) - len(integer.path.read_bytes()) < 1024


class _FixedLogits(torch.nn.Module):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[x[:, 0].long()]


class _SwapRunner:
    """A runtime stand-in that swaps the best two classes of the given samples."""

    def __init__(self, logits: torch.Tensor, swapped: list[int]) -> None:
        self.out = logits.numpy().copy()
        for i in swapped:
            first, second = np.argsort(self.out[i])[-2:][::-1]
            self.out[i, [first, second]] = self.out[i, [second, first]]

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.out[x[:, 0].astype(int)]


def test_int8_parity_sets_near_ties_aside_but_fails_on_decisive_disagreement():
    from edgekd.export.parity import compare

    step = 0.1
    logits = torch.zeros(100, 10)
    logits[:, 0] = 5.0  # decisive: 50 steps ahead
    logits[:10, 1] = 4.95  # near-ties: half a step apart
    model, samples = _FixedLogits(logits), torch.arange(100.0).unsqueeze(1)
    ties_flipped = compare(model, _SwapRunner(logits, list(range(10))), samples, "int8", output_step=step)
    assert ties_flipped.passed and ties_flipped.near_ties == 10 and ties_flipped.top1_agreement == 1.0
    assert "10 near-ties" in ties_flipped.summary()
    decisive_flipped = compare(model, _SwapRunner(logits, [50, 60]), samples, "int8", output_step=step)
    assert not decisive_flipped.passed and "decisive samples" in decisive_flipped.reason
    assert decisive_flipped.top1_agreement == pytest.approx(88 / 90)


class _NoisyRunner:
    """A runtime stand-in whose every logit is off by up to ``steps`` output steps, as rounding in a deep
    network leaves it."""

    def __init__(self, logits: torch.Tensor, steps: float, step: float) -> None:
        noise = np.random.default_rng(0).uniform(-steps, steps, logits.shape) * step
        self.out = (logits.numpy() + noise).astype(np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.out[x[:, 0].astype(int)]


def test_int8_near_tie_margin_grows_with_the_files_rounding_error_but_is_capped():
    from edgekd.export.parity import MAX_TIE_STEPS, TIE_STEPS, compare

    step = 0.1
    leads = torch.linspace(0.0, 48.0, 400) * step  # runner-up behind the best by 0 to 48 steps
    logits = torch.zeros(400, 10)
    logits[:, 0], logits[:, 1] = 5.0, 5.0 - leads
    model, samples = _FixedLogits(logits), torch.arange(400.0).unsqueeze(1)
    deep_rounding = compare(model, _NoisyRunner(logits, 3.0, step), samples, "int8", output_step=step)
    assert deep_rounding.passed, deep_rounding.reason
    assert TIE_STEPS < deep_rounding.tie_steps <= MAX_TIE_STEPS
    assert deep_rounding.near_ties > int(400 * TIE_STEPS / 48)  # more set aside than the fixed margin would
    broken = compare(model, _NoisyRunner(logits, 30.0, step), samples, "int8", output_step=step)
    assert not broken.passed and broken.tie_steps == MAX_TIE_STEPS
