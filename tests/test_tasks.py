"""Tasks beyond one-label classification: named once, carried by every stage, judged by their own
metrics and parity rules, refused in one line where the targets or the model do not fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, mean_absolute_error, r2_score
from task_fixtures import TinySegmenter, blob_masks, mlp, tabular_multilabel, tabular_regression
from torch import nn

import edgekd as ek
from edgekd.errors import ConfigError, DataError
from edgekd.export.parity import compare

X = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (np.arange(40) % 3, "classification"),
        ((np.arange(40) % 3).astype(np.float32), "classification"),  # 0.0, 1.0, 2.0 are classes
        (np.linspace(0, 1, 40), "regression"),
        (np.random.default_rng(0).normal(size=(40, 2)), "regression"),
        (np.zeros((40, 4, 4), np.int64), "segmentation"),
    ],
)
def test_the_task_is_read_from_targets_that_allow_one_reading(y, task):
    assert ek.tasks.infer(y) == task


def test_float_targets_train_a_regression_head_never_a_one_class_classifier():
    data = ek.data.from_arrays(X, np.linspace(0, 1, 40), X[:8], np.linspace(0, 1, 8))
    assert data.task.name == "regression" and data.num_classes == 1
    _, y, _ = next(iter(data.train))
    assert y.dtype == torch.float32 and y.shape[1:] == (1,) and 0 < float(y.max()) <= 1


@pytest.mark.parametrize(
    ("spec", "targets", "message"),
    [
        ("multilabel", np.arange(40) % 3, r"multi-label targets must be \(samples, labels\) of 0/1"),
        ("segmentation", np.arange(40) % 3, "segmentation masks must be"),
        (None, np.full((40, 3), 0.0), "several labels per sample or 3 values to regress"),
    ],
)
def test_a_task_the_targets_do_not_fit_is_one_line(spec, targets, message):
    with pytest.raises(DataError, match=message):
        ek.data.from_arrays(X, targets, X[:8], targets[:8], task=spec)


def test_a_pipeline_names_the_task_and_its_monitor_or_refuses_them(tmp_path):
    data = ek.data.from_arrays(X, np.arange(40) % 3, X[:8], np.arange(8) % 3)
    args = {"teacher": mlp(6, 3), "student": mlp(6, 3), "data": data, "stages": [], "out_dir": tmp_path / "r"}
    with pytest.raises(DataError, match="task multilabel: data 'arrays' targets: multi-label targets must be"):
        ek.Pipeline(**args, task="multilabel")
    with pytest.raises(ConfigError, match="monitor: 'miou' is not a classification metric; it has accuracy"):
        ek.Pipeline(**args, monitor="miou")
    pipe = ek.Pipeline(**args, monitor="macro_f1")
    assert pipe.data.task.monitor == "macro_f1" and data.task.monitor == "accuracy"  # the user's bundle untouched
    assert not (tmp_path / "r").exists()


def test_a_head_that_does_not_fit_the_task_is_named_before_training(tmp_path):
    data = tabular_regression(n=80)
    pipe = ek.Pipeline(mlp(8, 1), mlp(8, 3), data, [ek.Distill(epochs=1)], out_dir=tmp_path / "r", device="cpu")
    with pytest.raises(DataError, match=r"student \(Sequential\) returns shape \(2, 3\) for targets of shape \(2, 1\)"):
        pipe.preflight()
    masks = blob_masks(n=40)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(256, 3))
    pipe = ek.Pipeline(TinySegmenter(), flat, masks, [ek.Distill(epochs=1)], out_dir=tmp_path / "s", device="cpu")
    with pytest.raises(DataError, match=r"must output \(batch, classes, height, width\) at the masks' resolution"):
        pipe.preflight()


def test_families_built_on_class_logits_refuse_other_tasks_in_one_line(tmp_path):
    data = tabular_regression(n=80)
    pipe = ek.Pipeline(mlp(8, 1), mlp(8, 1), data, [ek.MutualDistill(epochs=1)], out_dir=tmp_path / "r",
                       device="cpu", quiet=True)  # fmt: skip
    with pytest.raises(ConfigError, match="mutual: peers teach each other their class distributions, so it takes a "
                                          "classification task, not regression; use distill"):  # fmt: skip
        pipe.run()


def test_regression_metrics_are_the_textbook_ones():
    task = ek.tasks.get("regression")
    truth = torch.tensor([[0.1], [0.4], [0.35], [0.8]])
    predicted = torch.tensor([[0.0], [0.5], [0.3], [0.7]])
    metrics = task.metrics(predicted, truth, 1)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(truth, predicted), abs=1e-6)
    assert metrics["r2"] == pytest.approx(r2_score(truth, predicted), abs=1e-6)
    assert metrics["rmse"] == pytest.approx(float(((predicted - truth) ** 2).mean().sqrt()), abs=1e-6)


def test_multilabel_map_is_the_mean_of_each_present_labels_average_precision():
    task = ek.tasks.get("multilabel")
    truth = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.float32)
    scores = torch.tensor([[2.0, -1, -3], [-1, 0.5, -2], [0.2, -0.1, -1], [-2, 1.0, -1]])
    metrics = task.metrics(scores, truth, 3)
    expected = np.mean([average_precision_score(truth[:, j], scores[:, j]) for j in (0, 1)])  # label 2 never on
    assert metrics["map"] == pytest.approx(expected, abs=1e-4) and metrics["labels_present"] == [0, 1]


def test_segmentation_miou_counts_each_class_present_and_leaves_ignored_pixels_out():
    task = ek.tasks.get("segmentation")
    truth = torch.tensor([[[0, 0], [1, 255]]])
    predicted = torch.zeros(1, 3, 2, 2)
    predicted[0, 0, 0, 0] = predicted[0, 1, 0, 1] = predicted[0, 1, 1, 0] = predicted[0, 2, 1, 1] = 5.0
    metrics = task.metrics(predicted, truth, 3)
    # class 0: 1 hit / union 2; class 1: 1 hit / union 2; class 2 neither true nor predicted on scored pixels
    assert metrics["miou"] == pytest.approx(0.5) and metrics["pixel_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["per_class_iou"][2] is None


def test_a_segmenter_that_paints_every_pixel_background_is_named_not_scored_as_skill():
    from edgekd.tasks.scores import one_class_warning

    task = ek.tasks.get("segmentation")
    truth = torch.zeros(2, 8, 8, dtype=torch.long)
    truth[:, 2:4, 2:4], truth[:, 5:7, 5:7] = 1, 2  # two small objects on a large background
    background = torch.zeros(2, 3, 8, 8)
    background[:, 0] = 5.0
    metrics = task.metrics(background, truth, 3)
    warning = one_class_warning(metrics, ["bg", "a", "b"])
    assert warning and "no pixel of any class but 'bg'" in warning and "2 of 3 classes present" in warning
    assert "87.5% is that class's share" in warning and "class_weights='balanced'" in warning
    assert "finds no class but one" in task.no_skill(metrics, 3)
    finds_one = background.clone()
    finds_one[:, 1, 2:4, 2:4] = 9.0  # the first object found
    assert (
        one_class_warning(task.metrics(finds_one, truth, 3)) is None
        and task.no_skill(task.metrics(finds_one, truth, 3), 3) is None
    )


def test_the_best_epoch_of_a_lower_is_better_metric_is_its_lowest():
    task = ek.tasks.get("regression")
    assert task.better(0.2, 0.3) and not task.better(0.3, 0.2) and task.better(0.5, None)
    assert ek.tasks.get("regression", monitor="r2").better(0.3, 0.2)


class _Returns:
    """A stand-in runner returning fixed outputs."""

    def __init__(self, outputs: np.ndarray) -> None:
        self.outputs = outputs

    def run(self, x) -> np.ndarray:
        return self.outputs


class _Fixed(nn.Module):
    def __init__(self, outputs: torch.Tensor) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs[: len(x)]


def test_the_parity_gate_counts_a_segmenters_decisions_per_pixel():
    logits = torch.randn(6, 3, 4, 4) * 10
    samples = torch.randn(6, 1, 4, 4)
    flipped = logits.clone()
    flipped[:, [0, 1]] = flipped[:, [1, 0]]  # classes 0 and 1 swapped: the last axis' argmax barely moves
    report = compare(_Fixed(logits), _Returns(flipped.numpy()), samples, "int8", 0.1, task=ek.tasks.get("segmentation"))
    assert not report.passed and report.rule == "per-pixel class" and report.top1_agreement < 0.8


def test_the_parity_gate_judges_regression_values_by_their_error_in_output_steps():
    values = torch.linspace(0, 1, 12).reshape(12, 1)
    samples = torch.randn(12, 3)
    task = ek.tasks.get("regression")
    close = compare(_Fixed(values), _Returns((values + 0.01).numpy()), samples, "int8", 0.01, task=task)
    assert (
        close.passed
        and close.rule == "values"
        and "values compared on 12 samples" in ek.export.parity.ParityReport.summary(close)
    )
    far = compare(_Fixed(values), _Returns((values + 0.2).numpy()), samples, "int8", 0.01, task=task)
    assert not far.passed and "output steps" in far.reason


@pytest.mark.slow
@pytest.mark.parametrize("which", ["regression", "multilabel", "segmentation"])
def test_each_task_goes_through_distill_prune_qat_and_both_files(which, tmp_path):
    made = {
        "regression": lambda: (tabular_regression(), mlp(8, 1, 64), mlp(8, 1, 16)),
        "multilabel": lambda: (tabular_multilabel(), mlp(8, 3, 64), mlp(8, 3, 16)),
        "segmentation": lambda: (blob_masks(), TinySegmenter(3, 24), TinySegmenter(3, 12)),
    }
    data, teacher, student = made[which]()
    ek.pretrain(teacher, data, ek.TrainConfig(epochs=8, lr=0.01), use_cache=False, quiet=True, device="cpu")
    stages = [ek.Distill(epochs=4, lr=0.01), ek.Prune(ratio=0.3, epochs=1, lr=0.005), ek.Quantize(epochs=1, lr=0.001)]
    ek.Pipeline(teacher, student, data, stages, export=["onnx", "tflite"], out_dir=tmp_path / "run", device="cpu",
                quiet=True).run()  # fmt: skip
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    rows = {row["stage"]: row for row in report["ledger"]}
    monitor = data.task.monitor
    assert {row["metric"] for row in rows.values()} == {monitor}
    assert all(
        row["test_accuracy"] is None and row["test_metrics"][monitor] == row["test_score"] for row in rows.values()
    )
    teacher_score, student_score = rows["teacher"]["test_score"], rows["student"]["test_score"]
    assert data.task.better(teacher_score, student_score)  # the pretrained teacher beats the untrained student
    assert data.task.better(rows["distill"]["test_score"], student_score)  # distillation taught it something
    for fmt in ("onnx", "tflite"):
        manifest = json.loads((tmp_path / "run" / "artifacts" / f"model.{fmt}.json").read_text())
        assert manifest["task"]["task"] == which and manifest["precision"] == "int8"
        assert manifest["metrics"][monitor] == pytest.approx(rows[fmt]["test_score"]) and manifest["accuracy"] is None
        assert manifest["parity"]["rule"] == data.task.parity_rule and manifest["parity"]["passed"]
        # the file's own metric is the INT8 model's, within what its integer kernels may move
        assert abs(rows[fmt]["test_score"] - rows["quantize"]["test_score"]) <= 0.05
    assert f"test {monitor}" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.slow
def test_the_bench_and_the_pages_report_a_regressors_own_metric(tmp_path):
    data = tabular_regression(n=300)
    teacher = mlp(8, 1, 32)
    ek.pretrain(teacher, data, ek.TrainConfig(epochs=4, lr=0.01), use_cache=False, quiet=True, device="cpu")
    result = ek.Pipeline(teacher, mlp(8, 1, 16), data, [ek.Distill(epochs=2, lr=0.01)], export=["onnx"],
                         targets=["cpu"], out_dir=tmp_path / "run", device="cpu", quiet=True).run()  # fmt: skip
    rows = [r for r in result.report["bench"]["results"] if r["status"] == "ok"]
    assert rows and all("accuracy" not in r and r["metrics"]["metric"] == "rmse" for r in rows)
    onnx = next(r for r in rows if r["artifact"] == "model.onnx")
    shipped = next(row for row in result.report["ledger"] if row["stage"] == "onnx")
    assert onnx["metrics"]["value"] == pytest.approx(shipped["test_score"], abs=1e-4)  # same file, same test set
    page = (tmp_path / "run" / "bench" / "report.html").read_text()
    assert "test rmse" in page and f"rmse {onnx['metrics']['value']:.4g}" in page
    assert "| test rmse | val rmse |" in (tmp_path / "run" / "report.md").read_text()


def _arrays_recipe(tmp_path, extra: str) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    y = (x[:, :3] > 0).astype(np.float32)  # three tags: as a 0/1 matrix, ambiguous until the recipe names the task
    np.savez(tmp_path / "tags.npz", x_train=x[:150], y_train=y[:150], x_test=x[150:], y_test=y[150:])
    recipe = tmp_path / "tags.yaml"
    recipe.write_text(
        f"data: {{source: arrays, path: {tmp_path / 'tags.npz'}, batch_size: 32}}\n{extra}"
        "teacher: {model: 'task_fixtures:mlp', args: {features: 8, outputs: 3, hidden: 32}, pretrain: {epochs: 3}}\n"
        "student: {model: 'task_fixtures:mlp', args: {features: 8, outputs: 3, hidden: 8}}\n"
        "stages: [{distill: {epochs: 1}}]\nexport: [onnx]\ndevice: cpu\n"
    )
    return str(recipe)


def test_a_recipe_names_the_task_and_monitor_or_is_refused_in_one_line(tmp_path, capsys):
    from edgekd.cli.main import main
    from edgekd.recipe import schema

    recipe = schema.load(_arrays_recipe(tmp_path, "task: {name: multilabel}\nmonitor: macro_f1\n"))
    data = schema.build_data(recipe)
    assert data.task.name == "multilabel" and data.task.monitor == "macro_f1" and data.num_classes == 3
    for extra, message in [
        ("task: ranking\n", "unknown task 'ranking'"),
        ("task: multilabel\nmonitor: rmse\n", "monitor: 'rmse' is not a multilabel metric"),
        ("task: {name: regression, loss: cosh}\n", "loss: regression takes mse, l1, huber"),
        ("", "several labels per sample or 3 values to regress? pass task='multilabel'"),
    ]:
        assert main(["run", _arrays_recipe(tmp_path, extra), "--out-dir", str(tmp_path / "x"), "--quiet"]) in (1, 2)
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_a_multilabel_recipe_runs_from_the_command_line(tmp_path, monkeypatch):
    from edgekd.cli.main import main

    monkeypatch.syspath_prepend(str(tmp_path.parent))
    recipe = _arrays_recipe(tmp_path, "task: multilabel\n")
    assert main(["run", recipe, "--out-dir", str(tmp_path / "run"), "--quiet"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["data"]["task"] == "multilabel" and {row["metric"] for row in report["ledger"]} == {"map"}


class _TwoHeads(nn.Module):
    """A detector's shape: boxes and class scores from one body, as a tuple or a dict."""

    def __init__(self, as_dict: bool) -> None:
        super().__init__()
        self.as_dict = as_dict
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.boxes, self.scores = nn.Linear(8, 4), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor):
        features = self.body(x)
        boxes, scores = self.boxes(features), self.scores(features)
        return {"boxes": boxes, "scores": scores} if self.as_dict else (boxes, scores)


