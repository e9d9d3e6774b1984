"""Weight-only int8 embedding tables: int8 rows with one float scale per row.

PT2E's int8 scheme quantizes the inputs and weights of convolutions and linear layers; an embedding
lookup has neither, so its table would stay float in both exported files. In a small text model that
table is most of the file (all-MiniLM-L6-v2 trimmed to a corpus: 20 of 22 MiB). Stored as int8 rows
with a per-row scale, a lookup gathers the int8 rows and their scales and multiplies: a Gather, a Cast
and a Mul in ONNX and TFLite alike, a quarter of the bytes, and an error of at most half a step of each
row's own scale (symmetric, so zero stays exactly zero, padding rows included).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgekd.utils.modules import set_module

QMAX = 127  # symmetric int8: -127..127, the zero point 0


class Int8Embedding(nn.Module):
    """An embedding table held as int8 rows and per-row scales; not trained further (its buffers)."""

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        weight = embedding.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / QMAX
        self.num_embeddings, self.embedding_dim = weight.shape
        self.padding_idx = embedding.padding_idx
        self.register_buffer("qweight", torch.round(weight / scale[:, None]).clamp(-QMAX, QMAX).to(torch.int8))
        self.register_buffer("scale", scale)

    @property
    def weight(self) -> torch.Tensor:
        """A float tensor on the table's device, for model code that reads an embedding's dtype or device."""
        return self.scale

    def dequantized(self) -> torch.Tensor:
        return self.qweight.float() * self.scale[:, None]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.qweight[ids].float() * self.scale[ids].unsqueeze(-1)


def quantize_embeddings(model: nn.Module, skip: Sequence[str] = ()) -> list[str]:
    """Every ``nn.Embedding`` of ``model`` but those named in ``skip`` replaced, in place, by its
    :class:`Int8Embedding`; returns the names replaced."""
    names = [name for name, module in model.named_modules() if type(module) is nn.Embedding and name not in skip]
    for name in names:
        set_module(model, name, Int8Embedding(model.get_submodule(name)))
    return names
