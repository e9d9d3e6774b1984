"""Every bad input gets one line that says what is wrong and where, a non-zero exit, no traceback,
and leaves what was written before intact. Each case runs through the CLI, as a user would meet it."""

from __future__ import annotations

import errno
import hashlib
import textwrap
from pathlib import Path

import pytest
import torch
from own_words import assert_own_words

from edgekd.cli.main import main
from edgekd.errors import StorageError

BASE = """
name: bad
data: {source: digits, batch_size: 64}
teacher: {model: hinton-teacher, args: {in_features: 64}, checkpoint: TEACHER}
student: {model: hinton-student, args: {in_features: 64}}
stages:
  - distill: {epochs: 1, features: {features: features}}
"""


@pytest.fixture()
def world(tmp_path):
    """A teacher checkpoint, and an earlier run whose files must survive every failed command."""
    from edgekd import models
    from edgekd.models.files import save_model

    teacher = tmp_path / "teacher.pt"
    save_model(models.get("hinton-teacher", in_features=64), teacher)
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    for name, text in {"report.json": '{"status": "completed"}', "student.pt": "weights", "run.json": "{}"}.items():
        (earlier / name).write_text(text)
    return {"tmp": tmp_path, "teacher": teacher, "earlier": earlier}


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _recipe(world, text: str) -> Path:
    path = world["tmp"] / "recipe.yaml"
    path.write_text(textwrap.dedent(text).replace("TEACHER", str(world["teacher"])))
    return path


def _fails(argv: list[str], capsys, message: str, code: int | None = None) -> str:
    if argv[0] == "run" and "--out-dir" not in argv:
        argv = [*argv, "--out-dir", str(Path(argv[1]).parent / "run")]  # never the working directory's runs/
    returned = main(argv)
    err = capsys.readouterr().err
    assert returned != 0 and (code is None or returned == code), err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("edgekd: error:")]
    assert lines and message in lines[0], err
    assert_own_words(lines[0])
    return err


