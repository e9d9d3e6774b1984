"""INT8 quantization on PT2E: the torchao fix, the scheme, PTQ and QAT, exclude, saving and loading."""

from __future__ import annotations

import functools

import onnx
import pytest
import torch
import torchao.quantization.pt2e.qat_utils as qat_utils
from int8_fixtures import SmallNet, example_batch, ptq, quantize_run
from torch import nn

import edgekd as ek
from edgekd.errors import CheckpointError, ConfigError
from edgekd.models import TransformerBlock
from edgekd.models.files import save_model
from edgekd.quantize import QuantizedModel
from edgekd.quantize.compat import fix_pattern_export
from edgekd.quantize.model import DEQUANTIZE_OPS, QUANTIZE_OPS
from edgekd.quantize.weight_range import resolve_weight_range

HARDTANH = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default)


def _agreement(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x).argmax(1) == b(x).argmax(1)).float().mean())


def test_pattern_export_fix_accepts_bare_functions_and_returns_private_copies():
    fix_pattern_export()
    helper = qat_utils._get_aten_graph_module_for_pattern

    def pattern(x, w):
        return torch.nn.functional.conv2d(x, w).relu()

    example = (torch.randn(1, 1, 3, 3), torch.randn(1, 1, 1, 1))
    first, second = helper(pattern, example), helper(pattern, example)
    assert isinstance(first, torch.fx.GraphModule)
    assert first is not second  # memoized, but a caller editing its graph cannot corrupt the cache
    assert [n.target for n in first.graph.nodes] == [n.target for n in second.graph.nodes]
    assert any("conv" in str(n.target) for n in first.graph.nodes)


def test_ptq_model_is_int8_and_agrees_with_float(small_net, small_net_int8, tiny_images):
    q = small_net_int8
    assert isinstance(q, QuantizedModel)
    x = torch.cat([b[0] for b in tiny_images.test])
    assert _agreement(small_net, q, x) >= 0.95
    graph = q.graph_module.graph
    assert sum(n.target in QUANTIZE_OPS[1:] for n in graph.nodes) == 4  # every conv and the linear, per channel
    assert q.input_quantization is not None and q.output_quantization is not None
    assert q.input_quantization.dtype == "int8" and q.output_quantization.scale > 0
    # int8 weights: about a quarter of the FP32 bytes (biases from folded BatchNorm stay 32-bit)
    fp32 = sum(p.numel() * 4 for p in small_net.parameters())
    assert q.int8_size_bytes() < 0.45 * fp32
    out = q(torch.zeros(1, 1, 12, 12))
    assert out.shape == (1, 4)  # exported with a free batch size, so batch 1 works too


def test_activation_observer_sits_after_relu6(small_net_int8):
    """conv -> relu6 -> quantize: the scale covers [0, 6], as TFLite fuses it, and no int8 level is wasted."""
    graph = small_net_int8.graph_module.graph
    clamp = next(n for n in graph.nodes if n.target in HARDTANH)
    conv = clamp.args[0]
    assert "conv" in str(conv.target)  # fed straight by the conv, no quantize/dequantize between
    (quantize,) = clamp.users
    assert quantize.target in QUANTIZE_OPS
    assert int(quantize.args[2]) == -128  # zero point at the bottom: nothing below 0 is representable


@pytest.mark.slow
def test_exclude_keeps_a_layer_float(small_net, tiny_images):
    q = ptq(small_net, tiny_images, exclude=["project"])
    graph = q.graph_module.graph
    convs = [n for n in graph.nodes if n.target == torch.ops.aten.conv2d.default]
    weight_sources = [c.args[1].target for c in convs]
    assert sum(t in DEQUANTIZE_OPS for t in weight_sources) == 2  # stem and depthwise quantized
    assert sum(t not in DEQUANTIZE_OPS for t in weight_sources) == 1  # the excluded 1x1 stays float
    assert q.scheme.exclude == ["project"]


def test_exclude_names_an_unknown_module_before_any_work(small_net, tiny_images):
    from edgekd.quantize import prepare

    with pytest.raises(ConfigError, match="'projet' does not exist; nearest valid names: project"):
        prepare(small_net, example_batch(tiny_images), qat=False, exclude=["projet"])


@pytest.mark.slow
def test_quantize_stage_trains_with_the_teacher_and_saves_a_pt2(small_net, tiny_images, tmp_path):
    stage = ek.Quantize(epochs=1, lr=1e-3, calibration_batches=4)
    result = quantize_run(small_net, tiny_images, tmp_path / "run", stage)
    assert isinstance(result.model, QuantizedModel)
    row = result.report["ledger"][-1]
    assert row["stage"] == "quantize" and row["details"]["mode"] == "qat"
    assert row["details"]["val_accuracy_ptq"] is not None and row["details"]["val_accuracy_qat"] is not None
    assert row["size_bytes"] < result.report["ledger"][1]["size_bytes"] * 0.45
    assert row["test_accuracy"] > 0.8
    saved = tmp_path / "run" / "checkpoints" / "01-quantize" / "model.pt2"
    assert saved.is_file() and (tmp_path / "run" / "student.pt2").is_file()
    x = example_batch(tiny_images)
    with torch.no_grad():
        assert torch.equal(QuantizedModel.load(saved)(x), result.model(x))


