"""The CLI's help on every subcommand, its model list, and one-line errors for bad arguments."""

from __future__ import annotations

import pytest

from edgekd.cli.main import main


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["demo", "--help"], ["models", "--help"]])
def test_help_on_every_subcommand(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "usage: edgekd" in capsys.readouterr().out


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    names = ["centernet", "hf-classifier", "hinton-student", "hinton-teacher", "layers-of", "minilm-l6",
             "mnist-mobilenet", "mnist-resnet", "mnist-vit", "mobilenetv2", "tiny-unet"]  # fmt: skip
    assert capsys.readouterr().out.split() == names


def test_missing_recipe_is_one_line_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err
    assert err == f"edgekd: error: recipe '{tmp_path / 'none.yaml'}' does not exist\n"


def test_corrupt_checkpoint_in_a_recipe_is_one_line(tmp_path, capsys):
    bad = tmp_path / "teacher.pt"
    bad.write_bytes(b"not a checkpoint")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"data: digits\nteacher: {{model: hinton-teacher, checkpoint: {bad}}}\nstudent: hinton-student\n"
        "stages: [distill]\n"
    )
    assert main(["run", str(recipe), "--out-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"edgekd: error: checkpoint '{bad}' is corrupt or not a weights file")
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()
