"""Several outputs of one forward as one tensor per batch, and back.

The training loop, the teacher cache, validation and the parity gate handle one tensor per batch with the
batch first. A task whose model returns several tensors (a detector's heatmaps and boxes) packs them into
(batch, everything) rows there, and unpacks them where its loss and metrics read them. The model itself
and the exported files keep every output, by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from edgekd.errors import DataError
from edgekd.outputs import describe, tensors_in


class PackedOutputs:
    """Remembers the per-sample shapes of every packing, keyed by the packed width (a teacher and a
    student may have different heads)."""

    def __init__(self) -> None:
        self.layouts: dict[int, tuple[tuple[int, ...], ...]] = {}
        self.names: dict[int, list[str]] = {}  # the outputs' names, where the forward gave them (a dict)

    def pack(self, raw: Any) -> torch.Tensor:
        tensors = tensors_in(raw)
        if not tensors or any(t.dim() == 0 for t in tensors) or len({len(t) for t in tensors}) != 1:
            raise DataError(f"the forward returned {describe(raw)}: expected one or more tensors with a batch axis")
        shapes = tuple(tuple(int(d) for d in t.shape[1:]) for t in tensors)
        width = int(sum(np.prod(s, dtype=np.int64) for s in shapes))
        known = self.layouts.setdefault(width, shapes)
        if isinstance(raw, Mapping):
            self.names.setdefault(width, [str(k) for k, v in raw.items() if isinstance(v, torch.Tensor)])
        if known != shapes:
            raise DataError(f"two heads pack to {width} values per sample with different shapes ({known}, {shapes})")
        return torch.cat([t.reshape(len(t), -1).float() for t in tensors], 1)

    def unpack(self, packed: torch.Tensor) -> list[torch.Tensor]:
        shapes = self.layouts.get(int(packed.shape[-1]))
        if shapes is None:
            raise DataError(f"no output layout of width {packed.shape[-1]}: run the model through the task first")
        parts, start = [], 0
        for shape in shapes:
            size = int(np.prod(shape, dtype=np.int64))
            parts.append(packed[:, start : start + size].reshape(len(packed), *shape))
            start += size
        return parts
