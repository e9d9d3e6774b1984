"""The fast tier's guard fails a test that is not marked slow and takes too long, and only that one."""

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


def test_a_fast_test_over_the_limit_fails_and_a_slow_one_does_not(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "PYTHONPATH": str(TESTS), "EDGEKD_FAST_TEST_LIMIT_S": "0.2"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "fast_tier", "-p", "no:cacheprovider", "-q", "-rf",
         "-o", "markers=slow", "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 2 passed" in done.stdout, done.stdout
    assert "test_sleepy took" in done.stdout and "over the fast tier's 0.2 s" in done.stdout
