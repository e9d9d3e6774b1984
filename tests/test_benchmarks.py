"""The result tables of README and the docs are generated from the committed benchmark results, not typed."""

from __future__ import annotations

import pytest

from benchmarks.int8_latency import QUANTIZE_STATIC, float_ops
from benchmarks.run import STUDIES
from benchmarks.update_readme import ROOT, block_homes, pages, render


def test_readme_and_docs_result_tables_match_the_committed_results():
    for page in pages():
        text = page.read_text()
        assert render(text, page) == text, f"{page} is stale: run python -m benchmarks.update_readme"


def test_every_result_block_lives_in_exactly_one_page():
    assert {name: len(homes) for name, homes in block_homes().items() if len(homes) != 1} == {}


def test_result_blocks_hold_numbers_from_the_results():
    rendered = "".join(render(page.read_text(), page) for page in pages())
    assert "| teacher (mnist-resnet), FP32 |" in rendered and "| KD, teacher cached |" in rendered
    assert "| tflite int8 (edgekd) |" in rendered


def test_ablation_rows_show_their_own_seed_means_not_the_shared_file_accuracy():
    import json
    import statistics

    from benchmarks.pipeline_ablation import SETUPS, cells

    results = json.loads((ROOT / "benchmarks" / "results" / "pipeline_ablation_mnist.json").read_text())["results"]
    shown = {row[0]: row[1] for row in cells(results)}
    for key in SETUPS["mnist"].trained_rows[:3]:  # labels only and both KD rows share one FP32 file
        label = "student, labels only" if key == "labels only" else key
        assert shown[label].startswith(f"{100 * statistics.fmean(results['per_seed'][key]):.2f}%")


def _check_hinton(results: dict, table: str) -> None:
    assert results["epochs"] == 1
    assert all(isinstance(results["rows"][k]["errors"], int) for k in ("teacher", "student", "distilled"))
    no_threes, biased = results["rows"]["no_threes"], results["rows"]["no_threes_biased"]
    assert isinstance(no_threes["on_threes"], int) and biased["bias"] >= 0
    assert "| 784-800-800 student, labels only |" in table


def _check_ablation(results: dict, table: str) -> None:
    assert results["seeds"] == 1 and all(len(values) == 1 for values in results["per_seed"].values())
    files = results["files"]
    sizes = [files[name]["size_bytes"] for name in ("teacher FP32", "pruned FP32", "+ QAT, INT8 ONNX")]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 3
    assert all(f["p50_ms"] > 0 and f["peak_memory_bytes"] >= 0 and 0 <= f["accuracy"] <= 1 for f in files.values())
    assert results["params"]["pruned"] < results["params"]["student"] < results["teacher"]["params"]
    for config in QUANTIZE_STATIC:
        assert f"| alternative: teacher INT8 by ORT quantize_static {config} |" in table
    assert "| kd_gain_points |" in table and "| onnx_int8_over_fp32_student |" in table
    assert results["dataset"] == "fashion-mnist" and "| + logit KD |" in table and "| + feature KD |" not in table
    assert "| + QAT: INT8 ExecuTorch |" in table and "| executorch_size_ratio |" in table  # the three runtimes


def _check_int8_latency(results: dict, table: str) -> None:
    quantize_static = [name for name in results["p50_ms"] if name.startswith("quantize_static")]
    assert len(quantize_static) == 4 and results["best_quantize_static"] in quantize_static
    best = results["p50_ms"][results["best_quantize_static"]]
    assert results["ratios"]["onnx_int8_over_best_quantize_static"] == pytest.approx(
        results["p50_ms"]["onnx int8 (edgekd)"] / best
    )
    ops = results["ort_ops"]["onnx int8 (edgekd)"]
    assert ops.get("QLinearConv", 0) > 0 and float_ops(ops) == 0  # integer kernels throughout
    assert float_ops(results["ort_ops"]["onnx int8 (edgekd, int8 act.)"]) > 0  # what uint8 activations fix
    assert "| quantize_static QOperator, uint8 act. |" in table


def _check_kd_methods(results: dict, table: str) -> None:
    from benchmarks.kd_methods import methods

    assert list(results["rows"]) == list(methods(1))  # every family has its row
    for label, row in results["rows"].items():
        assert len(row["per_seed"]) == 1 and 0 <= row["per_seed"][0] <= 1 and row["wall_s"][0] > 0
        assert f"| {label} |" in table
    assert {"resnet", "vit"} == set(results["teachers"]) and "Order, best first:" in table


