"""Shared fixtures: small data made on the spot, and a cache folder per test session."""

from __future__ import annotations

import os

import pytest
import torch
from quadrants import quadrant_images

import edgekd as ek

_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:  # pytest -n N: the cores shared among the workers, not N x cores threads fighting
    _THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    os.environ["OMP_NUM_THREADS"] = _THREADS  # command-line runs the tests start inherit it
    torch.set_num_threads(int(_THREADS))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Teacher caches of tests never touch the user's ~/.cache/edgekd."""
    monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path_factory.getbasetemp() / "edgekd-cache"))
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_images() -> ek.data.DataBundle:
    """A 4-class problem on 12x12 images whose class sets a bright quadrant: learnable in seconds."""
    return quadrant_images(12, 480, 160, seed=0)


@pytest.fixture(scope="session")
def small_net(tiny_images):
    from int8_fixtures import trained_small_net

    return trained_small_net(tiny_images)


@pytest.fixture(scope="session")
def small_net_int8(small_net, tiny_images):
    from int8_fixtures import ptq

    return ptq(small_net, tiny_images)
