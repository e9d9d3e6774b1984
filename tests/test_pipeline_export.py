"""The Pipeline's export step: artifacts written, gated, and measured in their runtimes in the ledger."""

from __future__ import annotations

import json

import pytest
from int8_fixtures import SmallNet, quantize_run

import edgekd as ek
from edgekd.errors import ConfigError


@pytest.mark.slow
def test_pipeline_exports_int8_artifacts_with_rows_measured_on_the_files(small_net, tiny_images, tmp_path):
    stage = ek.Quantize(epochs=0, calibration_batches=4)
    export = {"onnx": None, "tflite": {"io": "int8"}}
    result = quantize_run(small_net, tiny_images, tmp_path / "run", stage, export=export)
    run = tmp_path / "run"
    assert result.artifacts == {"onnx": run / "artifacts" / "model.onnx", "tflite": run / "artifacts" / "model.tflite"}
    report = json.loads((run / "report.json").read_text())
    assert report["status"] == "completed" and report["artifacts"]["tflite"] == "artifacts/model.tflite"
    quantize, onnx_row, tflite_row = report["ledger"][-3:]
    assert quantize["details"]["mode"] == "ptq"
    for row, fmt in ((onnx_row, "onnx"), (tflite_row, "tflite")):
        assert row["kind"] == "artifact" and row["stage"] == fmt
        assert row["details"]["precision"] == "int8" and row["details"]["parity"]["passed"]
        assert row["size_bytes"] == (run / row["details"]["path"]).stat().st_size
        assert abs(row["test_accuracy"] - quantize["test_accuracy"]) <= 0.02  # measured on the file itself
        manifest = json.loads((run / row["details"]["manifest"]).read_text())
        assert manifest["accuracy"]["test_accuracy"] == row["test_accuracy"]
    assert json.loads((run / "artifacts" / "model.tflite.json").read_text())["input"]["dtype"] == "int8"
    assert "| onnx | artifact |" in (run / "report.md").read_text()


@pytest.mark.slow
def test_pipeline_exports_fp32_when_there_is_no_quantize_stage(small_net, tiny_images, tmp_path):
    result = ek.Pipeline(
        teacher=small_net,
        student=SmallNet(),
        data=tiny_images,
        stages=[ek.Distill(epochs=1)],
        export=["onnx"],
        out_dir=tmp_path / "run",
        quiet=True,
    ).run()
    row = result.report["ledger"][-1]
    assert row["details"]["precision"] == "fp32" and row["test_accuracy"] == pytest.approx(
        result.report["ledger"][-2]["test_accuracy"], abs=0.01
    )


def test_export_and_targets_are_checked_before_training(small_net, tiny_images, tmp_path):
    with pytest.raises(ConfigError, match="unknown export format 'tflight'; did you mean 'tflite'"):
        ek.Pipeline(small_net, SmallNet(), tiny_images, [], export=["tflight"], out_dir=tmp_path)
    with pytest.raises(ConfigError, match="targets: benchmarking measures exported files; add export"):
        ek.Pipeline(small_net, SmallNet(), tiny_images, [], targets=["cpu"], out_dir=tmp_path)
    with pytest.raises(ConfigError, match="targets: unknown target 'mobile'; did you mean 'mobile-like'"):
        ek.Pipeline(small_net, SmallNet(), tiny_images, [], export=["onnx"], targets=["mobile"], out_dir=tmp_path)


@pytest.mark.slow
def test_pipeline_benchmarks_its_artifacts_and_the_pytorch_reference(small_net, tiny_images, tmp_path):
    from edgekd import bench

    target = bench.load_target("cpu")
    target.warmup_runs, target.warmup_s, target.runs, target.min_s, target.batch_sizes = 2, 0.0, 5, 0.0, [1]
    stage = ek.Quantize(epochs=0, calibration_batches=4)
    result = quantize_run(small_net, tiny_images, tmp_path / "run", stage, export=["onnx", "tflite"], targets=[target])
    rows = result.report["bench"]["results"]
    assert {(r["artifact"], r["status"]) for r in rows} == {
        ("model.onnx", "ok"), ("model.tflite", "ok"), ("model.pt2", "ok"),
    }  # fmt: skip
    assert all(r["accuracy"]["top1"] > 0.8 for r in rows)
    for name in ("report.json", "report.md", "report.html"):
        assert (tmp_path / "run" / "bench" / name).is_file()
    page = (tmp_path / "run" / "bench" / "report.html").read_text()
    assert '<table class="sortable" id="ledger">' in page and "came out" in page  # the run's story beside the bench
    assert "## Benchmark" in (tmp_path / "run" / "report.md").read_text()
    for name in ("report.md", "bench/report.html", "bench/report.md"):
        (tmp_path / "run" / name).unlink()
    from edgekd.cli.main import main

    assert main(["report", str(tmp_path / "run")]) == 0  # written again from report.json, nothing measured
    assert (tmp_path / "run" / "bench" / "report.html").read_text() == page
    assert "## Benchmark" in (tmp_path / "run" / "report.md").read_text()
    assert main(["report", str(tmp_path / "run" / "checkpoints")]) == 2