@pytest.mark.slow
@pytest.mark.parametrize("as_dict", [False, True])
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_every_output_of_a_two_output_model_reaches_the_file_by_name(fmt, as_dict, tmp_path):
    from edgekd.formats.runner import open_runner

    model, x = _TwoHeads(as_dict).eval(), torch.randn(4, 1, 12, 12)
    artifact = getattr(ek.export, f"to_{fmt}")(model, x, tmp_path / f"det.{fmt}")
    names = ["boxes", "scores"] if as_dict else ["output_0", "output_1"]
    assert [o["model_output"] for o in artifact.manifest["outputs"]] == names
    assert artifact.parity.passed and artifact.parity.rule == "values"
    boxes, scores = open_runner(artifact.path).run_all(x.numpy())
    with torch.no_grad():
        expected = model(x)
    expected = [expected["boxes"], expected["scores"]] if as_dict else list(expected)
    np.testing.assert_allclose(boxes, expected[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(scores, expected[1].numpy(), atol=1e-5)


def test_a_file_that_lost_an_output_fails_its_gate_naming_it():
    from edgekd.export.parity import compare_outputs

    class OneOfTwo:
        outputs = [type("Spec", (), {"name": "boxes"})()]

        def run_all(self, x):
            return [np.zeros((len(x), 4), np.float32)]

    model, x = _TwoHeads(True).eval(), torch.randn(4, 1, 12, 12)
    report = compare_outputs(model, OneOfTwo(), x, ["boxes", "scores"])
    assert not report.passed and "the file has 1 outputs, the model 2" in report.reason and "'scores'" in report.reason


def test_balanced_class_weights_are_counted_on_the_training_labels_and_reach_the_loss():
    y = np.array([0] * 36 + [1] * 4)
    task = ek.tasks.get("classification", class_weights="balanced")
    data = ek.data.from_arrays(X, y, X[:8], y[:8], task=task)
    weights = data.task.class_weights  # n / (classes * count) over the training targets given
    assert weights == pytest.approx([40 / (2 * 36), 40 / (2 * 4)], rel=1e-5)
    logits, labels = torch.zeros(2, 2), torch.tensor([0, 1])
    logits[1, 1] = 2.0  # the rare sample right, the common one a coin toss
    weighted = float(data.task.loss(logits, labels))
    plain = float(ek.tasks.get("classification").loss(logits, labels))
    assert weighted < plain  # the rare class's (small) loss counts more
    with pytest.raises(ConfigError, match="class_weights: 'balanced' or one number per class, got 'inverse'"):
        ek.tasks.get("classification", class_weights="inverse")
    with pytest.raises(ConfigError, match="class_weights='balanced' needs the training labels"):
        task.loss(logits, labels)


def test_imbalanced_classes_read_from_targets_are_monitored_on_macro_f1():
    y = np.array([0] * 36 + [1] * 4)
    assert ek.data.from_arrays(X, y, X[:8], y[:8]).task.monitor == "macro_f1"
    assert ek.data.from_arrays(X, np.arange(40) % 2, X[:8], np.arange(8) % 2).task.monitor == "accuracy"


def test_digit_canvases_hold_exact_masks_and_boxes_of_the_digits_pasted():
    from edgekd.data.canvases import INK, paste_digits

    rng = np.random.default_rng(0)
    digits = np.zeros((3, 28, 28), np.uint8)
    digits[:, 10:20, 12:16] = 200  # a bar of ink per digit
    canvases, masks, boxes = paste_digits(digits, np.array([4, 7, 9]), 5, 64, 3, rng)
    for canvas, mask, rows in zip(canvases, masks, boxes):
        assert ((canvas[0] > INK) == (mask > 0)).all()  # every inked pixel, and only those, is a digit's class
        for label, x0, y0, x1, y1 in rows[rows[:, 0] >= 0]:
            assert (x1 - x0, y1 - y0) == (4, 10) and (mask[y0:y1, x0:x1] == label + 1).all()
    data = ek.data.source("digit-canvases")(train=40, test=10)
    assert data.task.name == "segmentation" and data.num_classes == 11 and data.labels[0] == "background"
    with pytest.raises(DataError, match="size: a canvas of 20 px cannot hold a 28 px digit"):
        paste_digits(np.zeros((1, 28, 28), np.uint8), np.zeros(1), 1, 20, 1, rng)
