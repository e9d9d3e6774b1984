"""Recipe validation: every bad recipe gets one line naming the file and the key, and exit code 2."""

from __future__ import annotations

import textwrap

import pytest

from edgekd.cli.main import main
from edgekd.distill import Distill
from edgekd.errors import ConfigError
from edgekd.recipe import schema as recipes

GOOD = """
name: tiny
data: {source: digits, batch_size: 32}
teacher:
  model: hinton-teacher
  args: {in_features: 64}
  pretrain: {epochs: 1}
student: {model: hinton-student, args: {in_features: 64}}
stages:
  - distill: {epochs: 1, temperature: 3, features: {features: features}, feature_loss: cosine}
  - train: {epochs: 1, optimizer: sgd}
"""


def _write(tmp_path, text: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_recipe_parses_into_the_python_objects(tmp_path):
    recipe = recipes.load(_write(tmp_path, GOOD))
    assert recipe.data_source == "digits" and recipe.data_args == {"batch_size": 32}
    assert recipe.teachers[0].pretrain.epochs == 1
    assert isinstance(recipe.stages[0], Distill)
    assert recipe.stages[0].temperature == 3.0 and isinstance(recipe.stages[0].temperature, float)
    assert recipe.stages[1].name == "train"


def test_shipped_demo_recipe_is_valid():
    from importlib.resources import files

    recipe = recipes.load(str(files("edgekd.recipe").joinpath("mnist.yaml")))
    assert recipe.teachers[0].model == "mnist-resnet" and recipe.student.model == "mnist-mobilenet"
    assert [s.name for s in recipe.stages] == ["distill", "prune", "quantize"]
    assert recipe.export == {"onnx": {}, "tflite": {}, "executorch": {}}
    assert [t.name for t in recipe.targets] == ["cpu", "mobile-like"] and recipe.bench_teacher is True


BAD_CASES = [
    (GOOD + "bench_teacher: 3\n", "bench_teacher: expected bool, got int 3"),
    (GOOD.replace("name: tiny", "nmae: tiny"), ": unknown key 'nmae'; did you mean 'name'?"),
    (GOOD.replace("epochs: 1, temperature: 3", "epochs: -1, temperature: 3"), "stages[0].distill.epochs: must be >= 0"),
    (GOOD.replace("temperature: 3", "temperature: hot"), "stages[0].distill.temperature: expected float, got str"),
    (GOOD.replace("temperature: 3", "temperature: 3, alpha: 1.5"), "stages[0].distill.alpha: must be in [0, 1]"),
    (
        GOOD.replace("temperature: 3", "temprature: 3"),
        "stages[0].distill: unknown key 'temprature'; did you mean 'temperature'?",
    ),
    (GOOD.replace("- train:", "- trian:"), "stages[1]: unknown stage 'trian'; did you mean 'train'"),
    (GOOD.replace("hinton-student", "hinton-studnet"), "student.model: unknown model 'hinton-studnet'"),
    (GOOD.replace("source: digits", "source: cifar"), "data.source: unknown data source 'cifar'"),
    (GOOD.replace("batch_size: 32", "batch_size: 3.5"), "data.batch_size: expected int, got float"),
    (
        GOOD.replace("feature_loss: cosine", "feature_loss: l3"),
        "stages[0].distill.feature_loss: unknown feature loss 'l3'",
    ),
    (
        GOOD.replace("pretrain: {epochs: 1}", "checkpoint: missing.pt"),
        "teacher.checkpoint: file 'missing.pt' does not exist",
    ),
    (GOOD.replace("student: {model: hinton-student, args: {in_features: 64}}\n", ""), "missing required key 'student'"),
    (GOOD.replace("optimizer: sgd", "optimizer: lamb"), "stages[1].train.optimizer: must be one of sgd, adam, adamw"),
    ("- just\n- a list\n", "a recipe must be a mapping"),
    (GOOD + "export: [onx]\n", "export: unknown export format 'onx'; did you mean 'onnx'?"),
    (GOOD + "export: {tflite: {io: uint8}}\n", "export.tflite.io: must be one of float, int8, got 'uint8'"),
    (GOOD + "export: {onnx: {opst: 17}}\n", "export.onnx: unknown option 'opst'; did you mean 'opset'?"),
    (GOOD + "export: onnx\n", "export: must be a list of formats"),
    (GOOD + "export: [onnx]\ntargets: [mobile]\n", "targets: unknown target 'mobile'; did you mean 'mobile-like'?"),
    (
        GOOD.replace("- train: {epochs: 1, optimizer: sgd}", "- quantize: {epochs: 1, calibration_batches: 0}"),
        "stages[1].quantize.calibration_batches: must be >= 1",
    ),
    (
        GOOD.replace("- train: {epochs: 1, optimizer: sgd}", "- quantize: {exclude: layer1}"),
        "stages[1].quantize.exclude: expected list[str], got str",
    ),
    (
        GOOD.replace("- train: {epochs: 1, optimizer: sgd}", "- quantize: {weight_range: 7bit}"),
        "stages[1].quantize.weight_range: must be one of auto, full, narrow, got '7bit'",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_CASES)
def test_bad_recipes_name_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        recipes.load(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_yaml_syntax_error_gives_the_line(tmp_path):
    path = _write(tmp_path, "name: x\ndata: {source: mnist\nstudent: y\n")
    with pytest.raises(ConfigError, match=r"YAML syntax error at line \d+"):
        recipes.load(path)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        recipes.load(tmp_path / "nope.yaml")


def test_cli_prints_one_line_and_exits_2_without_traceback(tmp_path, capsys):
    path = _write(tmp_path, GOOD.replace("temperature: 3", "temperature: -3"))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "stages[0].distill.temperature: must be > 0, got -3" in err


def test_a_bad_tap_name_fails_before_the_teacher_trains(tmp_path, capsys, monkeypatch):
    path = _write(tmp_path, GOOD.replace("features: {features: features}", "features: {featurs: features}"))
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEKD_CACHE", str(cache))
    assert main(["run", str(path), "--out-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "stages[0].distill: student module 'featurs' does not exist; nearest valid names: features" in err
    assert not cache.exists() and not (tmp_path / "run").exists()


def test_prune_stage_options_are_validated_with_their_keys(tmp_path):
    text = GOOD.replace("  - train: {epochs: 1, optimizer: sgd}", "  - prune: {ratio: 0.5, ignore: [classifier]}")
    recipe = recipes.load(_write(tmp_path, text))
    assert recipe.stages[1].name == "prune" and recipe.stages[1].ignore == ["classifier"]
    with pytest.raises(ConfigError, match=r"stages\[1\]\.prune\.ratio: must be in \[0, 1\), got 1.2"):
        recipes.load(_write(tmp_path, text.replace("ratio: 0.5", "ratio: 1.2")))
    with pytest.raises(ConfigError, match=r"stages\[1\]\.prune\.ignore: expected list\[str\] \| None"):
        recipes.load(_write(tmp_path, text.replace("ignore: [classifier]", "ignore: classifier")))


def test_every_example_recipe_parses():
    from pathlib import Path

    from edgekd.recipe import schema as recipe

    folder = Path(__file__).resolve().parents[1] / "examples" / "recipes"
    parsed = {path.name: recipe.load(path) for path in sorted(folder.glob("*.yaml"))}
    assert "fashion_mnist.yaml" in parsed and len(parsed) >= 4
    assert [type(s).__name__ for s in parsed["fashion_mnist.yaml"].stages] == [
        "MutualDistill",
        "SelfDistill",
        "Quantize",
    ]
    assert parsed["fashion_mnist.yaml"].data_source == "fashion-mnist"
    assert parsed["fashion_mnist_budget.yaml"].stages[1].budget["latency_ms"] == 0.027
