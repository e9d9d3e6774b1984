"""Shared fixtures: small data made on the spot, and a cache folder per test session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import edgekd as ek


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Teacher caches of tests never touch the user's ~/.cache/edgekd."""
    monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path_factory.getbasetemp() / "edgekd-cache"))
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_images() -> ek.data.DataBundle:
    """A 4-class problem on 12x12 images whose class sets a bright quadrant: learnable in seconds."""
    rng = np.random.default_rng(0)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 4, n)
        x = rng.normal(0, 0.3, (n, 1, 12, 12)).astype(np.float32)
        for i, label in enumerate(y):
            r, c = divmod(int(label), 2)
            x[i, 0, r * 6 : r * 6 + 6, c * 6 : c * 6 + 6] += 1.0
        return x, y

    x_train, y_train = make(480)
    x_test, y_test = make(160)
    return ek.data.from_arrays(x_train, y_train, x_test, y_test, batch_size=32, name="quadrants")


@pytest.fixture(scope="session")
def small_net(tiny_images):
    from int8_fixtures import trained_small_net

    return trained_small_net(tiny_images)


@pytest.fixture(scope="session")
def small_net_int8(small_net, tiny_images):
    from int8_fixtures import ptq

    return ptq(small_net, tiny_images)
