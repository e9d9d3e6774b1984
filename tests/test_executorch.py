"""ExecuTorch ``.pte`` files: the same student and the same INT8 graph as the ONNX and TFLite files, lowered to
XNNPACK, gated in ExecuTorch's runtime, measured by the bench; without the extra, one line says what to install."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from int8_fixtures import SmallNet, quantize_run
from torch import nn

import edgekd as ek
from edgekd.errors import ConfigError

needs_executorch = pytest.mark.skipif(
    not __import__("edgekd.formats.executorch.runtime", fromlist=["available"]).available(),
    reason="the executorch extra is not installed (pip install 'edgekd[executorch]')",
)


class TwoHeads(nn.Module):
    """A forward with two outputs: both must reach the file."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
        self.classes, self.boxes = nn.Linear(4 * 144, 4), nn.Linear(4 * 144, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.classes(features), self.boxes(features)


@pytest.mark.slow
@needs_executorch
def test_fp32_and_int8_pte_files_pass_their_gates_and_say_what_xnnpack_runs(small_net, small_net_int8, tiny_images,
                                                                            tmp_path):  # fmt: skip
    example = torch.zeros(2, 1, 12, 12)
    fp32 = ek.export.to_executorch(small_net, example, tmp_path / "fp32.pte", data=tiny_images)
    int8 = ek.export.to_executorch(small_net_int8, example, tmp_path / "int8.pte", data=tiny_images)
    for artifact, precision in ((fp32, "fp32"), (int8, "int8")):
        manifest = json.loads(artifact.manifest_path.read_text())
        assert (
            manifest["format"] == "executorch" and manifest["precision"] == precision and manifest["parity"]["passed"]
        )
        assert manifest["delegate"] == "XNNPACK" and manifest["batch"] == 1 and manifest["portable_ops"] == {}
        assert {"convolution", "linear"} <= set(manifest["delegated_ops"]) and artifact.test_accuracy > 0.9
    assert "dequantize_per_channel" in json.loads(int8.manifest_path.read_text())["delegated_ops"]
    runner = __import__("edgekd.formats.runner", fromlist=["open_runner"]).open_runner(int8.path)
    x = ek.data.first_samples(tiny_images.test, 5)[0].numpy()
    assert runner.fixed_batch == 1 and runner.run(x).shape == (5, 4)  # fed row by row
    assert np.abs(runner.run(x) - small_net_int8(torch.from_numpy(x)).numpy()).max() <= 3.5 * 0.05


@pytest.mark.slow
@needs_executorch
def test_every_output_reaches_the_pte_and_an_op_outside_core_aten_is_one_line(tmp_path):
    model = TwoHeads().eval()
    artifact = ek.export.to_executorch(model, torch.randn(2, 1, 12, 12), tmp_path / "two.pte")
    assert [o["name"] for o in artifact.manifest["outputs"]] == ["output_0", "output_1"]

    class Inverts(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.inv(x)

    with pytest.raises(ek.export.ExportError, match=r"ExecuTorch conversion failed at op '.*inv.*'"):
        ek.export.to_executorch(Inverts(), torch.randn(2, 3, 3), tmp_path / "inv.pte")
    pools = nn.Sequential(nn.AvgPool3d(2))  # lowers, but no kernel on the device: refused before it ships
    refusal = r"at op 'aten::avg_pool3d' in module '0' \(AvgPool3d\): XNNPACK does not take it and this ExecuTorch"
    with pytest.raises(ek.export.ExportError, match=refusal):
        ek.export.to_executorch(pools, torch.randn(2, 1, 4, 4, 4), tmp_path / "pool.pte")
    assert not (tmp_path / "inv.pte").exists() and not (tmp_path / "pool.pte").exists()


@pytest.mark.slow
@needs_executorch
def test_a_pipeline_writes_three_int8_files_and_measures_them_in_one_report(small_net, tiny_images, tmp_path):
    target = ek.bench.load_target("mobile-like")
    target.warmup_runs, target.warmup_s, target.runs, target.min_s = 1, 0.0, 5, 0.0
    stage = ek.Quantize(epochs=1, lr=1e-3)
    result = quantize_run(small_net, tiny_images, tmp_path / "run", stage, export=["onnx", "tflite", "executorch"],
                          targets=[target])  # fmt: skip
    rows = {row["stage"]: row for row in result.report["ledger"]}
    accuracies = [rows[fmt]["test_accuracy"] for fmt in ("onnx", "tflite", "executorch")]
    assert max(accuracies) - min(accuracies) <= 0.02 and min(accuracies) > 0.9
    bench = {r["artifact"]: r for r in result.report["bench"]["results"]}
    assert bench["model.pte"]["status"] == "ok" and bench["model.pte"]["runtime"] == "executorch"
    assert bench["model.pte"]["accuracy"]["top1"] == pytest.approx(rows["executorch"]["test_accuracy"])
    assert "model.pte" in (tmp_path / "run" / "bench" / "report.md").read_text()


def test_without_the_extra_the_format_is_one_line_that_says_what_to_install(tiny_images, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "executorch" else real(name, *a))
    with pytest.raises(ConfigError, match=r"export: executorch files need the executorch package: pip install "
                                          r"'edgekd\[executorch\]'"):  # fmt: skip
        ek.Pipeline(SmallNet(), SmallNet(), tiny_images, [], export=["executorch"], out_dir=tmp_path / "run")
    from edgekd.formats.runner import RuntimeLoadError, open_runner

    (tmp_path / "m.pte").write_bytes(b"\0" * 64)
    with pytest.raises(RuntimeLoadError, match=r"ExecuTorch is not installed: pip install 'edgekd\[executorch\]'"):
        open_runner(tmp_path / "m.pte")
    assert not (tmp_path / "run").exists()


@needs_executorch
def test_a_file_that_is_not_a_program_is_one_line(tmp_path):
    from edgekd.formats.runner import RuntimeLoadError, open_runner

    (tmp_path / "m.pte").write_bytes(b"not a program at all" * 8)
    with pytest.raises(RuntimeLoadError, match=r"m.pte: ExecuTorch cannot load it"):
        open_runner(tmp_path / "m.pte")
