"""Progress bars: drawn on a terminal, absent from logs and under --quiet."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch

from edgekd.export.artifact import runtime_accuracy
from edgekd.utils.progress import bars_hidden, on_terminal, say, steps


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class ArgmaxRunner:
    """A stand-in runtime: predicts the first column's class, so accuracy is known."""

    def run(self, x: np.ndarray) -> np.ndarray:
        logits = np.zeros((len(x), 3), dtype=np.float32)
        logits[:, 1] = 1.0
        return logits


def _loader():
    return [(torch.zeros(4, 2), torch.tensor([1, 1, 0, 2])) for _ in range(5)]


def test_a_bar_is_drawn_on_a_terminal_and_the_result_is_unchanged(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    accuracy, total = runtime_accuracy(ArgmaxRunner(), _loader(), "model.tflite: test accuracy")
    assert (accuracy, total) == (0.5, 20)
    assert "model.tflite: test accuracy" in terminal.getvalue()
    assert "/5 " in terminal.getvalue()  # the bar knows how many batches there are


def test_no_bar_in_a_log_file(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    assert not on_terminal()
    assert list(steps(range(3), "work")) == [0, 1, 2]
    assert log.getvalue() == ""


@pytest.mark.parametrize("hidden", [True, False])
def test_quiet_hides_every_bar_and_an_outer_quiet_holds(monkeypatch, hidden):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with bars_hidden(hidden):
        assert on_terminal() is not hidden
        with bars_hidden(False):  # an inner part that is not quiet does not undo an outer --quiet
            assert on_terminal() is not hidden
            list(steps(range(3), "inner work"))
    assert ("inner work" in terminal.getvalue()) is not hidden
    assert on_terminal()


def test_say_writes_one_line_on_stderr(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    say("[bench 1/2] cpu: model.onnx")
    assert log.getvalue() == "[bench 1/2] cpu: model.onnx\n"