def _check_distil_text(results: dict, table: str) -> None:
    from benchmarks.distil_text import PARAMS_OF

    assert set(results["files"]) == set(PARAMS_OF)  # every file measured, ORT's own INT8 beside ours
    assert all(0.0 <= f["accuracy"] <= 1.0 and f["p50_ms"] > 0 for f in results["files"].values())
    ledger = results["ledger"]
    assert ledger["trim_vocab"]["params"] < ledger["student"]["params"]  # the embedding table shrank
    assert ledger["prune"]["params"] < ledger["distill"]["params"]  # pruned for real
    assert results["checks"]["onnx_params_ratio"][0] == pytest.approx(
        results["teacher"]["params"] / ledger["quantize"]["params"], rel=1e-2
    )
    assert "| DistilBERT vs BERT-base (published) |" in table and "attention relations on Q/K/V" in table


def _check_distributed_epoch(results: dict, table: str) -> None:
    rows = results["rows"]
    assert [r["processes"] for r in rows] == [1, 2] and rows[0]["steady_speedup"] == 1.0
    for row in rows:  # every run trained its epochs; the speed-up is read from them
        assert len(row["epoch_seconds"][0]) == results["epochs"] and row["steady_epoch_s"] > 0
        assert row["steady_speedup"] == pytest.approx(rows[0]["steady_epoch_s"] / row["steady_epoch_s"], abs=0.01)
    assert [r["device"] for r in rows] == ["cpu", "cpu"] and "no GPU row" in table


def _check_latency_budget(results: dict, table: str) -> None:
    from benchmarks.latency_budget import QUICK_FRACTION

    rows = results["mobilenet"]["rows"]
    assert [(r["fraction"], r["method"]) for r in rows] == [(QUICK_FRACTION, "netadapt")]  # a toy run searches only
    for row in rows:  # each budget either met by a shipped file timed again, or refused in one line
        if "error" in row:
            assert "budget latency_ms" in row["error"] and "\n" not in row["error"]
        else:
            assert row["met"] == (row["shipped_p50_ms"] <= row["limit_ms"]) and row["macs"] > 0
    student = results["student"]
    assert set(student["per_seed"]) == {"0.7-netadapt"}
    for runs in student["per_seed"].values():
        assert len(runs) == 1 and 0 <= runs[0]["int8_test_accuracy"] <= 1 and runs[0]["file_estimate_ms"] > 0
    assert set(results["checks"]) <= {row[0] for row in _bar_rows(table)}


def _bar_rows(table: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in table.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows]


def _check_demo_mnist(results: dict, table: str) -> None:
    """The demo as users run it (``edgekd demo --quick``): the whole job, its files, its summary."""
    stages = ["teacher", "student", "distill", "prune", "quantize", "onnx", "tflite", "executorch"]
    assert [r["stage"] for r in results["ledger"]] == stages  # distill, prune, QAT, the three files
    assert all(row["test_accuracy"] > 0.8 for row in results["ledger"][2:])
    assert {"model.onnx", "model.tflite", "model.tflite.json", "model.pte", "model.pte.json"} <= set(
        results["artifacts"]
    )
    measured = {(name, target) for name, target, status in results["bench"] if status == "ok"}
    files = ("model.onnx", "model.tflite", "model.pte", "teacher.onnx", "teacher.tflite", "teacher.pte")
    assert {(f, t) for f in files for t in ("cpu", "mobile-like")} | {("model.pt2", "cpu")} == measured
    out = results["cli_output"]
    assert "| distill |" in out and "| tflite | artifact |" in out
    assert "mobile-like: teacher teacher.tflite" in out and "mobile-like: teacher teacher.pte" in out
    assert "[edgekd] benchmark page: " in out and "bench/report.html" in out
    assert "| tflite_int8_size_ratio |" in table


def _check_tabular(results: dict, table: str) -> None:
    """Every model judged by the imbalanced task's metrics; the files' figures are the files' own."""
    rows = results["rows"]
    assert {"teacher", "teacher without class weights", "student, labels only", "student, distilled"} <= set(rows)
    for row in rows.values():
        assert 0 <= row["macro_f1"] <= 1 and 0 <= row["pr_auc"] <= 1 and 0 <= row["fraud_recall"] <= 1
    onnx, tflite = rows["INT8 model.onnx (ONNX Runtime)"], rows["INT8 model.tflite (LiteRT)"]
    assert abs(onnx["macro_f1"] - tflite["macro_f1"]) <= 0.02 and onnx["size_bytes"] < rows["teacher"]["size_bytes"]
    assert "| macro-F1 | PR-AUC |" in table.replace("| model ", "")


