"""The fast tier's guard, a pytest hook: a test without the ``slow`` mark that takes longer than a few
seconds fails, naming its time, so ``pytest -m "not slow"`` stays fast as tests are added.

A test that exports, converts or trains a real graph is marked ``slow`` instead. Setup may take three
times as long: a session fixture's first user pays for building it.

The guard holds only when the fast tier is what runs (``-m "not slow"``): in the full suite (CI) the same
test shares the cores with heavy neighbours, and a timing there would make a flaky check, not a fast tier.
"""

from __future__ import annotations

import os

import pytest

FAST_TEST_LIMIT_S = float(os.environ.get("EDGEKD_FAST_TEST_LIMIT_S", "5"))
SETUP_FACTOR = 3


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.passed or report.when not in ("setup", "call") or "slow" in item.keywords:
        return
    if "not slow" not in (item.config.getoption("markexpr", "") or ""):
        return
    limit = FAST_TEST_LIMIT_S * (SETUP_FACTOR if report.when == "setup" else 1)
    if report.duration > limit:
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} took {report.duration:.1f} s in {report.when}, over the fast tier's {limit:g} s: "
            "make it smaller, share a fixture, or mark it slow"
        )
