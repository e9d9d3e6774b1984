"""Models as they come: logits found in tensors, tuples, dicts and output objects, or by an explicit selector."""

from __future__ import annotations

import copy
import textwrap

import onnx
import pytest
import torch
from int8_fixtures import example_batch, ptq
from output_models import OutputObject, SmallConv

import edgekd as ek
from edgekd.errors import ConfigError, DataError
from edgekd.outputs import OutputError, logits_of, output_selection, release_output, select_output
from edgekd.recipe import schema as recipes

LOGITS = torch.arange(8.0).reshape(2, 4)
OTHER = torch.zeros(2, 3)


@pytest.mark.parametrize(
    "output",
    [
        LOGITS,
        (LOGITS, OTHER),
        [LOGITS, OTHER],
        ((LOGITS, OTHER), OTHER),
        {"logits": LOGITS, "hidden": OTHER},
        {"scores": LOGITS, "note": "not a tensor"},
        OutputObject(loss=None, logits=LOGITS, hidden_states=(OTHER,)),
        type("Plain", (), {"logits": LOGITS})(),
    ],
)
def test_the_default_rule_finds_the_logits(output):
    assert logits_of(output) is LOGITS


@pytest.mark.parametrize(
    ("output", "selector"),
    [
        ((OTHER, LOGITS), 1),
        ((OTHER, LOGITS), -1),
        ({"a": OTHER, "b": LOGITS}, "b"),
        ({"a": OTHER, "b": LOGITS}, 1),
        (OutputObject(pooled=OTHER, scores=LOGITS), "scores"),
        ((OTHER, {"x": LOGITS}), lambda out: out[1]["x"]),
    ],
)
def test_an_explicit_selector_picks_any_part(output, selector):
    assert logits_of(output, selector) is LOGITS


@pytest.mark.parametrize(
    ("output", "selector", "said"),
    [
        ({"a": OTHER, "b": LOGITS}, None, "dict(a: a tensor of shape (2, 3), b: a tensor of shape (2, 4))"),
        ("text", None, "the forward returned str"),
        ((OTHER, LOGITS), 5, "output selector 5 gave None"),
        ({"a": OTHER}, "logits", "output selector 'logits' gave None"),
    ],
)
def test_when_nothing_fits_the_error_says_what_the_forward_returned(output, selector, said):
    with pytest.raises(OutputError) as raised:
        logits_of(output, selector)
    message = str(raised.value)
    assert said in message and "output=" in message and "\n" not in message


def test_the_selection_hook_survives_copies_and_can_be_released():
    model = select_output(SmallConv("features_first"), 1)
    x = torch.randn(2, 1, 12, 12)
    assert model(x).shape == (2, 4) and output_selection(model) == 1
    twin = copy.deepcopy(model)
    assert twin(x).shape == (2, 4)
    release_output(model)
    assert isinstance(model(x), tuple) and twin(x).shape == (2, 4)  # releasing one leaves the copy alone
    assert output_selection(model) is None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dict", "object", "tuple"])
def test_models_as_they_come_go_through_the_pipeline_and_export(kind, tiny_images, tmp_path):
    torch.manual_seed(0)
    teacher = SmallConv("object", width=16)
    ek.Trainer(ek.TrainConfig(epochs=2, lr=1e-2), quiet=True).fit(teacher, tiny_images)
    assert isinstance(teacher(torch.zeros(1, 1, 12, 12)), OutputObject)  # the Trainer left it as it was
    student = SmallConv(kind)
    stages = [ek.Distill(epochs=1, lr=1e-2, features={"stem.0": "stem.0"})]
    result = ek.Pipeline(teacher, student, tiny_images, stages, out_dir=tmp_path / "run", export=["onnx"],
                         quiet=True, device="cpu").run()  # fmt: skip
    assert isinstance(teacher(torch.zeros(1, 1, 12, 12)), OutputObject)  # the teacher is given back as it came
    assert result.model(torch.zeros(3, 1, 12, 12)).shape == (3, 4)
    graph = onnx.load(result.artifacts["onnx"]).graph
    assert len(graph.output) == 1 and graph.output[0].type.tensor_type.shape.dim[1].dim_value == 4
    ledger = {row["stage"]: row for row in result.report["ledger"]}
    assert ledger["onnx"]["test_accuracy"] == pytest.approx(ledger["distill"]["test_accuracy"], abs=0.01)
    assert "the student returns several tensors" in ledger["student"]["notes"]  # what the files leave out is said