def _check_detect_digits(results: dict, table: str) -> None:
    """Every row judged by mAP; the INT8 files keep both outputs and so the INT8 model's mAP."""
    rows = results["rows"]
    assert {"teacher (FP32)", "student, labels only", "student, distilled"} <= set(rows)
    assert all(0 <= row["map50_95"] <= row["map50"] <= 1 for row in rows.values())
    onnx, tflite = rows["INT8 model.onnx (ONNX Runtime)"], rows["INT8 model.tflite (LiteRT)"]
    assert abs(onnx["map50"] - tflite["map50"]) <= 0.02 and onnx["size_bytes"] < rows["teacher (FP32)"]["size_bytes"]
    assert len(results["kd_gain"]["per_seed_points"]) == results["seeds"] and "| mAP@0.5 | mAP@0.5:0.95 |" in table


def _check_segment_digits(results: dict, table: str) -> None:
    rows = results["rows"]
    assert all(0 <= row["miou"] <= 1 and 0 <= row["pixel_accuracy"] <= 1 for row in rows.values())
    onnx, tflite = rows["INT8 model.onnx (ONNX Runtime)"], rows["INT8 model.tflite (LiteRT)"]
    assert abs(onnx["miou"] - tflite["miou"]) <= 0.02 and results["kd_gain"]["metric"] == "miou"
    assert "| mIoU | pixel accuracy |" in table


def _check_query_teacher(results: dict, table: str) -> None:
    rows = results["rows"]
    assert list(rows)[0] == "labels only" and len(rows) == 4 and rows["KD from the module (FP32)"]["queries"] is None
    asked, samples = rows["KD from its INT8 ONNX file (ONNX Runtime)"]["queries"], results["samples"]
    assert samples["train"] <= asked <= sum(samples.values())  # each distinct sample once, not once per epoch
    assert results["recording_queries"] <= samples["train"] and "| teacher queries |" in table


CHECKS = {
    "query_teacher": _check_query_teacher,
    "segment_digits": _check_segment_digits,
    "detect_digits": _check_detect_digits,
    "tabular": _check_tabular,
    "demo_mnist": _check_demo_mnist,
    "latency_budget": _check_latency_budget,
    "distributed_epoch": _check_distributed_epoch,
    "distil_text": _check_distil_text,
    "kd_methods": _check_kd_methods,
    "hinton2015_mnist": _check_hinton,
    "pipeline_ablation": _check_ablation,
    "int8_latency": _check_int8_latency,
}


@pytest.mark.slow
@pytest.mark.parametrize("study", sorted(STUDIES))
def test_every_study_runs_at_toy_size_through_the_single_entry_point(study, tmp_path, monkeypatch):
    import json

    from benchmarks import run
    from benchmarks.results_io import RESULTS

    monkeypatch.setenv("EDGEKD_RESULTS", str(tmp_path))
    committed = (RESULTS / f"{study}.json").read_bytes() if (RESULTS / f"{study}.json").exists() else None
    run.main([study, "--quick"])
    saved = json.loads((tmp_path / f"{study}.json").read_text())
    assert saved["command"] == f"python -m benchmarks.run {study} --quick" and saved["quick"] is True
    assert saved["wall_s"] > 0 and saved["machine"]["cores"] >= 1
    table = (tmp_path / f"{study}.md").read_text()
    assert "Quick run at toy size" in table and table.count("|") > 10
    if study in CHECKS:
        CHECKS[study](saved["results"], table)
    if committed is not None:  # a quick run never touches the committed results
        assert (RESULTS / f"{study}.json").read_bytes() == committed


def test_a_quick_run_without_a_results_folder_goes_to_scratch(monkeypatch):
    from benchmarks.results_io import RESULTS, results_dir

    monkeypatch.delenv("EDGEKD_RESULTS", raising=False)
    assert results_dir(quick=False) == RESULTS
    assert results_dir(quick=True) != RESULTS and "edgekd-quick-results" in str(results_dir(quick=True))
