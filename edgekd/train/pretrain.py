"""Training a teacher on labels once, and reusing it from a cache on later runs.

The cache key covers everything that decides the result: the architecture and its initial weights,
the data description, the training config and the seed. Change any of them and the teacher is
trained again; change none and the demo skips minutes of work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from edgekd.cache import default_cache_dir
from edgekd.data.sources import DataBundle
from edgekd.models.checkpoint import atomic_save, load_weights
from edgekd.train import CrossEntropy, TrainConfig, Trainer, distributed, resolve_device

CACHE_VERSION = 1
CACHED_NOTE = "trained earlier"  # how a note starts when the teacher came from the cache


@dataclass
class PretrainResult:
    model: nn.Module
    from_cache: bool
    path: Path | None
    wall_s: float

    @property
    def note(self) -> str:
        if self.from_cache:
            return f"{CACHED_NOTE}, loaded from cache {self.path}"
        return f"trained on labels in this run ({self.wall_s:.0f} s)"


def noted_from_cache(note: str) -> bool:
    """Whether a :attr:`PretrainResult.note` says the cache gave the model: results files keep the note."""
    return note.startswith(CACHED_NOTE)


def cache_key(model: nn.Module, data: DataBundle, config: TrainConfig, seed: int) -> str:
    digest = hashlib.sha256()
    meta = {
        "version": CACHE_VERSION,
        "model": f"{type(model).__module__}.{type(model).__qualname__}",
        "data": data.describe(),
        "config": dataclasses.asdict(config),
        "seed": seed,
    }
    digest.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def pretrain(
    model: nn.Module,
    data: DataBundle,
    config: TrainConfig,
    seed: int = 0,
    device: str = "auto",
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    quiet: bool = False,
) -> PretrainResult:
    """Train ``model`` with cross-entropy, or load the result of an identical earlier training."""
    start = time.perf_counter()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / "teachers" / f"{type(model).__name__}-{cache_key(model, data, config, seed)}.pt"
    distributed.start(resolve_device(device))
    if distributed.agree(use_cache and path.is_file()):  # under torchrun, rank 0's answer for every rank
        load_weights(model, path)
        return PretrainResult(model, True, path, time.perf_counter() - start)
    trainer = Trainer(config, resolve_device(device), quiet=quiet, desc="teacher", seed=seed)
    trainer.fit(model, data, CrossEntropy())
    model.eval()
    if use_cache and distributed.is_main():
        atomic_save({k: v.cpu() for k, v in model.state_dict().items()}, path)
    return PretrainResult(model, False, path if use_cache else None, time.perf_counter() - start)