def test_quantize_rejects_feature_hints_and_bad_settings(small_net, tiny_images, tmp_path):
    with pytest.raises(ConfigError, match="calibration_batches: must be >= 1"):
        ek.Quantize(calibration_batches=0)
    pipe = ek.Pipeline(
        teacher=small_net,
        student=SmallNet(),
        data=tiny_images,
        stages=[ek.Quantize(features={"stem": "stem"})],
        out_dir=tmp_path / "run",
        quiet=True,
    )
    with pytest.raises(ConfigError, match="stages\\[0\\].quantize: features: feature hints are not available"):
        pipe.run()
    assert not (tmp_path / "run" / "report.json").exists()


def test_a_model_with_a_fixed_batch_size_is_named(tiny_images):
    from edgekd.quantize import prepare
    from edgekd.quantize.graph import CaptureError

    class FixedBatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(144, 4)

        def forward(self, x):
            return self.fc(x.reshape(2, 144))

    with pytest.raises(CaptureError, match="cannot capture FixedBatch with a variable batch size"):
        prepare(FixedBatch(), example_batch(tiny_images), qat=False)


def test_loading_a_file_that_is_not_a_quantized_model_is_a_clear_error(small_net, tmp_path):
    bad = tmp_path / "model.pt2"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match="not a torch.export archive"):
        QuantizedModel.load(bad)
    with pytest.raises(CheckpointError, match="no such quantized model file"):
        QuantizedModel.load(tmp_path / "missing.pt2")


def test_save_model_writes_a_quantized_model_in_its_own_format(small_net_int8, tmp_path):
    path = save_model(small_net_int8, tmp_path / "model.pt")
    assert path.suffix == ".pt2" and path.is_file()
    loaded = ek.modelfile.load_model(nn.Identity(), path)
    x = torch.randn(3, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(loaded(x), small_net_int8(x))


def test_a_pt2_archive_that_needs_unpickling_is_refused(small_net_int8, tmp_path):
    import zipfile

    from edgekd.quantize.safe_archive import check_archive

    good = small_net_int8.save(tmp_path / "good.pt2")
    check_archive(good)  # what edgekd writes passes
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(bad, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith("_weights_config.json"):
                data = data.replace(b'"use_pickle": false', b'"use_pickle": true', 1)
            target.writestr(item, data)
    with pytest.raises(CheckpointError, match="needs unpickling; refusing to load it"):
        QuantizedModel.load(bad)


def test_int8_biases_lie_on_the_int32_grid_the_runtimes_add_them_on(small_net_int8):
    from edgekd.quantize.bias import accumulator_step, graph_attribute

    graph = small_net_int8.graph_module
    checked = 0
    for node in graph.graph.nodes:
        step = accumulator_step(graph, node)
        if step is None:
            continue
        bias = graph_attribute(graph, node.args[2].target).double().reshape(-1)
        levels = bias / step
        assert torch.allclose(levels, levels.round(), atol=1e-3), node.name
        checked += 1
    assert checked >= 3  # the folded convs (BatchNorm gives them a bias) and the head


class DropConnect(nn.Module):
    """EfficientNet's stochastic depth: a random per-sample mask, only while training."""

    def __init__(self, always: bool = False) -> None:
        super().__init__()
        self.always = always
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        if self.training or self.always:
            h = h * (torch.rand(h.shape[0], 1, 1, 1, device=h.device) > 0.2).to(h.dtype) / 0.8
        return self.head(h.mean((-1, -2)))


@pytest.mark.slow
def test_qat_never_bakes_training_only_randomness_into_the_int8_graph(tiny_images):
    from edgekd.quantize import QuantizationScheme, calibrate, convert, prepare

    example = ek.data.example_inputs(tiny_images.val)
    observed = prepare(DropConnect().train(), example, qat=True)
    calibrate(observed, tiny_images.train, 2, torch.device("cpu"))
    quantized = convert(observed, example, QuantizationScheme("qat"))
    x = ek.data.example_inputs(tiny_images.test, 8)
    assert torch.equal(quantized(x), quantized(x))  # the same answer on every call
    assert not [n for n in quantized.program.graph.nodes if "rand" in str(n.target)]


@pytest.mark.slow
def test_an_op_that_always_draws_random_numbers_is_named(tiny_images):
    from edgekd.quantize import QuantizationScheme, calibrate, convert, prepare
    from edgekd.quantize.graph import CaptureError

    example = ek.data.example_inputs(tiny_images.val)
    observed = prepare(DropConnect(always=True), example, qat=False)
    calibrate(observed, tiny_images.train, 2, torch.device("cpu"))
    with pytest.raises(CaptureError, match=r"draws random numbers \(rand\) in module '<model>'"):
        convert(observed, example, QuantizationScheme("ptq"))


class ClassTokenViT(nn.Module):
    """A class token concatenated to 3x3 patch embeddings, one pre-norm block, read from the token."""

    def __init__(self, dim: int = 16, classes: int = 4) -> None:
        super().__init__()
        self.embed = nn.Conv2d(1, dim, 3, stride=3)
        self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, 17, dim))
        self.block = TransformerBlock(dim, num_heads=2)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), patches], 1) + self.pos
        return self.head(self.norm(self.block(tokens))[:, 0])


