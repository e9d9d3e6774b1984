"""Teacher outputs computed once per sample and reused in later epochs.

Valid only when a sample looks the same every epoch (no random augmentation) and the teacher is
frozen in eval mode; then the teacher's forward pass, usually the larger share of a distillation
step, is paid once per run instead of once per epoch. Under ``torchrun`` each rank computes the
outputs of the rows it trains on and :meth:`TeacherCache.share` hands them to every rank after the
epoch: the teacher runs once per sample across all ranks.
"""

from __future__ import annotations

import torch

from edgekd.train import distributed

DEFAULT_LIMIT_BYTES = 2 * 1024**3


class TeacherCache:
    """Per-sample store of named teacher tensors (logits per teacher, tapped features)."""

    def __init__(self, dataset_size: int, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self.dataset_size = dataset_size
        self.limit_bytes = limit_bytes
        self.enabled = True
        self._store: dict[str, torch.Tensor] = {}
        self._filled = torch.zeros(dataset_size, dtype=torch.bool)

    def lookup(self, index: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """The cached outputs for these samples, or None if any of them is missing."""
        if not self.enabled or not self._store or not bool(self._filled[index].all()):
            return None
        return {key: values[index] for key, values in self._store.items()}

    def put(self, index: torch.Tensor, outputs: dict[str, torch.Tensor]) -> None:
        """Store a batch's outputs; turns itself off if the whole set would exceed the limit."""
        if not self.enabled:
            return
        if not self._store:
            per_sample = sum(t[0].numel() * t.element_size() for t in outputs.values())
            if per_sample * self.dataset_size > self.limit_bytes:
                self.enabled = False
                return
            self._store = {
                key: torch.empty((self.dataset_size, *t.shape[1:]), dtype=t.dtype) for key, t in outputs.items()
            }
        for key, tensor in outputs.items():
            self._store[key][index] = tensor.detach().cpu()
        self._filled[index] = True

    def share(self) -> None:
        """Every rank's computed rows to every rank (a no-op in a single process); call on all ranks."""
        if distributed.active() and self.enabled and self._store:
            distributed.share_rows(list(self._store.values()), self._filled)
