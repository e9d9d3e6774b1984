"""Every public Python entry point, fed the wrong inputs users bring: each call stops with one of
edgekd's own errors, in one line that names the problem, and writes nothing. The CLI's own sweep is
``test_bad_inputs.py``; a public name added without cases here fails ``test_every_entry_point_is_swept``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from own_words import assert_own_words
from torch import nn

import edgekd as ek
from edgekd.errors import EdgekdError

X = np.random.default_rng(0).normal(size=(40, 8)).astype("float32")
Y = np.arange(40) % 3


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


@pytest.fixture(scope="module")
def data():
    return ek.data.from_arrays(X, Y, X, Y, batch_size=8)


def _arrays(**changes) -> Callable:
    args = {"x_train": X, "y_train": Y, "x_test": X, "y_test": Y, **changes}
    return lambda d, tmp: ek.data.from_arrays(**args)


def _pipeline(**changes) -> Callable:
    def build(d, tmp):
        args = {"teacher": _mlp(), "student": _mlp(), "data": d, "stages": [ek.Distill(epochs=1)],
                "out_dir": tmp / "run", "quiet": True, **changes}  # fmt: skip
        return ek.Pipeline(**args).run()

    return build


def _into_a_file(d, tmp):
    return ek.Pipeline(_mlp(), _mlp(), d, [ek.Distill(epochs=1)], out_dir=tmp / "notes.txt", quiet=True).run()


def _onnx(model=None, example=None, name: str = "m.onnx", **options) -> Callable:
    def export(d, tmp):
        return ek.export.to_onnx(model if model is not None else _mlp(), example, tmp / name, **options)

    return export


def _bad_soft_labels(d, tmp):
    (tmp / "bad.npz").write_text("not an archive")
    return ek.teachers.soft_labels(tmp / "bad.npz")


def _bad_npz(d, tmp):
    (tmp / "bad.npz").write_text("not an archive")
    return ek.data.from_npz(tmp / "bad.npz")


def _bad_json(d, tmp):
    (tmp / "bad.json").write_text("{")
    return ek.report.load_report(tmp / "bad.json")


ONE_BATCH = torch.zeros(1, 8)

# entry point -> {case: (call(data, tmp), what the one line must say)}
CASES: dict[str, dict[str, tuple[Callable, str]]] = {
    "tasks.get": {
        "unknown name": (lambda d, tmp: ek.tasks.get("ranking"), "unknown task 'ranking'"),
        "not a task": (lambda d, tmp: ek.tasks.get(3), "task: expected a name (classification"),
        "monitor the task lacks": (lambda d, tmp: ek.tasks.get("regression", monitor="accuracy"),
                                   "monitor: 'accuracy' is not a regression metric; it has rmse, mae, r2"),
        "unknown option": (lambda d, tmp: ek.tasks.get("regression", scale=2), "task 'regression': "),
        "unknown loss": (lambda d, tmp: ek.tasks.get("regression", loss="cosh"), "loss: regression takes mse, l1"),
    },
    "tasks.infer": {
        "3-d floats": (lambda d, tmp: ek.tasks.infer(np.full((4, 2, 2), 0.5)), "fit no built-in task"),
        "NaN": (lambda d, tmp: ek.tasks.infer(np.array([np.nan, 1.0])), "targets hold NaN or Inf"),
    },
    "data.from_arrays": {
        "None inputs": (_arrays(x_train=None), "x_train: expected an array of samples, got NoneType"),
        "NaN inputs": (_arrays(x_train=np.full_like(X, np.nan)), "x_train: 320 values are NaN or Inf"),
        "labels of another length": (_arrays(y_train=Y[:5]), "inputs and labels differ in length"),
        "text labels": (_arrays(y_train=np.array(["cat"] * 40)), "y_train: targets must be numbers"),
        "float labels for classes": (_arrays(y_train=Y + 0.5, task="classification"), "labels hold non-integer"),
        "unknown task": (_arrays(task="ranking"), "unknown task 'ranking'"),
        "multilabel values": (_arrays(y_train=np.full((40, 3), 2), task="multilabel"), "must be 0 or 1, got 2"),
        "mask shape": (_arrays(task="segmentation"), "segmentation masks must be (samples, height, width)"),
        "one sample": (_arrays(x_train=X[:1], y_train=Y[:1]), "1 training sample(s) cannot be split"),
        "val_fraction": (_arrays(val_fraction=1.5), "val_fraction: must be in (0, 1), got 1.5"),
        "test of another width": (_arrays(x_test=X[:, :4]), "train and test inputs differ in shape"),
    },
    "data.from_loaders": {
        "not a loader": (lambda d, tmp: ek.data.from_loaders(5), "train: expected a loader"),
        "no validation": (lambda d, tmp: ek.data.from_loaders([(torch.zeros(2, 8), torch.zeros(2))]),
                          "give a validation loader too"),
    },
    "data.from_npz": {
        "missing": (lambda d, tmp: ek.data.from_npz(tmp / "none.npz"), "does not exist"),
        "not an archive": (_bad_npz, "is not a readable .npz file"),
    },
    "data.image_folder": {
        "missing": (lambda d, tmp: ek.data.image_folder(tmp / "none"), "does not exist"),
        "test_fraction": (lambda d, tmp: ek.data.image_folder(tmp, test_fraction=0), "test_fraction: must be in"),
    },
    "data.digits": {"test_fraction": (lambda d, tmp: ek.data.digits(test_fraction=1.0), "test_fraction")},
    "data.mnist": {"negative limit": (lambda d, tmp: ek.data.mnist(limit_train=-1), "limit_train")},
    "data.fashion_mnist": {"negative limit": (lambda d, tmp: ek.data.fashion_mnist(limit_test=0), "limit_train")},
    "data.from_named_arrays": {
        "not named": (lambda d, tmp: ek.data.from_named_arrays(X, Y, X, Y), "train"),
    },
    "data.read_table": {
        "missing": (lambda d, tmp: ek.data.read_table(tmp / "none.csv", "text", "label"), "does not exist"),
    },
    "data.text": {
        "labels short": (lambda d, tmp: ek.data.text(["a b", "c"], [0], tokenizer="words"), "2 texts but 1 labels"),
        "unknown tokenizer": (lambda d, tmp: ek.data.text(["a", "b"], [0, 1], tokenizer="nosuch"), "'nosuch'"),
    },
    "data.text_file": {"missing": (lambda d, tmp: ek.data.text_file(tmp / "none.csv", "words"), "does not exist")},
    "data.corpus": {"unknown": (lambda d, tmp: ek.data.corpus("nosuch", "words"), "unknown corpus 'nosuch'")},
    "data.source": {"unknown": (lambda d, tmp: ek.data.source("cifar"), "unknown data source 'cifar'")},
    "models.get": {
        "unknown name": (lambda d, tmp: ek.models.get("resnet9000"), "unknown model 'resnet9000'"),
        "unknown argument": (lambda d, tmp: ek.models.get("hinton-student", bogus=3), "takes no argument 'bogus'"),
    },
    "models.from_teacher_layers": {
        "no blocks": (lambda d, tmp: ek.models.from_teacher_layers(_mlp()), "no list of repeated blocks"),
    },
    "models.smaller": {"not Hugging Face": (lambda d, tmp: ek.models.smaller(_mlp(), n_layer=1), "no Hugging Face")},
    "models.files.load_model": {
        "missing": (lambda d, tmp: ek.models.files.load_model(_mlp(), tmp / "none.pt"), "does not exist"),
    },
    "TrainConfig": {
        "text epochs": (lambda d, tmp: ek.TrainConfig(epochs="3"), "epochs: expected int, got str '3'"),
        "negative epochs": (lambda d, tmp: ek.TrainConfig(epochs=-1), "epochs: must be >= 0"),
    },
    "Train": {"schedule": (lambda d, tmp: ek.Train(schedule="linear"), "schedule: must be one of")},
    "Distill": {
        "alpha": (lambda d, tmp: ek.Distill(alpha=3), "alpha: must be in [0, 1]"),
        "text lr": (lambda d, tmp: ek.Distill(lr="fast"), "lr: expected float, got str"),
        "feature loss": (lambda d, tmp: ek.Distill(feature_loss="l7"), "unknown feature loss 'l7'"),
        "features not a dict": (lambda d, tmp: ek.Distill(features=["fc"]), "features: expected dict[str, str]"),
    },
    "MutualDistill": {"peers": (lambda d, tmp: ek.MutualDistill(peers=-1), "peers")},
    "BornAgain": {"generations": (lambda d, tmp: ek.BornAgain(generations="2"), "generations: expected int")},
    "SelfDistill": {"heads": (lambda d, tmp: ek.SelfDistill(heads="fc"), "heads: expected list[str]")},
    "AdversarialDistill": {"weight": (lambda d, tmp: ek.AdversarialDistill(adversarial_weight="x"), "expected float")},
    "Prune": {
        "ratio": (lambda d, tmp: ek.Prune(ratio=1.5), "ratio: must be in [0, 1)"),
        "ignore as text": (lambda d, tmp: ek.Prune(ignore="fc"), "ignore: expected list[str] | None, got str"),
        "importance": (lambda d, tmp: ek.Prune(importance="random"), "importance: must be one of"),
    },
    "Quantize": {
        "exclude as text": (lambda d, tmp: ek.Quantize(exclude="fc"), "exclude: expected list[str], got str"),
        "min_kept": (lambda d, tmp: ek.Quantize(min_kept=2), "min_kept: must be in [0, 1]"),
    },
    "TrimVocabulary": {"min_count": (lambda d, tmp: ek.TrimVocabulary(min_count=0), "min_count")},
    "Pipeline": {
        "array as data": (_pipeline(data=X), "a single ndarray has no validation split"),
        "teacher as a path": (_pipeline(teacher="teacher.pt"), "'teacher.pt' holds weights, not a model"),
        "teacher as a number": (_pipeline(teacher=3), "teacher: expected a torch.nn.Module, an exported file"),
        "no teacher": (_pipeline(teacher=[]), "teacher: give a module, an exported file, a function or soft labels"),
        "stage class": (_pipeline(stages=[ek.Distill]), "stages[0] is the class Distill; give an instance"),
        "stage name": (_pipeline(stages=["distill"]), "stages[0] (str) has no name and run"),
        "unknown format": (_pipeline(export=["onx"]), "did you mean 'onnx'"),
        "unknown target": (_pipeline(export=["onnx"], targets=["phone"]), "unknown target 'phone'"),
        "unknown device": (_pipeline(device="tpu"), "device: 'tpu' is not a device"),
        "out_dir is a file": (_into_a_file, "notes.txt' is a file, not a folder"),
        "wrong classes": (_pipeline(student=nn.Linear(8, 5)), "outputs (2, 5) but data 'arrays' has 3 classes"),
        "wrong inputs": (_pipeline(student=nn.Linear(4, 3)), "student (Linear) cannot take inputs of shape (8,)"),
    },
    "teachers.from_file": {
        "not a model file": (lambda d, tmp: ek.teachers.from_file(tmp / "t.txt"), "not a model file edgekd can run"),
        "missing": (lambda d, tmp: ek.teachers.from_file(tmp / "t.onnx"), "teacher file '"),
    },
    "teachers.from_function": {
        "not callable": (lambda d, tmp: ek.teachers.from_function(3), "expected a callable or 'package.module:"),
        "takes": (lambda d, tmp: ek.teachers.from_function(abs, takes="jax"), "takes: must be 'numpy' or 'torch'"),
        "gives": (lambda d, tmp: ek.teachers.from_function(abs, gives="scores"), "gives: must be one of auto"),
        "budget": (lambda d, tmp: ek.teachers.from_function(abs, max_queries=0), "max_queries: must be a whole number"),
    },
    "teachers.soft_labels": {"not an archive": (_bad_soft_labels, "not a readable .npz file (not an archive of plain")},
    "teachers.save_soft_labels": {
        "top_k": (lambda d, tmp: ek.teachers.save_soft_labels(_mlp(), d, tmp / "s.npz", top_k=3), "top_k: must be in"),
    },
    "teachers.as_teacher": {"a class": (lambda d, tmp: ek.teachers.as_teacher(nn.Linear), "got type")},
    "pretrain": {
        "array as data": (lambda d, tmp: ek.pretrain(_mlp(), X, ek.TrainConfig(epochs=1)), "a single ndarray"),
        "unknown config key": (lambda d, tmp: ek.pretrain(_mlp(), d, {"epoch": 1}), "config: unknown key 'epoch'"),
        "model of another width": (lambda d, tmp: ek.pretrain(nn.Linear(4, 3), d, ek.TrainConfig(epochs=1),
                                                              cache_dir=tmp), "cannot take inputs of shape (8,)"),
    },
    "evaluate": {
        "batches without labels": (lambda d, tmp: ek.evaluate(_mlp(), [torch.zeros(2, 8)]), "a batch needs labels"),
        "model of another width": (lambda d, tmp: ek.evaluate(nn.Linear(4, 3), d.test), "Linear cannot take"),
    },
    "select_output": {"not a model": (lambda d, tmp: ek.select_output("model.pt", "logits"), "expected a torch.nn")},
    "export.to_onnx": {
        "no example": (_onnx(example=None), "example: expected one input batch"),
        "example of another width": (_onnx(example=torch.zeros(1, 4)), "cannot run on the example of shape (4,)"),
        "not a model": (_onnx(model="model.pt", example=ONE_BATCH), "model: expected a torch.nn.Module, got str"),
        "wrong suffix": (_onnx(example=ONE_BATCH, name="m.tflite"), "needs the '.onnx' suffix"),
        "activations": (_onnx(example=ONE_BATCH, activations="int4"), "activations: must be one of"),
    },
    "export.to_tflite": {
        "io": (lambda d, tmp: ek.export.to_tflite(_mlp(), ONE_BATCH, tmp / "m.tflite", io="int4"), "io: must be"),
    },
    "export.to_executorch": {
        "not a model": (lambda d, tmp: ek.export.to_executorch("m.pt", ONE_BATCH, tmp / "m.pte"), "expected a torch"),
    },
    "export.export_file": {
        "unknown format": (lambda d, tmp: ek.export.export_file("onx", _mlp(), ONE_BATCH, tmp / "m.onnx"), "'onx'"),
    },
    "bench.run": {
        "missing file": (lambda d, tmp: ek.bench.run([tmp / "none.onnx"], quiet=True), "nothing to benchmark"),
        "not a model file": (lambda d, tmp: ek.bench.run([tmp / "notes.txt"], quiet=True), "nothing to benchmark"),
        "unknown target": (lambda d, tmp: ek.bench.run([tmp / "m.onnx"], ["phone"]), "unknown target 'phone'"),
    },
    "bench.load_target": {"unknown": (lambda d, tmp: ek.bench.load_target("phone"), "unknown target 'phone'")},
    "report.write_report": {
        "not a report": (lambda d, tmp: ek.report.write_report([], tmp / "out"), "expected the dict edgekd.bench"),
        "another dict": (lambda d, tmp: ek.report.write_report({"a": 1}, tmp / "out"), "not an edgekd benchmark"),
    },
    "report.compare": {"not reports": (lambda d, tmp: ek.report.compare({}, {}), "report A: not an edgekd benchmark")},
    "report.load_report": {
        "missing": (lambda d, tmp: ek.report.load_report(tmp / "none.json"), "no report.json there"),
        "not JSON": (_bad_json, "not valid JSON"),
    },
}  # fmt: skip

# Public names that take no user input worth sweeping (classes users subclass, version strings, registries).
NOT_ENTRY_POINTS = {
    "__version__", "PipelineResult", "RunContext", "Stage", "register_stage", "seed_everything", "Trainer",
    "bench", "catalog", "data", "errors", "export", "models", "outputs", "quantize", "report", "modelfile", "tasks",
    "teachers",
}  # fmt: skip


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


@pytest.mark.parametrize(
    "entry, case", [(entry, case) for entry, cases in CASES.items() for case in cases], ids=lambda v: str(v)
)
def test_a_wrong_input_is_one_line_in_our_words_and_writes_nothing(data, tmp_path, entry, case):
    call, said = CASES[entry][case]
    (tmp_path / "m.onnx").write_bytes(b"an earlier file")
    (tmp_path / "notes.txt").write_text("an earlier note")
    before = _snapshot(tmp_path)
    with pytest.raises(EdgekdError) as refused:
        call(data, tmp_path)
    message = str(refused.value)
    assert said in message, message
    assert_own_words(message)
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing earlier touched
    assert not set(after) - set(before) - {"bad.npz", "bad.json"}, sorted(after)  # nothing half-written


def test_every_entry_point_is_swept():
    public = {name for name in ek.__all__ if name not in NOT_ENTRY_POINTS}
    for module in ("data", "export", "bench", "report", "teachers"):
        names = getattr(ek, module).__all__
        public |= {f"{module}.{n}" for n in names if callable(getattr(getattr(ek, module), n)) and not n[0].isupper()}
    public |= {"models.get", "models.from_teacher_layers", "models.smaller", "models.files.load_model", "tasks.get",
               "tasks.infer"}  # fmt: skip
    unswept = sorted(public - set(CASES) - HELPERS)
    assert not unswept, f"public entry points without wrong-input cases: {unswept}"


# helpers that take what edgekd itself built (bundles, loaders, artifacts), not what users bring
HELPERS = {"bench.builtin_names", "data.dataset_size", "data.example_inputs", "data.first_samples",
           "data.random_shift", "data.source_names", "data.load_idx_split", "data.load_mnist_arrays",
           "export.runtime_accuracy", "teachers.answers_any_input", "teachers.is_queried"}  # fmt: skip