def test_logits_that_are_not_first_are_refused_with_a_hint_then_selected(tiny_images, tmp_path):
    teacher = SmallConv()
    student = SmallConv("features_first")
    pipe = ek.Pipeline(teacher, student, tiny_images, [ek.Distill(epochs=1)], out_dir=tmp_path / "r", quiet=True)
    with pytest.raises(DataError, match=r"student \(SmallConv\) outputs \(2, 8\) .* select them with output="):
        pipe.preflight()
    select_output(student, 1)
    ek.Pipeline(teacher, student, tiny_images, [ek.Distill(epochs=1)], out_dir=tmp_path / "r", quiet=True).preflight()


def test_a_forward_with_no_tensor_in_it_is_one_line_naming_the_role(tiny_images, tmp_path):
    class Words(SmallConv):
        def forward(self, x):
            return {"label": "cat"}

    pipe = ek.Pipeline(SmallConv(), Words(), tiny_images, [ek.Distill(epochs=1)], out_dir=tmp_path / "w", quiet=True)
    with pytest.raises(DataError, match=r"^student \(Words\): the forward returned dict\(label: str\)"):
        pipe.preflight()


@pytest.mark.slow
def test_int8_export_of_a_dict_model(tiny_images, tmp_path):
    torch.manual_seed(0)
    model = SmallConv("dict")
    ek.Trainer(ek.TrainConfig(epochs=2, lr=1e-2), quiet=True).fit(model, tiny_images)
    quantized = ptq(model.eval(), tiny_images)
    assert quantized(example_batch(tiny_images)).shape == (2, 4)
    for writer, suffix in ((ek.export.to_onnx, "onnx"), (ek.export.to_tflite, "tflite")):
        assert writer(quantized, example_batch(tiny_images), tmp_path / f"q.{suffix}", data=tiny_images).parity.passed
    both = ek.export.to_tflite(model, example_batch(tiny_images), tmp_path / "both.tflite", data=tiny_images)
    assert [o["model_output"] for o in both.manifest["outputs"]] == ["logits", "features"]  # 'features' never dropped
    fp32 = ek.export.to_tflite(select_output(model, "logits"), example_batch(tiny_images), tmp_path / "f.tflite",
                               data=tiny_images)  # fmt: skip
    assert fp32.parity.passed
    release_output(model)
    assert isinstance(model(example_batch(tiny_images)), dict)  # export left it as it was


RECIPE = """
data: {{source: digits, batch_size: 32}}
teacher: {{model: hinton-teacher, args: {{in_features: 64}}}}
student: {{model: "output_models:features_first", args: {{channels: 1, classes: 10}}, output: {output}}}
stages: [{{distill: {{epochs: 1}}}}]
"""


def test_recipes_name_the_output(tmp_path):
    for output in ("1", "output_models:second"):
        path = tmp_path / "r.yaml"
        path.write_text(textwrap.dedent(RECIPE.format(output=output)))
        recipe = recipes.load(path)
        student = recipes.build_model(recipe.student, "student")
        assert student(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("nosuchmodule:pick", "student.output: cannot import module 'nosuchmodule'"),
        ("output_models:nothing", "student.output: 'nothing' in module 'output_models' is not a function"),
        ("true", "student.output: must be an attribute or key name, an index or 'package.module:function'"),
    ],
)
def test_a_bad_output_selector_in_a_recipe_names_the_key(tmp_path, output, message):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(RECIPE.format(output=output)))
    with pytest.raises(ConfigError, match=message):
        recipes.load(path)
