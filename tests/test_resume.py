"""Resuming a killed run: a real run is SIGKILLed mid-epoch, resumed, and must end where an unbroken run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from edgekd.errors import ConfigError
from edgekd.run.lock import RunLock

RECIPE = """
name: resume-check
seed: 3
data: {source: mnist, batch_size: 64, limit_train: 2500, limit_test: 300, val_size: 4000}
teacher:
  model: mnist-resnet
  pretrain: {epochs: 1, lr: 0.001}
student: {model: mnist-mobilenet}
stages:
  - distill: {epochs: 3, lr: 0.005, features: {blocks.3: layer2}}
  - train: {epochs: 1, lr: 0.001}
"""
SMALL_RECIPE = """
name: resume-refusals
seed: 3
data: {source: digits, batch_size: 64}
teacher: {model: hinton-teacher, args: {in_features: 64}}
student: {model: hinton-student, args: {in_features: 64}}
stages:
  - distill: {epochs: 1, lr: 0.005}
  - train: {epochs: 0, lr: 0.001}
"""
COMPARED = ("stage", "kind", "test_accuracy", "val_accuracy", "params", "macs", "size_bytes")


def _cli(*args: str, env: dict) -> list[str]:
    return [sys.executable, "-m", "edgekd.cli.main", "run", *args]


@pytest.fixture()
def setup(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(textwrap.dedent(RECIPE))
    env = {**os.environ, "EDGEKD_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    return recipe, env


def _ledger(folder) -> list[tuple]:
    report = json.loads((folder / "report.json").read_text())
    assert report["status"] == "completed"
    return [tuple(row[k] for k in COMPARED) for row in report["ledger"]]


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_result(setup, tmp_path):
    recipe, env = setup
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    done = subprocess.run(
        _cli(str(recipe), "--quiet", "--out-dir", str(whole), env=env), env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr

    process = subprocess.Popen(
        _cli(str(recipe), "--quiet", "--out-dir", str(broken), env=env), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    last = broken / "checkpoints" / "01-distill" / "last.pt"
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert last.exists(), "the run never finished its first epoch"
    time.sleep(0.4)  # well inside epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    report = json.loads((broken / "report.json").read_text())
    assert report["status"] == "running" and (broken / "run.lock").exists()  # killed: nothing cleaned up

    resumed = subprocess.run(
        _cli(str(recipe), "--resume", "--out-dir", str(broken), env=env), env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed after epoch" in resumed.stderr
    assert _ledger(broken) == _ledger(whole)  # bit-for-bit: same batches, RNG, optimizer and schedule state
    assert not (broken / "run.lock").exists()


@pytest.mark.slow
def test_resume_refuses_a_different_recipe_and_a_finished_run(tmp_path, monkeypatch, capsys):
    """The command line in this process: what is refused does not depend on the size of the run."""
    from edgekd.cli.main import main

    monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path / "cache"))
    recipe, folder = tmp_path / "recipe.yaml", tmp_path / "run"
    recipe.write_text(SMALL_RECIPE)

    def cli(*args: str) -> tuple[int, str]:
        code = main(["run", str(recipe), *args])
        return code, capsys.readouterr().err

    assert cli("--quiet", "--out-dir", str(folder))[0] == 0
    code, err = cli("--resume", "--out-dir", str(folder))
    assert code == 2 and "already completed; nothing to resume" in err
    recipe.write_text(SMALL_RECIPE.replace("lr: 0.005", "lr: 0.01"))
    code, err = cli("--resume", "--out-dir", str(folder))
    assert code == 2 and "Traceback" not in err
    assert "different recipe" in err and "lr: 0.005 -> 0.01" in err
    code, err = cli("--resume", "--out-dir", str(tmp_path / "empty"))
    assert code == 2 and "nothing to resume" in err


def test_a_run_folder_in_use_is_refused_and_a_stale_lock_taken_over(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(ConfigError, match=f"is in use by process {os.getpid()}"):
            RunLock(tmp_path).acquire()
    (tmp_path / "run.lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": os.uname().nodename}))
    with RunLock(tmp_path) as lock:  # its process is gone: the lock is stale
        assert lock.held and json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / "run.lock").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["prune", "quantize"])
def test_pruning_and_qat_stages_resume_from_their_last_epoch(small_net, tiny_images, tmp_path, monkeypatch, kind):
    import torch
    from int8_fixtures import SmallNet

    import edgekd as ek

    def stage():
        if kind == "prune":
            return ek.Prune(ratio=0.5, round_to=None, epochs=2, lr=1e-2)
        return ek.Quantize(epochs=2, lr=1e-3, calibration_batches=4)

    def pipeline(folder):
        torch.manual_seed(5)
        return ek.Pipeline(
            small_net, SmallNet(), tiny_images, [ek.Distill(epochs=1), stage()], out_dir=folder, quiet=True
        )

    whole = pipeline(tmp_path / "whole").run().report
    original = ek.Trainer._run_epoch
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # distill's only epoch, then the stage's first: stop before its second
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ek.Trainer, "_run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline(tmp_path / "broken").run()
    monkeypatch.setattr(ek.Trainer, "_run_epoch", original)
    assert json.loads((tmp_path / "broken" / "report.json").read_text())["status"].startswith("interrupted")
    resumed = pipeline(tmp_path / "broken").run(resume=True).report
    rows = [tuple(r[k] for k in COMPARED) for r in resumed["ledger"]]
    assert rows == [tuple(r[k] for k in COMPARED) for r in whole["ledger"]]
