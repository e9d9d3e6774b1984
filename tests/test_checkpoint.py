"""Checkpoints: atomic writes, weights-only loading, and errors that name the mismatch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgekd.errors import CheckpointError
from edgekd.models.checkpoint import atomic_save, load_weights, safe_load


def test_round_trip_and_wrapped_state_dicts(tmp_path):
    model = nn.Linear(3, 2)
    atomic_save({"model": model.state_dict(), "epoch": 4}, tmp_path / "c.pt")
    other = load_weights(nn.Linear(3, 2), tmp_path / "c.pt")
    assert torch.equal(other.weight, model.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_another_architecture_names_the_first_mismatching_tensor(tmp_path):
    atomic_save(nn.Linear(3, 2).state_dict(), tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"'weight' has shape \(2, 3\) in the file but \(5, 3\) in the model"):
        load_weights(nn.Linear(3, 5), tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"another architecture: missing '0.weight'"):
        load_weights(nn.Sequential(nn.Linear(3, 2)), tmp_path / "c.pt")


def test_truncated_and_foreign_files_are_errors_not_unpickles(tmp_path):
    atomic_save(nn.Linear(3, 2).state_dict(), tmp_path / "c.pt")
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="is corrupt or not a weights file"):
        safe_load(tmp_path / "cut.pt")
    torch.save({"obj": nn.Linear(1, 1)}, tmp_path / "pickled.pt")  # a whole module: needs code to load
    with pytest.raises(CheckpointError, match=r"holds pickled Python objects .*save model.state_dict\(\) instead"):
        safe_load(tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        safe_load(tmp_path / "missing.pt")


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    atomic_save({"v": torch.tensor(1)}, tmp_path / "c.pt")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        atomic_save({"v": Unpicklable()}, tmp_path / "c.pt")
    assert safe_load(tmp_path / "c.pt")["v"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
