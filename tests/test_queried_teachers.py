"""Teachers seen only through their answers: an exported file, a function, soft labels on disk.

Each teaches through the same objective as a module; each sample is asked about once per run; what needs the
teacher's layers, a missing file or a budget too small for the data is refused in one line before training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import edgekd as ek
from edgekd.data.sources import first_samples
from edgekd.errors import CheckpointError, ConfigError, EdgekdError
from edgekd.recipe import schema


def _teacher() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 144, 4))


def _student() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 144, 4))


@pytest.fixture(scope="module")
def trained(tiny_images) -> nn.Module:
    torch.manual_seed(0)
    teacher = _teacher()
    ek.Trainer(ek.TrainConfig(epochs=2, lr=1e-2), quiet=True).fit(teacher, tiny_images)
    return teacher.eval()


@pytest.fixture(scope="module")
def teacher_file(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "teacher.onnx"
    return ek.export.to_onnx(trained, torch.zeros(2, 1, 12, 12), path).path


def _samples(data) -> int:
    return sum(loader.dataset_size for loader in (data.train, data.val, data.test))


def _run(teacher, data, tmp_path, stages=None, **options) -> dict:
    stages = stages or [ek.Distill(epochs=2, lr=1e-2), ek.Distill(epochs=1, lr=1e-3, name="again")]
    pipe = ek.Pipeline(teacher=teacher, student=_student(), data=data, stages=stages, out_dir=tmp_path / "run",
                       quiet=True, **options)  # fmt: skip
    return pipe.run().report


def test_an_onnx_file_teaches_in_its_runtime_and_each_sample_is_asked_once(
    trained, teacher_file, tiny_images, tmp_path
):
    report = _run(str(teacher_file), tiny_images, tmp_path)
    rows = {row["stage"]: row for row in report["ledger"]}
    teacher = rows["teacher"]
    assert teacher["test_accuracy"] == pytest.approx(ek.evaluate(trained, tiny_images.test), abs=0.01)
    assert teacher["params"] is None and teacher["size_bytes"] == teacher_file.stat().st_size
    assert "file teacher.onnx" in teacher["notes"] and rows["distill"]["test_accuracy"] > 0.8
    # every distinct sample once across both stages, their epochs and the evaluations: no more
    assert report["teacher_queries"]["teacher"]["queries"] == _samples(tiny_images)
    assert rows["distill"]["details"]["teacher_queries"] == tiny_images.train.dataset_size
    assert (
        rows["again"]["details"]["teacher_queries"] == 0 and "| - | - |" in (tmp_path / "run" / "report.md").read_text()
    )
    resumed = ek.teachers.from_file(teacher_file)  # a resumed run reads the answers back: nothing asked twice
    resumed.load_answers(tmp_path / "run" / "teacher_answers" / "teacher.npz")
    x, _ = first_samples(tiny_images.test, 64)
    assert torch.equal(resumed(x), ek.teachers.from_file(teacher_file)(x)) and resumed.queries == _samples(tiny_images)


def test_a_function_on_numpy_batches_mixes_with_a_module_and_its_probabilities_are_read_as_such(
    trained, tiny_images, tmp_path
):
    calls = []

    def service(batch: np.ndarray) -> list:  # a client: numpy in, JSON-like rows of probabilities out
        calls.append(len(batch))
        with torch.no_grad():
            return torch.softmax(trained(torch.from_numpy(batch)), 1).tolist()

    report = _run([trained, service], tiny_images, tmp_path, teacher_weights=[1.0, 1.0])
    rows = {row["stage"]: row for row in report["ledger"]}
    assert "read as log-probabilities" in rows["teacher[1]"]["notes"]
    assert rows["teacher[1]"]["test_accuracy"] == pytest.approx(rows["teacher[0]"]["test_accuracy"])
    assert sum(calls) == _samples(tiny_images) and rows["distill"]["test_accuracy"] > 0.8


def test_soft_labels_top_k_on_disk_teach_and_a_file_keyed_by_the_wrong_rows_is_caught(trained, tiny_images, tmp_path):
    path = ek.teachers.save_soft_labels(trained, tiny_images, tmp_path / "answers.npz", top_k=2)
    with np.load(path) as stored:
        assert stored["top_ids"].shape == (tiny_images.train.dataset_size, 2)
        shuffled = {k: stored[k] for k in stored.files}
    report = _run(str(path), tiny_images, tmp_path, stages=[ek.Distill(epochs=2, lr=1e-2)])
    rows = {row["stage"]: row for row in report["ledger"]}
    assert "top-2" in rows["teacher"]["notes"] and rows["teacher"]["details"]["agreement_with_training_labels"] > 0.9
    assert rows["teacher"]["test_accuracy"] is None and rows["distill"]["test_accuracy"] > 0.8
    shuffled["ids"] = np.random.default_rng(0).permutation(shuffled["ids"])
    np.savez(tmp_path / "shuffled.npz", **shuffled)
    report = _run(str(tmp_path / "shuffled.npz"), tiny_images, tmp_path / "again", stages=[ek.Distill(epochs=1)])
    assert "agrees with the training labels at chance" in report["ledger"][0]["notes"]


def test_soft_labels_that_miss_training_samples_or_do_not_fit_the_classes_are_refused(trained, tiny_images, tmp_path):
    path = ek.teachers.save_soft_labels(trained, tiny_images, tmp_path / "full.npz")
    with np.load(path) as stored:
        ids, logits = stored["ids"], stored["logits"]
    np.savez(tmp_path / "part.npz", ids=ids[:-3], logits=logits[:-3])
    with pytest.raises(ConfigError, match=r"cover 429 of the 432 training samples \(missing e.g. sample"):
        _run(str(tmp_path / "part.npz"), tiny_images, tmp_path)
    np.savez(tmp_path / "wide.npz", ids=ids, probabilities=np.full((len(ids), 5), 0.2, np.float32))
    with pytest.raises(ConfigError, match=r"rows of \(5,\) for data with 4 classes"):
        _run(str(tmp_path / "wide.npz"), tiny_images, tmp_path)
    np.savez(tmp_path / "both.npz", logits=logits, probabilities=np.exp(logits))
    with pytest.raises(ConfigError, match="more than one of logits"):
        ek.teachers.soft_labels(tmp_path / "both.npz")


def test_what_needs_the_teachers_insides_or_a_larger_budget_says_so_before_training(
    trained, teacher_file, tiny_images, tmp_path
):
    with pytest.raises(ConfigError, match=r"feature distillation .* reads the teacher's layers.*file teacher.onnx"):
        _run(str(teacher_file), tiny_images, tmp_path, stages=[ek.Distill(features={"0": "0"})])
    with pytest.raises(ConfigError, match="teacher_learns .* reads the teacher's layers"):
        _run(str(teacher_file), tiny_images, tmp_path, stages=[ek.MutualDistill(teacher_learns=True, peers=0)])
    budget = ek.teachers.from_file(teacher_file, max_queries=100)
    with pytest.raises(ConfigError, match=r"max_queries=100 is fewer than the 640 distinct samples"):
        _run(budget, tiny_images, tmp_path)
    with pytest.raises(ConfigError, match="bench_teacher: the teacher is function .* no file to measure"):
        _run(lambda x: x, tiny_images, tmp_path, export=["onnx"], targets=["cpu"], bench_teacher=True)
    assert not (tmp_path / "run").exists()


def test_a_budget_passed_mid_run_stops_before_the_query_is_sent(teacher_file, tiny_images):
    teacher = ek.teachers.from_file(teacher_file, max_queries=40)
    x, _ = first_samples(tiny_images.test, 64)
    assert teacher(x[:30]).shape == (30, 4) and teacher(x[:30]).shape == (30, 4)  # the second time from memory
    with pytest.raises(ek.teachers.QueryBudgetError, match=r"20 more queries would pass max_queries=40 \(30 asked"):
        teacher(x[10:50])
    assert teacher.queries == 30


def test_a_file_fed_samples_of_another_shape_names_both_shapes(teacher_file):
    with pytest.raises(ConfigError, match=r"takes \w+ samples of shape 1x12x12, the data gives 1x8x8"):
        ek.teachers.from_file(teacher_file)(torch.zeros(3, 1, 8, 8))


@pytest.mark.parametrize(
    ("teacher", "message"),
    [
        ("weights.pt", "holds weights, not a model: build the model"),
        ("model.h5", "a .h5 file, which edgekd cannot run"),
        ("missing.onnx", "teacher file 'missing.onnx' does not exist"),
        (42, "expected a torch.nn.Module, an exported file"),
        ({"file": "t.onnx", "function": "m:f"}, "give exactly one of file, function, outputs"),
        ({"function": "no_such_module_xyz:fn"}, "cannot be imported"),
        ({"function": "math:pi"}, "is not callable"),
        ({"outputs": "a.npz", "max_queries": 3}, r"teacher.max_queries: not an option of a outputs teacher"),
    ],
)
def test_a_teacher_that_cannot_be_queried_is_one_line(teacher, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.npz").write_bytes(b"")
    with pytest.raises(ConfigError, match=message):
        ek.teachers.as_teacher(teacher)


def test_a_broken_service_and_a_wrong_answer_shape_name_the_teacher(tiny_images):
    x = next(iter(tiny_images.test))[0][:4]

    def down(batch):
        raise ConnectionError("503 Service Unavailable")

    with pytest.raises(EdgekdError, match=r"teacher down failed on a batch of 4: ConnectionError: 503"):
        ek.teachers.from_function(down)(x)
    with pytest.raises(EdgekdError, match=r"asked about 4 samples, answered \(3, 4\)"):
        ek.teachers.from_function(lambda batch: np.zeros((3, 4)))(x)
    with pytest.raises(ConfigError, match="if it takes torch, say takes='torch'"):
        ek.teachers.from_function(lambda batch: batch.softmax(1))(x)
    assert ek.teachers.from_function(lambda batch: batch.flatten(1)[:, :4], takes="torch")(x).shape == (4, 4)


def test_recipes_take_a_file_a_function_or_soft_labels_and_refuse_a_file_as_a_checkpoint(teacher_file, tmp_path):
    base = {"data": "digits", "student": "mnist-mobilenet", "stages": [{"distill": {"epochs": 1}}]}
    spec = schema.parse({**base, "teacher": {"file": str(teacher_file), "max_queries": 5000, "weight": 2.0}})
    built = schema.build_model(spec.teachers[0], "teacher")
    assert isinstance(built, ek.teachers.FileTeacher) and built.max_queries == 5000 and spec.teachers[0].weight == 2
    assert isinstance(schema.build_model(schema.parse({**base, "teacher": str(teacher_file)}).teachers[0], "t"),
                      ek.teachers.FileTeacher)  # fmt: skip
    spec = schema.parse({**base, "teacher": {"function": "numpy:tanh", "takes": "torch"}})
    assert schema.build_model(spec.teachers[0], "teacher").takes == "torch"
    refusal = r"teacher.checkpoint: .* is an exported .onnx file, not weights; pass it as teacher: \{file: "
    with pytest.raises(ConfigError, match=refusal):
        schema.parse({**base, "teacher": {"model": "mnist-resnet", "checkpoint": str(teacher_file)}})
    with pytest.raises(ConfigError, match="teacher.pretrain: not an option of a file teacher"):
        schema.parse({**base, "teacher": {"file": str(teacher_file), "pretrain": {"epochs": 1}}})
    cut = {**base, "student": {"model": "teacher-layers"}, "teacher": {"file": str(teacher_file)}}
    with pytest.raises(ConfigError, match="teacher-layers .* reads the teacher's layers"):
        schema.build_model(schema.parse(cut).student, "student", schema.build_model(schema.parse(cut).teachers[0], "t"))


def test_a_whole_pickled_module_as_a_checkpoint_says_what_to_save_instead(tmp_path):
    torch.save(_teacher(), tmp_path / "whole.pt")
    with pytest.raises(CheckpointError, match=r"save model.state_dict\(\) instead .* or pass the module itself"):
        ek.models.checkpoint.load_weights(_teacher(), tmp_path / "whole.pt")
    assert json.dumps(str(tmp_path))  # the folder is left as it was: only the file written above
    assert [p.name for p in tmp_path.iterdir()] == ["whole.pt"]


class OnnxSession(nn.Module):
    """How users wrap a deployed file as a module: it teaches, but no exporter can write it."""

    def __init__(self, path) -> None:
        super().__init__()
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name = self.session.get_inputs()[0].name
        return torch.from_numpy(self.session.run(None, {name: x.detach().cpu().numpy()})[0])


def _quick_target():
    target = ek.bench.load_target("cpu")
    target.warmup_runs, target.warmup_s, target.runs, target.min_s, target.batch_sizes = 1, 0.0, 3, 0.0, [1]
    return target


@pytest.mark.slow
def test_a_teacher_file_goes_through_the_whole_chain_and_is_benchmarked_as_it_is(teacher_file, tiny_images, tmp_path):
    stages = [ek.Distill(epochs=2, lr=1e-2), ek.Prune(ratio=0.5, epochs=1, lr=5e-3), ek.Quantize(epochs=1)]
    report = _run(str(teacher_file), tiny_images, tmp_path, stages=stages, export=["onnx", "tflite"],
                  targets=[_quick_target()], bench_teacher=True)  # fmt: skip
    rows = {row["stage"]: row for row in report["ledger"]}
    assert rows["onnx"]["test_accuracy"] > 0.8 and rows["tflite"]["test_accuracy"] > 0.8
    assert report["teacher_queries"]["teacher"]["queries"] == _samples(tiny_images)  # prune and QAT asked nothing new
    assert (tmp_path / "run" / "artifacts" / "teacher.onnx").read_bytes() == teacher_file.read_bytes()
    from edgekd.report.document import teacher_against_shipped

    lines = teacher_against_shipped(report, target="cpu")
    assert len(lines) == 2 and all("teacher teacher.onnx" in line for line in lines)  # each shipped file against it


@pytest.mark.slow
def test_a_module_no_exporter_can_write_still_teaches_and_the_bench_says_it_is_left_out(
    teacher_file, tiny_images, tmp_path, capsys
):
    report = _run(OnnxSession(teacher_file), tiny_images, tmp_path, stages=[ek.Distill(epochs=1, lr=1e-2)],
                  export=["onnx"], targets=[_quick_target()], bench_teacher=True)  # fmt: skip
    assert report["status"] == "completed" and report["ledger"][-2]["test_accuracy"] > 0.8
    said = capsys.readouterr().err
    assert "bench_teacher: the teacher is left out of the onnx benchmark:" in said
    assert {r["artifact"] for r in report["bench"]["results"]} == {"model.onnx", "model.pt2"}


@pytest.mark.slow
def test_a_recipe_distills_from_a_teacher_file_on_the_command_line(tmp_path, capsys):
    from edgekd.cli.main import main

    digits = ek.data.digits()
    teacher = ek.models.get("hinton-teacher", in_features=64)
    ek.pretrain(teacher, digits, ek.TrainConfig(epochs=3), use_cache=False, quiet=True)
    path = ek.export.to_onnx(teacher.eval(), torch.zeros(2, 1, 8, 8), tmp_path / "digits-teacher.onnx").path
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"""
data: {{source: digits, batch_size: 64}}
teacher: {{file: {path}, max_queries: 5000}}
student: {{model: hinton-student, args: {{in_features: 64}}}}
stages: [{{distill: {{epochs: 2, temperature: 3}}}}]
export: [onnx]
out_dir: {tmp_path / "run"}
""")
    assert main(["run", str(recipe), "--quiet"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    rows = {row["stage"]: row for row in report["ledger"]}
    assert "queried, not trained here" in rows["teacher"]["notes"] and rows["onnx"]["test_accuracy"] > 0.8
    assert report["teacher_queries"]["teacher"]["queries"] <= 1797  # every digit at most once
    recipe.write_text(recipe.read_text().replace("max_queries: 5000", "max_queries: 500"))
    assert main(["run", str(recipe), "--quiet", "--out-dir", str(tmp_path / "small")]) == 2
    assert "max_queries=500 is fewer than the" in capsys.readouterr().err and not (tmp_path / "small").exists()
