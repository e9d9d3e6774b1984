"""Detection: boxes as targets, several outputs through every stage, mAP@0.5, and files that keep each output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import edgekd as ek
from edgekd.errors import ConfigError, DataError
from edgekd.tasks.boxes import Detections, box_iou, mean_average_precision
from edgekd.tasks.detection import Detection, truth_of


class CenterHead(nn.Module):
    """A small anchor-free detector: stride-4 features, class heatmaps and per-cell box distances."""

    def __init__(self, width: int = 8, classes: int = 10, as_tuple: bool = False) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.body = nn.Sequential(block(1, width), block(width, 2 * width, 2), block(2 * width, 3 * width, 2),
                                  block(3 * width, 3 * width))  # fmt: skip
        self.heat = nn.Conv2d(3 * width, classes, 1)
        self.box = nn.Conv2d(3 * width, 4, 1)
        nn.init.constant_(self.heat.bias, -2.2)  # objects are rare: start near "nothing here"
        self.as_tuple = as_tuple

    def forward(self, x: torch.Tensor):
        features = self.body(x)
        heat, box = self.heat(features), self.box(features)
        return (heat, box) if self.as_tuple else {"heatmap": heat, "boxes": box}


def canvases(train: int = 300, test: int = 40) -> ek.data.DataBundle:
    return ek.data.source("digit-canvases")(train=train, test=test, size=32, max_digits=1, batch_size=32,
                                            targets="boxes")  # fmt: skip


def perfect_outputs(task: Detection, y: torch.Tensor, grid: int) -> list[torch.Tensor]:
    """The outputs a detector that is never wrong would give: the task's own targets on the grid."""
    heat, boxes, _ = task._encode(y, torch.zeros(len(y), 10, grid, grid))
    return [torch.logit(heat.clamp(1e-4, 1 - 1e-4)), boxes]


def test_boxes_as_targets_make_a_detection_bundle_that_knows_its_image_size():
    data = canvases(20, 8)
    assert data.task.name == "detection" and data.task.image_size == (32, 32) and data.num_classes == 10
    assert data.task.monitor == "map50" and data.labels == [str(d) for d in range(10)]


@pytest.mark.parametrize(
    "targets, message",
    [
        (np.zeros((4, 3)), r"must be \(images, boxes, 5\) rows of \(class, x0, y0, x1, y1\)"),
        (np.array([[[0.5, 1, 1, 4, 4]]]), r"class \(column 0\) must be a whole number"),
        (np.array([[[2, 5, 1, 4, 4]]]), r"x1 > x0 >= 0"),
        (np.array([[[2, 1, 1, 4, 4], [-2, 0, 0, 0, 3]]]), r"or -1 for a padding row"),
        (np.array([[[2, 0.1, 0.1, 0.4, 0.5]]]), r"within \[0, 1\]: give boxes in input pixels"),
        ([[[1, 2, 3]]], r"boxes per image must be \(boxes, 5\) rows"),
    ],
)
def test_boxes_that_are_not_boxes_are_refused_in_one_line(targets, message):
    with pytest.raises(DataError, match=message):
        Detection().targets(targets, "y_train")


def test_rows_of_five_are_never_read_as_masks_without_asking():
    with pytest.raises(DataError, match="boxes to detect or masks to segment"):
        ek.tasks.infer(np.full((6, 3, 5), -1, np.int64))
    with pytest.raises(DataError, match="a different length per sample .* pass task='detection'"):
        ek.tasks.infer([[[0, 1, 1, 5, 5]], [[1, 1, 1, 5, 5], [2, 6, 6, 9, 9]]])


def test_boxes_given_as_a_list_per_image_are_padded_and_shifts_that_would_move_them_refused():
    x = np.zeros((4, 1, 16, 16), np.float32)
    boxes = [[[0, 1, 1, 5, 5]], [], [[1, 1, 1, 5, 5], [2, 6, 6, 9, 9]], [[3, 2, 2, 8, 8]]]
    data = ek.data.from_arrays(x, boxes, x, boxes, task="detection", batch_size=2)
    assert data.test.y.shape == (4, 2, 5) and (data.test.y[1] == -1).all() and data.num_classes == 4
    with pytest.raises(DataError, match="moves the image but not its boxes"):
        ek.data.from_arrays(x, boxes, x, boxes, task="detection", augment=lambda batch, generator: batch)


def test_map_is_one_for_a_perfect_detector_and_falls_when_boxes_drift():
    data = canvases(20, 16)
    task, y = data.task, data.test.y
    perfect = perfect_outputs(task, y, 8)
    assert task.metrics(task.output_of(perfect), y, 10)["map50"] == 1.0
    loose = task.metrics(task.output_of([perfect[0], perfect[1] + 0.5]), y, 10)  # boxes 2 px larger each side
    assert loose["map50"] >= 0.75 and loose["map50_95"] < 0.6 * loose["map50"]  # wide digits still found at 0.5
    wide = task.metrics(task.output_of([perfect[0], perfect[1] + 2.0]), y, 10)  # 8 px: IoU under 0.5
    assert wide["map50"] < 0.2


