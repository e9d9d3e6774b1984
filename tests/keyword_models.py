"""A token classifier called with keyword inputs, and a synthetic task it can learn."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import edgekd as ek

VOCAB, LENGTH, CLASSES = 40, 12, 3


class TokenClassifier(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.mix = nn.Sequential(nn.Linear(width, width), nn.ReLU())
        self.head = nn.Linear(width, CLASSES)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.mix(self.embed(input_ids))
        mask = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)


def token_data(n_train: int = 600, n_test: int = 200, seed: int = 0) -> ek.data.DataBundle:
    rng = np.random.default_rng(seed)

    def make(n):
        ids = rng.integers(4, VOCAB, (n, LENGTH))
        lengths = rng.integers(4, LENGTH + 1, n)
        mask = (np.arange(LENGTH)[None] < lengths[:, None]).astype(np.int64)
        y = rng.integers(0, CLASSES, n)
        where = rng.integers(0, lengths)
        ids[np.arange(n), where] = 1 + y  # the keyword token names the class
        ids[mask == 0] = 0
        return {"input_ids": ids, "attention_mask": mask}, y

    (train, y_train), (test, y_test) = make(n_train), make(n_test)
    return ek.data.from_named_arrays(train, y_train, test, y_test, batch_size=32, name="tokens")
