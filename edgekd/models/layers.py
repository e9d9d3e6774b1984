"""Layers edgekd puts into a user's model, which a model file must be able to rebuild."""

from __future__ import annotations

import torch
from torch import nn


class TrimmedEmbedding(nn.Module):
    """An embedding of the kept tokens only, looked up through ``remap`` (original id -> kept row)."""

    def __init__(self, vocab_size: int, kept: int, dim: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = vocab_size, dim, padding_idx
        self.register_buffer("remap", torch.zeros(vocab_size, dtype=torch.int32))
        self.kept = nn.Embedding(kept, dim)

    @property
    def weight(self) -> torch.Tensor:
        """The kept rows (Hugging Face code reads an input embedding's ``weight`` for its dtype)."""
        return self.kept.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.kept(self.remap[input_ids].long())
