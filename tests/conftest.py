"""Shared fixtures: small data made on the spot, and a cache folder per test session."""

from __future__ import annotations

import pytest
import torch
from fast_tier import pytest_runtest_makereport  # noqa: F401 - the hook that keeps the fast tier fast
from quadrants import quadrant_images

import edgekd as ek


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
