"""Trains a small BatchNorm-free classifier with the Trainer; run alone or under torchrun by
``test_distributed``, which compares the weights each way ends with."""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

import edgekd as ek
from edgekd.train import distributed


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 24), nn.ReLU(), nn.Dropout(0.0), nn.Linear(24, 3))


def data() -> ek.data.DataBundle:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((203, 1, 4, 4)).astype(np.float32)  # 203: the last global batch is uneven
    y = (x.reshape(203, -1)[:, :3].argmax(1)).astype(np.int64)
    return ek.data.from_arrays(x, y, x[:60], y[:60], val_fraction=0.2, batch_size=25)


def main(out: str) -> None:
    net = model()
    history = ek.Trainer(ek.TrainConfig(epochs=3, lr=0.01), quiet=True, seed=0).fit(net, data())
    if distributed.is_main():
        epochs = history.epochs
        record = {"val": [e.val_accuracy for e in epochs], "loss": [e.train_loss for e in epochs]}
        torch.save({"state": net.state_dict(), "world": distributed.world_size(), **record}, out)


if __name__ == "__main__":
    main(sys.argv[1])
