"""The README's result tables are generated from the committed benchmark results, not typed."""

from __future__ import annotations

from benchmarks.update_readme import ROOT, render


def test_readme_result_tables_match_the_committed_results():
    readme = (ROOT / "README.md").read_text()
    assert render(readme) == readme, "README is stale: run python -m benchmarks.update_readme"


def test_result_blocks_hold_numbers_from_the_results():
    rendered = render((ROOT / "README.md").read_text())
    assert "| teacher (mnist-resnet), FP32 |" in rendered and "| KD, teacher cached |" in rendered
    assert "| tflite int8 (edgekd) |" in rendered


def test_studies_run_at_toy_size_through_the_single_entry_point(tmp_path, monkeypatch):
    import json

    from benchmarks import run
    from benchmarks.results_io import RESULTS

    monkeypatch.setenv("EDGEKD_RESULTS", str(tmp_path))
    committed = (
        (RESULTS / "hinton2015_mnist.json").read_bytes() if (RESULTS / "hinton2015_mnist.json").exists() else None
    )
    run.main(["hinton2015_mnist", "--quick"])
    results = json.loads((tmp_path / "hinton2015_mnist.json").read_text())["results"]
    assert results["quick"] and results["epochs"] == 1
    saved = json.loads((tmp_path / "hinton2015_mnist.json").read_text())
    assert saved["command"] == "python -m benchmarks.run hinton2015_mnist --quick"
    assert all(isinstance(results["rows"][k]["errors"], int) for k in ("teacher", "student", "distilled"))
    assert "| 784-800-800 student, labels only |" in (tmp_path / "hinton2015_mnist.md").read_text()
    if committed is not None:  # a quick run never touches the committed results
        assert (RESULTS / "hinton2015_mnist.json").read_bytes() == committed