def test_average_precision_counts_a_higher_scored_false_box_against_the_true_one():
    truth = [Detections(np.array([[0, 0, 10, 10.0]]), np.ones(1), np.array([3]))]
    found = [Detections(np.array([[50, 50, 60, 60.0], [1, 0, 10, 10.0]]), np.array([0.9, 0.6]), np.array([3, 3]))]
    assert mean_average_precision(found, truth, 5)["map50"] == pytest.approx(0.5)  # precision 1/2 at recall 1
    assert box_iou(np.array([[0, 0, 2, 2.0]]), np.array([[1, 0, 3, 2.0]]))[0, 0] == pytest.approx(1 / 3)
    assert len(truth_of(np.array([[1, 0, 0, 4, 4], [-1, -1, -1, -1, -1]], np.float32)).scores) == 1


def test_a_dict_that_names_its_boxes_first_is_read_by_name_not_position():
    data = canvases(20, 16)
    task, y = data.task, data.test.y
    heat, boxes = perfect_outputs(task, y, 8)
    assert task.metrics(task.output_of({"boxes": boxes, "heatmap": heat}), y, 10)["map50"] == 1.0


def test_the_gate_counts_boxes_a_file_lost_or_added_both_ways():
    data = canvases(20, 16)
    task, y = data.task, data.test.y
    expected = [t.numpy() for t in perfect_outputs(task, y, 8)]
    assert task.agreement(expected, expected) == (1.0, 2 * len(y))
    lost = [expected[0].copy(), expected[1]]
    lost[0][0] = -10.0  # the file sees nothing in the first image
    share, compared = task.agreement(expected, lost)
    assert share == pytest.approx(1 - 1 / compared)


def test_a_head_that_is_not_the_builtin_one_is_named_with_what_to_pass(tmp_path):
    data = canvases(20, 8)
    one_output = nn.Sequential(nn.Conv2d(1, 10, 3, 4, 1))
    with pytest.raises(DataError, match=r"needs two outputs, class heatmaps .* pass Detection\(loss=..., decode=...\)"):
        ek.Pipeline(CenterHead(), one_output, data, [ek.Train(epochs=1)], out_dir=tmp_path / "run").preflight()
    per_image = Detection(loss=lambda outputs, y: outputs[0].sum(), decode=lambda outputs: [], image_size=(32, 32))
    with pytest.raises(DataError, match=r"for a batch of 4: each output must be one tensor with the batch first"):
        per_image.check_output(per_image.output_of([torch.zeros(5, 4), torch.zeros(5)]), torch.zeros(4, 1, 5), 10, "m")
    with pytest.raises(ConfigError, match="give loss and decode together"):
        Detection(loss=lambda outputs, y: outputs[0].sum())
    with pytest.raises(ConfigError, match="task.decode: expected a function"):
        Detection(loss=lambda outputs, y: outputs[0].sum(), decode=3)


def test_a_users_own_head_trains_with_its_own_loss_and_is_judged_by_its_own_decoding(tmp_path):
    """A DETR-like head: a fixed set of slots, each with class scores and a box in pixels."""

    class Slots(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 64), nn.ReLU())
            self.scores, self.boxes = nn.Linear(64, 10), nn.Linear(64, 4)

        def forward(self, x):
            h = self.body(x)
            return self.scores(h).unsqueeze(1), self.boxes(h).unsqueeze(1) * 32

    calls = {"loss": 0, "decode": 0}

    def loss(outputs, y):
        calls["loss"] += 1
        first = y[:, 0]
        return nn.functional.cross_entropy(outputs[0][:, 0], first[:, 0].long()) + (
            nn.functional.l1_loss(outputs[1][:, 0], first[:, 1:]) / 32
        )

    def decode(outputs):
        calls["decode"] += 1
        probs = outputs[0].softmax(-1)
        return [Detections(b.double().numpy(), p.max(-1).values.double().numpy(), p.argmax(-1).numpy())
                for p, b in zip(probs, outputs[1])]  # fmt: skip

    data = canvases(200, 40)
    data.task = Detection(loss=loss, decode=decode, image_size=(32, 32))
    ek.Pipeline(Slots(), Slots(), data, [ek.Train(epochs=2, lr=0.003)], out_dir=tmp_path / "run", export=[],
                quiet=True).run()  # fmt: skip
    row = json.loads((tmp_path / "run" / "report.json").read_text())["ledger"][-1]
    assert row["metric"] == "map50" and row["test_metrics"]["map50"] == row["test_score"]
    assert row["test_accuracy"] is None
    assert calls["loss"] >= 10 and calls["decode"] > 0  # two epochs of its loss on 5+ batches; judged by its decode


