"""The benchmark harness: runners, statistics, targets, subprocess isolation, reports, bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from int8_fixtures import example_batch

import edgekd as ek
from edgekd import bench
from edgekd import report as report_files
from edgekd.bench.stats import summarize
from edgekd.cli.main import main
from edgekd.errors import ConfigError
from edgekd.formats.runner import open_runner
from edgekd.report.document import to_markdown
from edgekd.report.rows import pareto_front
from edgekd.targets import Target, parse_target

FAST = {"warmup_runs": 2, "warmup_s": 0.0, "runs": 5, "min_s": 0.0}


def _fast(name: str, **overrides) -> Target:
    target = bench.load_target(name)
    for key, value in {**FAST, **overrides}.items():
        setattr(target, key, value)
    return target


@pytest.fixture(scope="module")
def files(small_net, small_net_int8, tiny_images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("artifacts")
    example = example_batch(tiny_images)
    onnx_file = ek.export.to_onnx(small_net, example, folder / "fp32.onnx").path
    tflite_file = ek.export.to_tflite(small_net_int8, example, folder / "int8.tflite").path
    program = torch.export.export(small_net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    pt2_file = folder / "fp32.pt2"
    torch.export.save(program, pt2_file)
    return {"onnx": onnx_file, "tflite": tflite_file, "pt2": pt2_file}


def test_statistics_on_a_known_sample():
    summary = summarize([float(v) for v in range(1, 101)])
    assert summary["count"] == 100 and summary["min_ms"] == 1 and summary["max_ms"] == 100
    assert summary["mean_ms"] == pytest.approx(50.5) and summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p90_ms"] == pytest.approx(90.1) and summary["p99_ms"] == pytest.approx(99.01)
    assert summary["std_ms"] == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert summary["cv"] == pytest.approx(summary["std_ms"] / 50.5)


def test_pareto_front_keeps_only_undominated_points():
    points = [(1.0, 90.0), (2.0, 95.0), (3.0, 94.0), (0.5, 80.0), (2.0, 93.0)]
    assert pareto_front(points) == [3, 0, 1]


def test_builtin_targets_and_their_settings():
    assert bench.builtin_names() == ["cpu", "gpu", "mobile-like"]
    mobile = bench.load_target("mobile-like")
    assert mobile.threads == 1 and mobile.pin_cores == 1 and mobile.memory_limit_mb == 512
    assert mobile.batch_sizes == [1] and mobile.reference_phones
    assert bench.load_target("cpu").batch_sizes == [1, 32]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\nthread = 2\n', "unknown key 'thread'; did you mean 'threads'?"),
        ('name = "x"\nthreads = 0\n', "threads: must be 'all' or a number >= 1"),
        ('name = "x"\nruntimes = ["tflight"]\n', "unknown runtime 'tflight'; did you mean 'tflite'?"),
        ('name = "x"\nbatch_sizes = 4\n', "batch_sizes: wrong type int"),
        ("threads = 2\n", "missing required key 'name'"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_bad_target_files_name_the_file_and_key(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_target(text, "my.toml")


def test_unknown_target_name():
    with pytest.raises(ConfigError, match="unknown target 'cpuu'; did you mean 'cpu'"):
        bench.load_target("cpuu")


@pytest.mark.slow
def test_each_runtime_measures_its_file_in_a_fresh_process(files, tiny_images):
    report = bench.run(list(files.values()), [_fast("cpu")], data=tiny_images, quiet=True)
    rows = [r for r in report["results"] if r["status"] == "ok"]
    measured = {(r["runtime"], r["batch"]) for r in rows}
    assert measured == {("onnx", 1), ("onnx", 32), ("torch", 1), ("torch", 32), ("tflite", 1)}
    (fixed,) = [r for r in report["results"] if r["status"] == "skipped"]
    assert fixed["runtime"] == "tflite" and "batch size is fixed at 1; batch 32 not measured" in fixed["reason"]
    all_cores = _fast("cpu").thread_count
    assert all(r["threads_read_back"] == all_cores for r in rows if r["runtime"] != "tflite")
    for row in rows:
        assert row["latency"]["count"] >= 5 and row["latency"]["p50_ms"] > 0
        assert row["init_s"] > 0 and row["first_inference_ms"] > 0
        assert row["peak_memory_bytes"] > 0  # measured in the worker, over its own baseline
        assert row["accuracy"]["samples"] == 160 and row["accuracy"]["top1"] > 0.8
        assert row["input_shape"] == [row["batch"], 1, 12, 12]
    int8 = next(r for r in rows if r["runtime"] == "tflite" and r["batch"] == 1)
    assert int8["input_dtype"] == "float32"
    assert report["machine"]["cpu_flags"] is not None and report["schema_version"] == 1


def test_mobile_like_pins_one_core_one_thread_and_caps_memory(files, tmp_path):
    report = bench.run([files["tflite"]], [_fast("mobile-like")], quiet=True)
    (row,) = report["results"]
    assert row["status"] == "ok" and len(row["affinity"]) == 1 and row["threads"] == 1
    onnx_row = bench.run([files["onnx"]], [_fast("mobile-like")], quiet=True)["results"][0]
    assert onnx_row["threads_read_back"] == 1 and len(onnx_row["affinity"]) == 1
    assert row["memory_cap"]["limit_bytes"] == 512 * 2**20
    assert row["memory_cap"]["method"] in ("cgroup-v2 memory.max", "rss-check")
    estimate = report["estimates"][0]
    assert estimate["kind"] == "roofline estimate" and estimate["precision"] == "int8" and estimate["estimate_ms"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the skip path cannot be seen")
def test_gpu_target_is_skipped_with_the_reason(files):
    report = bench.run([files["onnx"]], [_fast("gpu")], quiet=True)
    (row,) = report["results"]
    assert row["status"] == "skipped" and "no CUDA GPU" in row["reason"]


def test_bad_files_are_reported_and_the_others_still_measured(files, tiny_images, tmp_path):
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(files["tflite"].read_bytes()[:300])
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    listed = [tmp_path / "absent.onnx", truncated, text, tmp_path / "weights.bin", files["onnx"]]
    report = bench.run(listed, [_fast("cpu", batch_sizes=[1])], quiet=True)
    by_name = {r["artifact"]: r for r in report["results"]}
    assert "no such file" in by_name["absent.onnx"]["error"]
    assert "LiteRT cannot load it" in by_name["truncated.tflite"]["error"]
    assert "ONNX Runtime cannot load it" in by_name["notes.onnx"]["error"]
    assert "not a model file edgekd can benchmark" in by_name["weights.bin"]["error"]
    assert by_name["fp32.onnx"]["status"] == "ok"


def test_data_that_does_not_fit_the_model_is_named(files):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 1, 8, 8)).astype(np.float32), rng.integers(0, 4, 40)
    wrong = ek.data.from_arrays(x, y, x, y, batch_size=8)
    report = bench.run([files["onnx"]], [_fast("cpu", batch_sizes=[1])], data=wrong, quiet=True)
    (row,) = report["results"]
    assert row["status"] == "error" and "inputs are shaped [1, 8, 8], the model expects [1, 12, 12]" in row["error"]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
def test_html_report_is_a_page_with_tables_and_charts_in_chromium(files, tiny_images, tmp_path):
    report = bench.run([files["onnx"], files["tflite"]], [_fast("cpu", batch_sizes=[1])], data=tiny_images, quiet=True)
    paths = report_files.write_report(report, tmp_path / "with-data")
    assert json.loads(paths["json"].read_text())["kind"] == "edgekd-bench"
    assert "| fp32.onnx | cpu | onnx | 1 |" in paths["md"].read_text()
    no_data = report_files.write_report(
        {
            **report,
            "data": None,
            "results": [{k: v for k, v in r.items() if k != "accuracy"} for r in report["results"]],
        },
        tmp_path / "no-data",
    )
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Chromium (.ci/run installs Debian's chromium)")
        pytest.skip("Chromium is not installed here; CI installs it")

    def render(page, *extra):
        return subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000", *extra,
             page.as_uri()], capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip

    dom = render(paths["html"], "--dump-dom")
    rows = [r for r in report["results"] if r["status"] == "ok"]
    assert f'data-result-rows="{len(rows)}"' in dom and 'data-charts="4"' in dom  # accuracy, latency, memory, size
    for row in rows:  # the table holds the numbers of the JSON, as table cells
        assert f'data-value="{row["latency"]["p50_ms"]:.6g}">{row["latency"]["p50_ms"]:.3f} ms</td>' in dom
        assert f"{100 * row['accuracy']['top1']:.2f}%</td>" in dom
    assert "Pareto front" in dom and dom.count("<details>") == 2  # each file's manifest
    bare = render(no_data["html"], "--dump-dom")
    assert 'data-charts="3"' in bare and "not drawn, no accuracy was measured (run the benchmark with --data)" in bare
    for width in (1280, 390):  # a desktop window and a phone-width one
        shot = tmp_path / f"report-{width}.png"
        render(paths["html"], f"--screenshot={shot}", f"--window-size={width},1800")
        assert shot.is_file() and shot.stat().st_size > 10_000


@pytest.mark.slow
def test_cli_bench_and_compare(files, tmp_path, capsys):
    args = ["bench", str(files["onnx"]), "--target", "cpu", "--runs", "5", "--min-seconds", "0", "--quiet"]
    assert main([*args, "--out-dir", str(tmp_path / "a")]) == 0
    assert main([*args, "--out-dir", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out-dir", str(tmp_path / "ab")]) == 0
    out = capsys.readouterr().out
    assert "| fp32.onnx | cpu | onnx | 1 |" in out and "p50 a" in out
    page = (tmp_path / "ab" / "compare.html").read_text()
    p50 = {run: json.loads((tmp_path / run / "report.json").read_text())["results"][0]["latency"]["p50_ms"]
           for run in "ab"}  # fmt: skip
    assert f">{p50['a']:.3f} ms</td>" in page and f">{p50['b']:.3f} ms</td>" in page
    assert f">{p50['b'] / p50['a']:.2f}x</td>" in page and page.count('<svg class="chart"') == 1
    assert "| fp32.onnx | cpu | onnx | 1 |" in (tmp_path / "ab" / "compare.md").read_text()
    assert main(["bench", str(files["onnx"]), "--target", "phone"]) == 2
    assert "edgekd: error: unknown target 'phone'" in capsys.readouterr().err


def test_the_worker_measuring_onnx_or_tflite_never_imports_torch():
    code = (
        "import sys; import edgekd.bench.worker; from edgekd.formats import FORMATS; "
        "FORMATS['onnx'].import_runtime(); FORMATS['tflite'].import_runtime(); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_timed_inputs_read_only_the_rows_they_need(tmp_path):
    import tracemalloc

    from edgekd.bench.worker import _inputs
    from edgekd.formats.runner import TensorSpec

    x = np.arange(20000 * 784, dtype=np.float32).reshape(20000, 1, 28, 28)  # 63 MB of "test set"
    np.save(tmp_path / "x.npy", x)
    spec = {"batch": 1, "data": {"inputs": {"x": str(tmp_path / "x.npy")}}}
    model_inputs = [TensorSpec("x", ["batch", 1, 28, 28], "float32")]
    tracemalloc.start()
    (one,) = _inputs(spec, model_inputs).values()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.array_equal(one, x[:1]) and peak < 1_000_000  # not the whole file, as a copy used to take
    np.save(tmp_path / "x.npy", x[:3])
    (tiled,) = _inputs({"batch": 7, "data": {"inputs": {"x": str(tmp_path / "x.npy")}}}, model_inputs).values()
    assert tiled.shape == (7, 1, 28, 28) and np.array_equal(tiled[3:6], x[:3])


@pytest.mark.slow
def test_cli_bench_data_takes_an_npz_a_recipe_or_says_what_it_accepts(files, tiny_images, tmp_path, capsys):
    from edgekd.data import first_samples

    x, y = first_samples(tiny_images.test, None)
    np.savez(tmp_path / "test.npz", x=x.numpy(), y=y.numpy())
    args = ["bench", str(files["onnx"]), "--target", "cpu", "--runs", "5", "--min-seconds", "0", "--quiet"]
    assert main([*args, "--data", str(tmp_path / "test.npz"), "--out-dir", str(tmp_path / "a")]) == 0
    measured = json.loads((tmp_path / "a" / "report.json").read_text())["results"][0]["accuracy"]
    logits = open_runner(files["onnx"]).run(x.numpy())  # the arrays are fed as they are, not normalized again
    assert measured["samples"] == len(y)
    assert measured["top1"] == pytest.approx(float((logits.argmax(-1) == y.numpy()).mean()))
    recipe = tmp_path / "r.yaml"  # a recipe's data block: digits are 8x8, the file takes 12x12
    recipe.write_text("data: digits\nteacher: hinton-teacher\nstudent: hinton-student\nstages: [train]\n")
    assert main([*args, "--data", str(recipe), "--out-dir", str(tmp_path / "b")]) == 1
    assert "shaped [1, 8, 8], the model expects [1, 12, 12]" in capsys.readouterr().err
    assert main([*args, "--data", "cifar", "--out-dir", str(tmp_path / "c")]) == 2
    sources = "digit-canvases, digits, fashion-mnist, mnist"
    refused = f"--data: 'cifar' is not a data source ({sources}), an image folder, an .npz file"
    assert refused + " or a recipe" in capsys.readouterr().err
    np.savez(tmp_path / "nolabels.npz", x=np.zeros((4, 1, 12, 12), np.float32))
    assert main([*args, "--data", str(tmp_path / "nolabels.npz"), "--out-dir", str(tmp_path / "d")]) != 0
    assert "has no labels: expected an array 'y' or 'y_test', found x" in capsys.readouterr().err


def test_the_page_leaves_out_charts_without_data_and_says_why():
    from edgekd.bench.stats import histogram
    from edgekd.report.html import to_html

    failed = {"artifact": "m.onnx", "target": "cpu", "runtime": "onnx", "status": "error", "error": "cannot load"}
    report = {"created": "2026-12-03", "edgekd_version": "0", "wall_s": 1.0, "data": None, "results": [failed],
              "artifacts": [{"name": "m.onnx", "path": "/nowhere/m.onnx"}], "targets": [],
              "machine": {"cpu": "test cpu", "cores": 1}}  # fmt: skip
    page = to_html(report)
    assert "<svg" not in page and page.count('class="missing"') == 5  # four charts and the manifests
    assert "not drawn, no accuracy was measured" in page and "m.onnx @ cpu: error: cannot load" in page
    spread = histogram([1.0, 1.0, 2.0, 4.0], bins=3)
    assert spread == {"edges_ms": [1.0, 2.0, 3.0, 4.0], "counts": [2, 1, 1]}
    assert histogram([2.0, 2.0]) == {"edges_ms": [1.5, 2.5], "counts": [2]}  # one value: one bin around it


MNIST_NORMALIZATION = {"mean": [0.1307], "std": [0.3081], "pixel_scale": 1 / 255, "formula": "x = (p/255 - m)/s"}


@pytest.mark.parametrize(
    ("pixels", "expected"),
    [
        (lambda p: (p / 255 - 0.1307) / 0.3081, None),
        (lambda p: p, "raw pixels?"),
        (lambda p: p / 255, "scaled to [0, 1] and not normalized?"),
    ],
)
def test_data_not_normalized_as_the_manifest_says_gets_a_warning(pixels, expected):
    from edgekd.bench.input_range import range_warning

    raw = np.random.default_rng(0).integers(0, 256, (16, 1, 28, 28)).astype(np.float32)
    warning = range_warning(MNIST_NORMALIZATION, pixels(raw).astype(np.float32))
    assert warning is None if expected is None else expected in warning
    if expected:
        assert "[-0.424, 2.82]" in warning  # names the range the file expects
    assert range_warning(None, raw) is None  # a file without a recorded normalization: nothing to check
    # integer pixels fed to an image file are cast, not scaled: warned too; token ids go to text files, whose
    # manifests record no pixel normalization, so they are never taken for pixels
    assert "raw pixels?" in range_warning(MNIST_NORMALIZATION, raw.astype(np.uint8))


def test_bench_rows_carry_the_normalization_warning(files, tiny_images, tmp_path):
    from edgekd.data import first_samples
    from edgekd.formats import manifest_path

    artifact = tmp_path / "fp32.onnx"
    artifact.write_bytes(files["onnx"].read_bytes())
    manifest = json.loads(manifest_path(files["onnx"]).read_text())
    manifest_path(artifact).write_text(json.dumps({**manifest, "normalization": MNIST_NORMALIZATION}))
    x, y = first_samples(tiny_images.test, None)
    raw = ek.data.from_arrays(x * 255, y, x * 255, y, name="raw")  # what a user's uint8 .npz turns into
    report = bench.run([artifact], [_fast("cpu", batch_sizes=[1])], data=raw, quiet=True)
    (row,) = report["results"]
    assert row["status"] == "ok"
    assert any("raw pixels?" in warning for warning in row["warnings"])
    assert "fp32.onnx" in to_markdown(report) and "raw pixels?" in to_markdown(report)
    (plain,) = bench.run([files["onnx"]], [_fast("cpu", batch_sizes=[1])], data=raw, quiet=True)["results"]
    assert not any("pixels" in warning for warning in plain["warnings"])  # no normalization recorded: no guess
