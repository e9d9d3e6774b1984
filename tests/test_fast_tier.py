"""The fast tier's guard fails a test that is not marked slow and takes too long, and only that one, and only
when the fast tier is what runs (the full suite is not a timing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SAMPLE = """
import time
import pytest

def test_quick():
    pass

def test_sleepy():
    time.sleep(0.5)

@pytest.mark.slow
def test_sleepy_but_marked():
    time.sleep(0.5)
"""


def _run_sample(folder: Path, *selection: str) -> subprocess.CompletedProcess:
    (folder / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "EDGEKD_FAST_TEST_LIMIT_S": "0.2"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "fast_tier", "-p", "no:cacheprovider", "-q", "-rf",
         "-o", "markers=slow", "-c", os.devnull, "--rootdir", str(folder), *selection, str(folder)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_a_fast_test_over_the_limit_fails_and_a_slow_one_does_not(tmp_path: Path) -> None:
    done = _run_sample(tmp_path, "-m", "not slow")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 1 passed, 1 deselected" in done.stdout, done.stdout
    assert "test_sleepy took" in done.stdout and "over the fast tier's 0.2 s" in done.stdout


def test_the_full_suite_is_not_timed(tmp_path: Path) -> None:
    done = _run_sample(tmp_path)
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout + done.stderr