@pytest.mark.slow
def test_a_two_output_detector_goes_through_distill_prune_qat_and_both_files_by_name(tmp_path):
    data = canvases()
    torch.manual_seed(0)
    teacher = CenterHead(8)
    ek.pretrain(teacher, data, ek.TrainConfig(epochs=4, lr=0.01), seed=0, device="cpu", use_cache=False, quiet=True)
    stages = [ek.Distill(epochs=3, lr=0.01), ek.Prune(ratio=0.25, epochs=1, round_to=None), ek.Quantize(epochs=1)]
    ek.Pipeline(teacher, CenterHead(8), data, stages, out_dir=tmp_path / "run", export=["onnx", "tflite"],
                quiet=True).run()  # fmt: skip
    rows = {row["stage"]: row for row in json.loads((tmp_path / "run" / "report.json").read_text())["ledger"]}
    assert rows["teacher"]["metric"] == "map50" and rows["teacher"]["test_score"] > 0.3
    assert rows["distill"]["test_score"] > 0.2 and rows["distill"]["test_accuracy"] is None
    for fmt in ("onnx", "tflite"):
        manifest = json.loads((tmp_path / "run" / "artifacts" / f"model.{fmt}.json").read_text())
        assert [o["model_output"] for o in manifest["outputs"]] == ["heatmap", "boxes"]
        assert [o["name"] for o in manifest["outputs"]] == ["heatmap", "boxes"]
        assert manifest["parity"]["precision"] == "int8" and manifest["parity"]["rule"].startswith("detections")
        assert manifest["task"]["task"] == "detection" and manifest["task"]["image_size"] == [32, 32]
        # mAP of the file, in its runtime, within a few points of the INT8 model's
        assert abs(manifest["metrics"]["map50"] - rows["quantize"]["test_score"]) < 0.05
        assert manifest["metrics"]["map50"] == pytest.approx(rows[fmt]["test_score"])
    files = [tmp_path / "run" / "artifacts" / f"model.{fmt}" for fmt in ("onnx", "tflite")]
    bench = ek.bench.run(files, ["cpu"], data=data, quiet=True, runs=2, min_s=0.0)
    measured = [entry for entry in bench["results"] if entry["status"] == "ok"]
    assert {entry["artifact"] for entry in measured} == {"model.onnx", "model.tflite"}
    for entry in measured:  # the bench decodes both outputs of each file: the same mAP as the export
        assert entry["metrics"]["metric"] == "map50"
        assert entry["metrics"]["value"] == pytest.approx(rows[entry["artifact"].split(".")[-1]]["test_score"])
    masks = ek.data.source("digit-canvases")(train=20, test=8, size=32, max_digits=1)  # the wrong data for it
    wrong = ek.bench.run(files[:1], ["cpu"], data=masks, quiet=True, runs=2, min_s=0.0)["results"]
    assert wrong and all(e["status"] == "error" and "at the masks' resolution" in e["error"] for e in wrong)


def slot_loss(outputs, y):
    """A user's loss for a recipe to name (``test_detection:slot_loss``)."""
    return outputs[0].float().pow(2).mean()


def slot_decode(outputs):
    return [Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)) for _ in outputs[0]]


def _canvas_recipe(tmp_path, task: str) -> str:
    recipe = tmp_path / "detect.yaml"
    recipe.write_text(
        "data: {source: digit-canvases, train: 40, test: 8, size: 32, max_digits: 1, targets: boxes}\n"
        f"{task}teacher: {{model: centernet, args: {{width: 4}}}}\nstudent: {{model: centernet, args: {{width: 4}}}}\n"
        "stages: [{distill: {epochs: 1}}]\nexport: [onnx]\ndevice: cpu\n"
    )
    return str(recipe)


def test_a_recipe_reads_detection_from_its_boxes_and_names_a_heads_functions_or_is_refused(tmp_path, capsys):
    from edgekd.cli.main import main
    from edgekd.recipe import schema

    data = schema.build_data(schema.load(_canvas_recipe(tmp_path, "")))
    assert data.task.name == "detection" and data.task.builtin_head and data.task.image_size == (32, 32)
    named = "task: {name: detection, loss: 'test_detection:slot_loss', decode: 'test_detection:slot_decode'}\n"
    task = schema.build_data(schema.load(_canvas_recipe(tmp_path, named))).task
    assert task.user_loss is slot_loss and task.user_decode is slot_decode and task.image_size == (32, 32)
    for extra, message in [
        ("task: {name: detection, loss: 'nowhere.at_all:f', decode: 'x:y'}\n", "cannot import module 'nowhere.at_all'"),
        ("task: {name: detection, loss: 'test_detection:slot_loss'}\n", "give loss and decode together"),
        ("task: detection\nmonitor: miou\n", "monitor: 'miou' is not a detection metric"),
    ]:
        assert main(["run", _canvas_recipe(tmp_path, extra), "--out-dir", str(tmp_path / "x"), "--quiet"]) in (1, 2)
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x").exists()