RECIPE_CASES = {
    "unknown key": (BASE.replace("name: bad", "nmae: bad"), "unknown key 'nmae'; did you mean 'name'?"),
    "wrong type": (BASE.replace("epochs: 1", "epochs: one"), "stages[0].distill.epochs: expected int, got str"),
    "negative epochs": (BASE.replace("epochs: 1", "epochs: -2"), "stages[0].distill.epochs: must be >= 0, got -2"),
    "ratio out of range": (BASE + "  - prune: {ratio: 1.5}\n", "stages[1].prune.ratio: must be in [0, 1), got 1.5"),
    "yaml syntax": (BASE.replace("batch_size: 64}", "batch_size: 64"), "YAML syntax error at line"),
    "unknown stage": (BASE.replace("- distill:", "- distil:"), "unknown stage 'distil'; did you mean 'distill'?"),
    "unknown model": (BASE.replace("model: hinton-student", "model: hinton-studen"), "unknown model 'hinton-studen'"),
    "unknown data source": (BASE.replace("source: digits", "source: cifar"), "unknown data source 'cifar'"),
    "missing student": (BASE.replace("student: {model: hinton-student, args: {in_features: 64}}\n", ""),
                        "missing required key 'student'"),
    "unknown export format": (BASE + "export: [onx]\n", "unknown export format 'onx'; did you mean 'onnx'?"),
    "unknown target": (BASE + "export: [onnx]\ntargets: [phone]\n", "targets: unknown target 'phone'"),
    "quantize alpha": (BASE + "  - quantize: {alpha: 2}\n", "stages[1].quantize.alpha: must be in [0, 1], got 2"),
    "missing teacher checkpoint": (BASE.replace("TEACHER", "missing.pt"), "teacher.checkpoint: file 'missing.pt'"),
    "student tap": (BASE.replace("features: {features: features}", "features: {featurs: features}"),
                    "student module 'featurs' does not exist; nearest valid names: features"),
    "teacher tap": (BASE.replace("features: {features: features}", "features: {features: feature}"),
                    "teacher module 'feature' does not exist; nearest valid names: features"),
    "exclude unknown": (BASE + "  - quantize: {exclude: [fc9]}\n", "exclude module 'fc9' does not exist"),
    "wrong input shape": (BASE.replace("in_features: 64}}\nstages", "in_features: 784}}\nstages"),
                          "student (MLP) cannot take inputs of shape (1, 8, 8) from data 'digits'"),
    "classes do not match": (BASE.replace("in_features: 64}}\nstages", "in_features: 64, num_classes: 3}}\nstages"),
                             "student (MLP) outputs (2, 3) but data 'digits' has 10 classes"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(RECIPE_CASES))
def test_bad_recipes_and_models_fail_before_anything_is_written(world, capsys, case):
    text, message = RECIPE_CASES[case]
    before = _snapshot(world["earlier"])
    out = world["tmp"] / "new-run"
    _fails(["run", str(_recipe(world, text)), "--out-dir", str(out)], capsys, message)
    assert _snapshot(world["earlier"]) == before and not (out / "report.json").exists()


def test_missing_recipe_file(world, capsys):
    _fails(["run", str(world["tmp"] / "nope.yaml")], capsys, "nope.yaml", code=2)


def test_a_run_folder_holding_a_run_is_not_overwritten(world, capsys):
    before = _snapshot(world["earlier"])
    _fails(["run", str(_recipe(world, BASE)), "--out-dir", str(world["earlier"])], capsys, "already holds a run")
    assert _snapshot(world["earlier"]) == before


def test_truncated_teacher_checkpoint(world, capsys):
    broken = world["tmp"] / "broken.pt"
    broken.write_bytes(world["teacher"].read_bytes()[:200])
    _fails(
        ["run", str(_recipe(world, BASE.replace("TEACHER", str(broken))))], capsys, "is corrupt or not a weights file"
    )


def test_checkpoint_of_another_architecture_names_the_tensor_and_shapes(world, capsys):
    from edgekd import models

    other = world["tmp"] / "other.pt"  # a plain state dict: the architecture comes from the recipe
    torch.save(models.get("hinton-teacher", in_features=784).state_dict(), other)
    text = BASE.replace("TEACHER", str(other))
    err = _fails(["run", str(_recipe(world, text))], capsys, "features.2.weight")
    assert "(1200, 784)" in err and "(1200, 64)" in err


def test_a_checkpoint_that_would_run_code_is_refused(world, capsys):
    import pickle

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = world["tmp"] / "evil.pt"
    evil.write_bytes(pickle.dumps({"model": Payload()}))
    err = _fails(["run", str(_recipe(world, BASE.replace("TEACHER", str(evil))))], capsys, "evil.pt")
    assert "this must never run" not in capsys.readouterr().out + err


def _image_folder_recipe(world, folder: Path) -> Path:
    text = BASE.replace("{source: digits, batch_size: 64}", f"{{source: image_folder, path: {folder}}}")
    return _recipe(world, text)


def test_empty_image_folder(world, capsys):
    empty = world["tmp"] / "images"
    empty.mkdir()
    _fails(["run", str(_image_folder_recipe(world, empty))], capsys, "has no class subfolders")


def test_images_of_mixed_sizes(world, capsys):
    from PIL import Image

    root = world["tmp"] / "images"
    for label, size in (("a", (8, 8)), ("b", (10, 10))):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.new("L", size, color=i * 40).save(root / label / f"{i}.png")
    _fails(["run", str(_image_folder_recipe(world, root))], capsys, "images differ in size")


def test_nan_loss_stops_names_the_step_and_keeps_the_last_good_checkpoint(world, capsys):
    text = BASE.replace("{epochs: 1, features: {features: features}}", "{epochs: 2, lr: 1.0e+30, optimizer: sgd}")
    out = world["tmp"] / "nan-run"
    err = _fails(["run", str(_recipe(world, text)), "--out-dir", str(out)], capsys, "loss is")
    assert "at epoch 1, step" in err and "best.pt" in err
    assert (out / "checkpoints" / "01-distill" / "best.pt").is_file()
    assert "failed" in (out / "report.json").read_text()


@pytest.mark.slow
def test_an_op_the_converters_lack_names_the_op_and_the_module(world, capsys):
    text = BASE.replace("{model: hinton-student, args: {in_features: 64}}", "{model: 'bad_models:digamma_net'}")
    text = text.replace("{epochs: 1, features: {features: features}}", "{epochs: 0}") + "export: [onnx]\n"
    _fails(
        ["run", str(_recipe(world, text))], capsys, "ONNX conversion failed at op 'digamma' in module 'odd' (Digamma)"
    )


@pytest.fixture()
def onnx_file(world):
    from edgekd import export, models

    model = models.get("hinton-student", in_features=64).eval()
    return export.to_onnx(model, torch.zeros(2, 64), world["tmp"] / "ok.onnx").path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda folder, good: folder / "absent.onnx", "no such file"),
        (lambda folder, good: _truncated(folder, good), "ONNX Runtime cannot load it"),
        (lambda folder, good: _text(folder / "notes.onnx"), "ONNX Runtime cannot load it"),
        (lambda folder, good: _text(folder / "weights.bin"), "not a model file edgekd can benchmark"),
    ],
)
def test_bench_reports_a_bad_file_and_still_measures_the_good_one(world, onnx_file, capsys, make, message):
    bad = make(world["tmp"], onnx_file)
    out = world["tmp"] / "bench"
    argv = ["bench", str(bad), str(onnx_file), "--runs", "3", "--min-seconds", "0", "--quiet", "--out-dir", str(out)]
    _fails(argv, capsys, message, code=1)
    assert "| ok.onnx | cpu | onnx | 1 |" in (out / "report.md").read_text()


