"""The Pipeline end to end on small data, any nn.Module as teacher or student, and the CLI."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from torch import nn

import edgekd as ek
from edgekd.errors import ConfigError, DataError
from edgekd.models.checkpoint import load_weights
from edgekd.outputs import output_selection


def _teacher() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 144, 4))


def _student() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 144, 4))


def test_pipeline_runs_stages_and_writes_the_run_folder(tiny_images, tmp_path):
    teacher = _teacher()
    ek.Trainer(ek.TrainConfig(epochs=2, lr=1e-2), quiet=True).fit(teacher, tiny_images)
    pipe = ek.Pipeline(
        teacher=teacher,
        student=_student(),
        data=tiny_images,
        stages=[
            ek.Distill(epochs=2, lr=1e-2, features={"0": "0"}, feature_loss="mse"),
            ek.Distill(epochs=1, features={"1": "1"}, feature_loss="attention", name="attention"),
        ],
        out_dir=tmp_path / "run",
        quiet=True,
    )
    result = pipe.run()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report == result.report and report["status"] == "completed" and report["schema_version"] == 1
    stages = [row["stage"] for row in report["ledger"]]
    assert stages == ["teacher", "student", "distill", "attention"]
    final = report["ledger"][-1]
    assert final["test_accuracy"] > 0.8 and final["params"] == sum(p.numel() for p in result.model.parameters())
    assert report["ledger"][2]["details"]["adapters"] == 1
    assert report["ledger"][2]["details"]["teacher_cache"] == "on"
    assert "| distill | stage |" in (tmp_path / "run" / "report.md").read_text()
    checkpoint = tmp_path / "run" / "checkpoints" / "01-distill" / "model.pt"
    restored = load_weights(_student(), checkpoint)
    assert ek.evaluate(restored, tiny_images.test) == pytest.approx(report["ledger"][2]["test_accuracy"])
    hooks = [h for m in result.model.modules() for h in m._forward_hooks.values()]
    assert [output_selection(result.model)] == [h.edgekd_selector for h in hooks] == ["auto"]  # taps gone
    assert set(result.model.state_dict()) == set(_student().state_dict())


def test_ensemble_of_teachers_and_refusal_to_overwrite(tiny_images, tmp_path):
    teachers = [_teacher(), _teacher()]
    for t in teachers:
        ek.Trainer(ek.TrainConfig(epochs=1, lr=1e-2), quiet=True).fit(t, tiny_images)
    kwargs = dict(
        teacher=teachers,
        student=_student(),
        data=tiny_images,
        teacher_weights=[0.7, 0.3],
        stages=[ek.Distill(epochs=1)],
        out_dir=tmp_path / "run",
        quiet=True,
    )
    report = ek.Pipeline(**kwargs).run().report
    assert [r["stage"] for r in report["ledger"]][:2] == ["teacher[0]", "teacher[1]"]
    before = (tmp_path / "run" / "report.json").read_text()
    with pytest.raises(ConfigError, match="already holds a run"):
        ek.Pipeline(**kwargs).run()
    assert (tmp_path / "run" / "report.json").read_text() == before
    with pytest.raises(ConfigError, match="teacher_weights has 1 values for 2 teachers"):
        ek.Pipeline(**{**kwargs, "teacher_weights": [1.0]})


def test_a_model_that_does_not_fit_the_data_fails_before_training(tiny_images, tmp_path):
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(10, 4))
    with pytest.raises(DataError, match=r"student \(Sequential\) cannot take inputs of shape \(1, 12, 12\)"):
        ek.Pipeline(teacher=_teacher(), student=wrong, data=tiny_images, stages=[], out_dir=tmp_path).run()
    three_classes = nn.Sequential(nn.Flatten(), nn.Linear(144, 3))
    with pytest.raises(DataError, match="outputs \\(2, 3\\) but data 'quadrants' has 4 classes"):
        ek.Pipeline(teacher=three_classes, student=_student(), data=tiny_images, stages=[], out_dir=tmp_path).run()
    assert not (tmp_path / "report.json").exists()


def test_pipeline_rejects_objects_that_are_not_stages(tiny_images, tmp_path):
    with pytest.raises(ConfigError, match=r"stages\[0\] \(int\)"):
        ek.Pipeline(teacher=_teacher(), student=_student(), data=tiny_images, stages=[3], out_dir=tmp_path)


def test_a_custom_stage_plugs_in_without_touching_the_pipeline(tiny_images, tmp_path):
    class HalveWeights:
        name = "halve"

        def run(self, ctx, student):
            with torch.no_grad():
                for p in student.parameters():
                    p.mul_(0.5)
            ctx.record("halved", factor=0.5)
            return student

    result = ek.Pipeline(
        teacher=_teacher(), student=_student(), data=tiny_images, stages=[HalveWeights()], out_dir=tmp_path, quiet=True
    ).run()
    assert result.report["ledger"][-1]["notes"] == "halved"
    assert result.report["ledger"][-1]["details"] == {"factor": 0.5}


@pytest.mark.slow
def test_recipe_run_through_the_cli_with_teacher_pretraining_and_cache(tmp_path, monkeypatch, capsys):
    """The command line in this process (the demo's study runs it as a subprocess, as users type it)."""
    from edgekd.cli.main import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        textwrap.dedent("""
        data: {source: digits}
        teacher: {model: hinton-teacher, args: {in_features: 64}, pretrain: {epochs: 3}}
        student: {model: hinton-student, args: {in_features: 64}}
        stages: [{distill: {epochs: 2}}]
    """)
    )
    monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path / "cache"))
    for folder in ("a", "b"):
        assert main(["run", str(recipe), "--quiet", "--out-dir", str(tmp_path / folder)]) == 0, capsys.readouterr().err
    ledger_a = json.loads((tmp_path / "a" / "report.json").read_text())["ledger"]
    ledger_b = json.loads((tmp_path / "b" / "report.json").read_text())["ledger"]
    assert "trained on labels in this run" in ledger_a[0]["notes"]
    assert "loaded from cache" in ledger_b[0]["notes"]
    assert ledger_a[0]["test_accuracy"] == ledger_b[0]["test_accuracy"] > 0.9
    assert ledger_a[-1]["test_accuracy"] == pytest.approx(ledger_b[-1]["test_accuracy"])
    capsys.readouterr()
    assert main(["run", str(recipe), "--quiet", "--out-dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "Traceback" not in err


def test_torch_dataloaders_work_in_a_bundle(tiny_images, tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    def loader(source, shuffle):
        return DataLoader(TensorDataset(source.x, source.y), batch_size=32, shuffle=shuffle)

    bundle = ek.data.DataBundle(
        name="torch-loaders",
        train=loader(tiny_images.train, True),
        val=loader(tiny_images.val, False),
        test=loader(tiny_images.test, False),
        input_shape=(1, 12, 12),
        num_classes=4,
        labels=["a", "b", "c", "d"],
        mean=[0.0],
        std=[1.0],
    )
    report = (
        ek.Pipeline(
            teacher=_teacher(),
            student=_student(),
            data=bundle,
            stages=[ek.Distill(epochs=1)],
            out_dir=tmp_path,
            quiet=True,
        )
        .run()
        .report
    )
    assert report["data"]["train_size"] == tiny_images.train.dataset_size
    assert report["ledger"][-1]["details"]["teacher_cache"] == "off"


def test_a_failing_stage_leaves_a_report_that_says_where_it_stopped(tiny_images, tmp_path):
    class Broken:
        name = "broken"

        def run(self, ctx, student):
            raise ek.errors.TrainingError("loss is nan at epoch 1, step 2")

    pipe = ek.Pipeline(
        teacher=_teacher(),
        student=_student(),
        data=tiny_images,
        stages=[ek.Distill(epochs=1), Broken()],
        out_dir=tmp_path,
        quiet=True,
    )
    with pytest.raises(ek.errors.TrainingError):
        pipe.run()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed: loss is nan at epoch 1, step 2 (stage 2: broken)"
    assert [r["stage"] for r in report["ledger"]] == ["teacher", "student", "distill"]
    assert (tmp_path / "checkpoints" / "01-distill" / "model.pt").is_file()


def test_bench_teacher_needs_targets_to_measure_on(tiny_images, tmp_path):
    with pytest.raises(ConfigError, match="bench_teacher: the teacher is benchmarked beside the shipped files; add"):
        ek.Pipeline(_teacher(), _student(), tiny_images, [ek.Distill(epochs=1)], out_dir=tmp_path, bench_teacher=True)
