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