def _truncated(folder: Path, good: Path) -> Path:
    path = folder / "truncated.onnx"
    path.write_bytes(good.read_bytes()[:100])
    return path


def _text(path: Path) -> Path:
    path.write_text("not a model")
    return path


def test_bench_with_an_unknown_target_or_a_bad_target_file(world, onnx_file, capsys):
    _fails(["bench", str(onnx_file), "--target", "cpuu"], capsys, "unknown target 'cpuu'; did you mean 'cpu'", code=2)
    bad = world["tmp"] / "mine.toml"
    bad.write_text('name = "mine"\nthread = 1\n')
    _fails(["bench", str(onnx_file), "--target", str(bad)], capsys, "mine.toml: unknown key 'thread'", code=2)


def test_disk_full_while_writing_keeps_the_previous_file(world, monkeypatch):
    from edgekd.utils.fileio import atomic_write_text

    target = world["earlier"] / "report.json"
    before = target.read_bytes()

    def full(handle):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    from edgekd.utils.fileio import atomic_write

    with pytest.raises(StorageError, match="report.json failed: No space left on device; the previous file is intact"):
        atomic_write(target, full)
    assert (
        target.read_bytes() == before and [p.name for p in world["earlier"].iterdir() if p.name.startswith(".")] == []
    )
    atomic_write_text(target, '{"status": "completed"}')  # and the folder still takes a good write


@pytest.mark.slow
def test_disk_full_or_no_permission_while_exporting_keeps_the_previous_artifact(world, onnx_file, monkeypatch):
    import edgekd.export.artifact as artifact
    import edgekd.formats.onnx.writer as onnx_export
    from edgekd import export, models
    from edgekd.export import ExportError

    before = onnx_file.read_bytes()
    model = models.get("hinton-student", in_features=64).eval()

    def full(proto, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx_export.onnx, "save", full)
    with pytest.raises(
        ExportError, match="ok.onnx: writing the artifact failed \\(No space left on device\\); the previous"
    ):
        export.to_onnx(model, torch.zeros(2, 64), onnx_file)
    monkeypatch.undo()

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(artifact.tempfile, "mkdtemp", denied)
    with pytest.raises(ExportError, match="cannot write there \\(Permission denied\\)"):
        export.to_onnx(model, torch.zeros(2, 64), onnx_file)
    assert onnx_file.read_bytes() == before
    assert not [p for p in onnx_file.parent.iterdir() if p.name.startswith(".ok.onnx")]


def test_bench_never_replaces_an_earlier_report_unless_asked(world, onnx_file, capsys):
    before = _snapshot(world["earlier"])
    argv = ["bench", str(onnx_file), "--runs", "3", "--min-seconds", "0", "--quiet", "--out-dir", str(world["earlier"])]
    _fails(argv, capsys, "already holds a benchmark report", code=2)
    assert _snapshot(world["earlier"]) == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "missing-a", "missing-b"], "missing-a: no report.json there"),
        (["report", "missing-folder"], "missing-folder: no report.json there"),
        (["prune-sensitivity", "missing.yaml"], "recipe 'missing.yaml' does not exist"),
        (["bench", "missing.onnx"], "nothing to benchmark: missing.onnx: no such file"),
        (["bench", "notes.txt"], "not a model file edgekd can benchmark"),
    ],
)
def test_every_command_refuses_what_is_not_there_in_one_line(world, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(world["tmp"])
    (world["tmp"] / "notes.txt").write_text("not a model")
    before = _snapshot(world["tmp"])
    _fails(argv, capsys, message)
    assert _snapshot(world["tmp"]) == before  # no report, no folder, nothing half-written


@pytest.mark.parametrize("argv", [["frobnicate"], ["models", "extra"], ["bench"], ["run"], ["demo", "--epochs", "x"]])
def test_a_command_line_argparse_refuses_names_the_argument(capsys, argv):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    assert_own_words(lines[0])
