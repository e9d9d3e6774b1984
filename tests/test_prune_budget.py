"""Pruning to a budget: the NetAdapt-style search, its record, and budgets it cannot meet."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import edgekd as ek
from edgekd.errors import ConfigError
from edgekd.models.cost import count_macs
from edgekd.search.budget import TIMING_MARGIN, parse_budget
from edgekd.search.latency_table import layer_shapes
from edgekd.search.netadapt import BudgetError


def _convnet(width: int = 32) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 4),
    )  # fmt: skip


def _teacher() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 144, 4))


@pytest.mark.parametrize(("budget", "message"), [
    ({}, "budget: give exactly one of latency_ms, size_kb, macs"),
    ({"latency_ms": 2, "macs": 5}, r"budget: give exactly one of latency_ms, size_kb, macs \(got latency_ms, macs\)"),
    ({"latency_ms": -1}, r"budget.latency_ms: must be a number > 0, got -1"),
    ({"latency_ms": 2, "format": "coreml"}, "budget.format: must be one of tflite, onnx, got 'coreml'"),
    ({"latency_ms": 2, "target": "phone"}, "budget.target: "),
    ({"latency_ms": 2, "traget": "cpu"}, "budget: unknown option 'traget'; did you mean 'target'"),
    ({"latency_ms": 2, "target": "cpu", "estimate": True}, "target 'cpu' names no reference phone"),
    ({"size_kb": 10, "steps": "many"}, "budget.steps: wrong type str, expected int"),
    ({"size_kb": 10, "search": "greedy"}, "budget.search: must be one of netadapt, uniform, got 'greedy'"),
    ({"latency_ms": 2, "margin": 0.5}, r"budget.margin: must be a share of the limit in \[0, 0.5\), got 0.5"),
    ({"latency_ms": 2, "margin": "3%"}, "budget.margin: wrong type str, expected float"),
    ("2 ms", "budget: must be a mapping"),
])  # fmt: skip
def test_bad_budgets_are_one_line_errors(budget, message):
    with pytest.raises(ConfigError, match=message):
        parse_budget(budget)


def test_a_budget_and_a_target_fraction_are_refused_together():
    with pytest.raises(ConfigError, match="budget: give budget or target_macs/target_params, not both"):
        ek.Prune(budget={"macs": 1000}, target_macs=0.5)
    assert parse_budget({"latency_ms": 2, "margin": 0}).describe() == "latency_ms <= 2 on mobile-like (tflite, int8)"


def test_measured_latency_is_searched_under_its_limit_and_deterministic_costs_up_to_it():
    measured = parse_budget({"latency_ms": 2})
    assert measured.aim == pytest.approx(2 * (1 - TIMING_MARGIN))
    assert "(tflite, int8, aiming 3% under)" in measured.describe()
    assert parse_budget({"latency_ms": 2, "margin": 0.1}).aim == pytest.approx(1.8)
    for exact in ({"latency_ms": 2, "estimate": True}, {"macs": 2}, {"size_kb": 2}):
        assert parse_budget(exact).aim == 2.0 and "under" not in parse_budget(exact).describe()
    assert parse_budget({"macs": 2, "margin": 0.05}).describe() == "macs <= 2 (aiming 5% under)"


def test_layer_shapes_are_read_at_their_input_sizes():
    shapes = layer_shapes(_convnet(8), torch.zeros(2, 1, 12, 12))
    assert [s["kind"] for s in shapes] == ["conv2d"] * 3 + ["linear"]
    assert shapes[0]["input"] == [1, 12, 12] and shapes[1]["in"] == 8 and shapes[3]["input"] == [8]


def test_the_latency_table_interpolates_within_a_layer_family_and_measures_outside_it(tmp_path, monkeypatch):
    from edgekd.search.latency_table import LatencyTable, layer_macs
    from edgekd.targets import load_target

    def conv(cin: int, cout: int, kernel: int = 1) -> dict:
        return {"kind": "conv2d", "in": cin, "out": cout, "kernel": [kernel] * 2, "stride": [1, 1], "groups": 1,
                "padding": [kernel // 2] * 2, "dilation": [1, 1], "bias": False, "input": [cin, 8, 8]}  # fmt: skip

    table = LatencyTable(load_target("mobile-like"), "onnx", tmp_path)
    measured: list[dict] = []
    monkeypatch.setattr(table, "_measure", lambda shape: measured.append(shape) or 0.01 + 1e-6 * layer_macs(shape))
    table.latency(conv(64, 64)), table.latency(conv(32, 64))
    assert table.latency(conv(48, 64)) == pytest.approx(0.01 + 1e-6 * layer_macs(conv(48, 64)))
    assert table.latency(conv(40, 56)) == pytest.approx(0.01 + 1e-6 * 40 * 56 * 64)  # by MACs, whatever the split
    assert len(measured) == 2  # shapes between measured members cost no export
    table.latency(conv(4, 64))  # far below the smallest measured member: exported and timed
    table.latency(conv(48, 64, kernel=3))  # another family (3x3): its own measurement
    assert len(measured) == 4 and len(json.loads(table.path.read_text())) == 4  # only measurements are kept


def test_a_macs_budget_is_met_by_cutting_the_groups_that_cost_least_accuracy(tiny_images, tmp_path):
    student = _convnet()
    full = count_macs(student, (1, 12, 12))
    budget = {"macs": 0.5 * full, "recovery_batches": 2}
    result = ek.Pipeline(_teacher(), student, tiny_images, [ek.Prune(budget=budget, epochs=1, round_to=None)],
                         out_dir=tmp_path, quiet=True, device="cpu").run()  # fmt: skip
    assert count_macs(result.model, (1, 12, 12)) <= 0.5 * full
    row = next(r for r in result.report["ledger"] if r["stage"] == "prune")
    searched = row["details"]["budget_search"]
    assert searched["met"] and searched["final"] <= searched["start"] * 0.5 and searched["margin"] >= 0
    costs = [searched["start"]] + [step["measured"] for step in searched["steps"]]
    assert costs == sorted(costs, reverse=True) and len(costs) >= 2  # every step cut something
    assert all(step["group"] in {"0", "3", "6"} for step in searched["steps"])  # the classifier head is kept
    assert "budget macs <= " in row["notes"] and "search steps" in row["notes"]
    page = (tmp_path / "report.md").read_text()  # the search path, step by step, for people
    assert "## Budget search (prune)" in page and f"| {len(searched['steps'])} | " in page
    from edgekd.report.html import to_html

    bare = {"created": "2026-12-06", "edgekd_version": "0", "wall_s": 1.0, "data": None, "results": [],
            "artifacts": [], "targets": [], "machine": {"cpu": "test cpu", "cores": 1}}  # fmt: skip
    html = to_html(bare, result.report["ledger"])  # the run page charts the path against the budget line
    chart = html[html.index('aria-label="budget search (prune)"') :].split("</svg>")[0]
    measured_and_predicted = len(costs) + len(searched["steps"])
    assert chart.count("<circle") == measured_and_predicted and "stroke-dasharray" in chart
    assert f"budget {0.5 * full:.3g}" in chart or f"budget {0.5 * full:,.0f}" in chart


def test_a_size_budget_already_met_prunes_nothing(tiny_images, tmp_path):
    student = _convnet(8)
    result = ek.Pipeline(_teacher(), student, tiny_images, [ek.Prune(budget={"size_kb": 500}, epochs=0)],
                         out_dir=tmp_path, quiet=True, device="cpu").run()  # fmt: skip
    searched = next(r for r in result.report["ledger"] if r["stage"] == "prune")["details"]["budget_search"]
    assert searched["met"] and searched["steps"] == [] and searched["final"] == searched["start"]


def test_a_budget_below_the_smallest_model_names_the_best_reachable(tiny_images, tmp_path):
    with pytest.raises(BudgetError, match=r"budget macs <= 10 cannot be met: the smallest model pruning may cut "
                                          r"\(every group at [0-9]+%\) gives [0-9.e+]+ MACs"):  # fmt: skip
        ek.Pipeline(_teacher(), _convnet(), tiny_images, [ek.Prune(budget={"macs": 10}, epochs=0)],
                    out_dir=tmp_path, quiet=True, device="cpu").run()  # fmt: skip


def test_a_search_that_runs_out_of_steps_says_so_and_leaves_its_path(tiny_images, tmp_path, monkeypatch):
    from edgekd.search import netadapt

    monkeypatch.setattr(netadapt, "SHARES", (0.125,))  # a step cuts at most an eighth of each group
    budget = {"macs": 0.3 * count_macs(_convnet(), (1, 12, 12)), "steps": 1, "recovery_batches": 0}
    stalled = r"not met after 1 steps: the search reached [0-9.e+]+ MACs \(raise budget.steps"
    with pytest.raises(BudgetError, match=stalled):
        ek.Pipeline(_teacher(), _convnet(), tiny_images, [ek.Prune(budget=budget, epochs=0)], out_dir=tmp_path,
                    quiet=True, device="cpu").run()  # fmt: skip
    (kept,) = tmp_path.glob("checkpoints/*/budget_search.json")
    record = json.loads(kept.read_text())
    assert not record["met"] and len(record["steps"]) == 1 and record["final"] > budget["macs"]
    assert record["steps"][0]["share"] is None and record["steps"][0]["group"].count(" + ") == 2  # all three, combined


@pytest.mark.slow
@pytest.mark.parametrize("how", ["netadapt", "uniform"])
def test_an_estimated_latency_budget_is_met_by_the_shipped_file(tiny_images, tmp_path, how):
    from edgekd.bench.estimate import estimates_for
    from edgekd.targets import load_target

    def estimate(model: nn.Module, name: str) -> dict:  # the reference phone's roofline of the FP32 file
        path = ek.export.to_onnx(model, torch.zeros(2, 1, 12, 12), tmp_path / f"{name}.onnx").path
        return estimates_for([path], [load_target("mobile-like")])[0]

    unpruned = estimate(_convnet(), "unpruned")
    budget = {"latency_ms": 0.5 * unpruned["estimate_ms"], "estimate": True, "format": "onnx", "precision": "fp32",
              "search": how, "recovery_batches": 1}  # fmt: skip
    result = ek.Pipeline(_teacher(), _convnet(), tiny_images, [ek.Prune(budget=budget, epochs=0)],
                         out_dir=tmp_path / "run", quiet=True, device="cpu").run()  # fmt: skip
    record = next(r for r in result.report["ledger"] if r["stage"] == "prune")["details"]["budget_search"]
    assert record["met"] and record["search"] == how and record["start"] == pytest.approx(unpruned["estimate_ms"])
    shipped = estimate(result.model, "pruned")
    assert shipped["estimate_ms"] <= budget["latency_ms"] and shipped["estimate_ms"] == pytest.approx(record["final"])
    if how == "uniform":  # one ratio everywhere: the three convolutions keep the same width
        widths = {m.out_channels for m in result.model.modules() if isinstance(m, nn.Conv2d)}
        assert len(widths) == 1 and widths.pop() < 32 and {s["group"] for s in record["steps"]} == {"all"}


@pytest.mark.slow
def test_a_latency_budget_is_judged_on_the_shipped_file_measured_on_the_target(tiny_images, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path / "cache"))
    refusal = r"budget latency_ms <= 1e-06 on mobile-like \(onnx, int8, aiming 3% under\) cannot be met: .* gives"
    with pytest.raises(BudgetError, match=refusal + r" [0-9.e-]+ ms, the unpruned [0-9.e-]+ ms"):
        ek.Pipeline(_teacher(), _convnet(), tiny_images,
                    [ek.Prune(budget={"latency_ms": 1e-6, "format": "onnx"}, epochs=0)],
                    out_dir=tmp_path / "run", quiet=True, device="cpu").run()  # fmt: skip
    (table,) = (tmp_path / "cache" / "latency").glob("onnx-mobile-like-1t-*.json")  # per target, format, machine
    entries = json.loads(table.read_text())
    assert len(entries) >= 5 and all(ms > 0 for ms in entries.values())  # the layer shapes of both models