@pytest.mark.slow
def test_the_residual_stream_a_layernorm_reads_stays_float(tiny_images):
    """The class token is a small row among large ones: a scale shared over the stream would leave it
    a few int8 levels, and LayerNorm magnifies every one-level difference between runtimes."""
    torch.manual_seed(0)
    model = ClassTokenViT().eval()
    graph = ptq(model, tiny_images).graph_module.graph
    norms = [n for n in graph.nodes if n.target == torch.ops.aten.layer_norm.default]
    assert len(norms) == 3
    for norm in norms:
        assert norm.args[0].target not in DEQUANTIZE_OPS  # an add of the stream, computed in float
    (cat,) = [n for n in graph.nodes if n.target == torch.ops.aten.cat.default]
    assert not any(arg.target in DEQUANTIZE_OPS for arg in cat.args[0])  # the token keeps its precision
    linears = [n for n in graph.nodes if n.target == torch.ops.aten.linear.default]
    assert len(linears) == 5 and all(n.args[0].target in DEQUANTIZE_OPS for n in linears)  # still int8


def _int8_weight_ranges(quantized: QuantizedModel) -> list[tuple[int, int, int]]:
    """(quant_min, quant_max, largest |int value|) of each quantized weight of the graph."""
    graph = quantized.graph_module
    out = []
    for node in graph.graph.nodes:
        if node.target in QUANTIZE_OPS[1:] and node.args[0].op == "get_attr":
            weight, scale, zero, axis, low, high, dtype = (
                functools.reduce(getattr, a.target.split("."), graph) if isinstance(a, torch.fx.Node) else a
                for a in node.args
            )
            values = node.target(weight, scale, zero, axis, low, high, dtype)
            out.append((low, high, int(values.abs().max())))
    return out


@pytest.mark.slow
def test_narrow_weights_stay_in_the_range_x86_kernels_sum_without_saturating(small_net, tiny_images, tmp_path):
    narrow = ptq(small_net, tiny_images, weight_range="narrow")
    full = ptq(small_net, tiny_images, weight_range="full")
    assert narrow.scheme.weight_range == "narrow" and "[-63, 63]" in narrow.scheme.weights
    assert full.scheme.weight_range == "full"
    assert {r[:2] for r in _int8_weight_ranges(narrow)} == {(-63, 63)}
    assert max(r[2] for r in _int8_weight_ranges(narrow)) == 63  # the range is used, not just declared
    assert max(r[2] for r in _int8_weight_ranges(full)) == 127
    artifact = ek.export.to_onnx(narrow, example_batch(tiny_images), tmp_path / "n.onnx", data=tiny_images)
    weights = [
        onnx.numpy_helper.to_array(t) for t in onnx.load(artifact.path).graph.initializer if t.data_type == 3 and t.dims
    ]  # int8 tensors with a shape: the folded weights
    assert weights and max(int(abs(w.astype(int)).max()) for w in weights) == 63
    assert artifact.manifest["int8_boundaries"]["scheme"]["weight_range"] == "narrow"


def test_auto_weight_range_narrows_only_on_x86_without_vnni():
    assert resolve_weight_range("auto", "x86_64", {"avx2", "fma"}) == "narrow"
    assert resolve_weight_range("auto", "x86_64", {"avx2", "avx512f", "avx512_vnni"}) == "full"
    assert resolve_weight_range("auto", "AMD64", {"avx2", "avx_vnni"}) == "full"
    assert resolve_weight_range("auto", "aarch64", set()) == "full"
    assert resolve_weight_range("full", "x86_64", {"avx2"}) == "full"
    with pytest.raises(ConfigError, match="weight_range: must be one of auto, full, narrow, got '7bit'"):
        ek.Quantize(weight_range="7bit")


def test_conv_bn_patterns_are_built_only_for_the_convolutions_a_graph_calls():
    from torch import nn

    from edgekd.quantize.compat import _only_when_present, has_op

    graph = torch.export.export(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).eval(),
                                (torch.zeros(1, 1, 5, 5),)).module()  # fmt: skip
    assert has_op(graph, "conv2d") and not has_op(graph, "conv_transpose2d") and not has_op(graph, "conv1d")
    calls = []
    helper = _only_when_present(lambda m, conv_fn, *rest: calls.append(conv_fn.__name__) or m)
    for conv_fn in (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv_transpose2d):
        assert helper(graph, conv_fn, (), False) is graph
    assert calls == ["conv2d"]  # the only kind of convolution the graph has
