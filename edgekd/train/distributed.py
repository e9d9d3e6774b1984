"""Data-parallel training over ``torch.distributed``, for runs launched by ``torchrun``.

Every rank runs the same pipeline on the same seeded batch order. In each global batch a rank trains
on its own contiguous slice of rows, so every sample is seen once per epoch and a teacher's outputs are
computed by one rank only; the gradients are then summed across ranks with each rank's share weighted
by its rows, which gives exactly the global batch's mean gradient, as one process would compute it. This
is the all-reduce DDP performs, done on the flattened gradients after ``backward`` rather than through
DDP's module wrapper: edgekd's objectives call the student, its adapters, peers, auxiliary heads and
discriminators directly (and an adversarial critic takes its own optimizer step inside a batch), which a
wrapper owning the forward pass cannot see. Metrics are summed across ranks; rank 0 alone writes
checkpoints, reports, artifacts and the run lock, and alone exports and benchmarks while the others wait.

Without ``torchrun`` (no ``WORLD_SIZE`` above 1 in the environment) every function here is a no-op for
a single process.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn

from edgekd.errors import ConfigError, EdgekdError, first_line
from edgekd.inputs import ModelInputs, count, rows

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
PEER_LOST = "lost contact with the other ranks"  # how a rank says another one died first
TIMEOUT = datetime.timedelta(minutes=30)  # a rank waiting longer than this at a collective gives up


class PeerLostError(EdgekdError):
    """A collective failed because another rank stopped (killed, crashed, out of memory)."""


@contextmanager
def collective() -> Iterator[None]:
    """A backend failure inside the block (gloo's "Connection reset by peer", NCCL's watchdog) becomes
    one line saying this rank lost the others: the rank that stopped first says why."""
    try:
        yield
    except RuntimeError as exc:  # DistBackendError and the backends' own errors derive from it
        raise PeerLostError(f"rank {rank()} {PEER_LOST} ({first_line(exc)[:160]})") from exc


def launched() -> bool:
    """True in a process that ``torchrun`` started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes files and prints."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under ``torchrun`` on GPUs each rank drives its own GPU (``LOCAL_RANK``); on the CPU nothing changes."""
    if device.type == "cuda" and launched() and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def start(device: torch.device) -> None:
    """Join the process group ``torchrun`` set up (gloo on the CPU, NCCL on GPUs); idempotent."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return
    if not dist.is_available():
        raise ConfigError("torch.distributed is not available in this torch build; run without torchrun")
    backend = BACKENDS.get(device.type)
    if backend is None:
        raise ConfigError(f"device '{device}': distributed training runs on cpu (gloo) or cuda (nccl)")
    if device.type == "cuda":
        local, count = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if device.index is None and local >= count:
            raise ConfigError(
                f"rank {os.environ.get('RANK', local)} would train on GPU {local}, but this machine has {count}; "
                f"start at most {count} processes per machine, or train on the cpu"
            )
        torch.cuda.set_device(local_device(device))
    try:
        dist.init_process_group(backend, timeout=TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - rendezvous failures come as many types
        raise ConfigError(f"joining the torchrun process group ({backend}) failed: {first_line(exc)}") from exc


def describe() -> dict:
    """How many processes train and over which backend, for the report."""
    if not active():
        return {"world_size": 1}
    return {"world_size": world_size(), "backend": dist.get_backend(), "launcher": "torchrun"}


def barrier() -> None:
    if active():
        with collective():
            dist.barrier()


def shard(x: ModelInputs, y: torch.Tensor, index: torch.Tensor | None):
    """This rank's contiguous slice of a global batch, and the slice's share of the batch's rows; None
    for a batch with fewer rows than ranks (a dataset's last few samples), which every rank skips, as
    DDP's ``drop_last`` would: a rank with no rows would have no loss to step on."""
    total = count(x)
    if not active():
        return x, y, index, 1.0
    if total < world_size():
        return None
    bounds = [total * r // world_size() for r in range(world_size() + 1)]
    part = slice(bounds[rank()], bounds[rank() + 1])
    share = (part.stop - part.start) / max(total, 1)
    return rows(x, part), y[part], index[part] if index is not None else None, share


def sum_gradients(params: Iterable[nn.Parameter], share: float) -> None:
    """Replace each rank's gradients (the mean over its slice) by the mean over the global batch:
    each weighted by its slice's share of the rows, summed over ranks in one flattened all-reduce. A
    parameter no rank computed a gradient for keeps ``None``, so optimizers skip it as they would in
    one process."""
    if not active():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    grads = [p.grad.reshape(-1) * share if p.grad is not None else torch.zeros(p.numel(), device=p.device)
             for p in params]  # fmt: skip
    present = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)
    flat = torch.cat([*grads, present])
    with collective():
        dist.all_reduce(flat)
    offset = 0
    for param, had in zip(params, flat[-len(params) :].tolist()):
        size = param.numel()
        param.grad = flat[offset : offset + size].view_as(param).clone() if had else None
        offset += size


def mean_gradients(params: Iterable[nn.Parameter]) -> None:
    """Gradients averaged over the ranks, for an optimizer step an objective takes inside a batch (an
    adversarial critic's): equal slices weigh equally."""
    sum_gradients(params, 1.0 / world_size())


def sums(*values: float) -> list[float]:
    """Each value summed over the ranks (counts and loss sums of an epoch)."""
    if not active():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    with collective():
        dist.all_reduce(tensor)
    return tensor.tolist()


def sync_buffers(model: nn.Module) -> None:
    """Every rank's buffers made the same: BatchNorm running statistics averaged over the ranks (each
    saw its own slices), every other buffer (quantization observers' ranges and scales, step counts)
    taken from rank 0, so all ranks validate, and rank 0 saves, one model."""
    if not active():
        return
    with collective():
        for module in model.modules():
            averaged = isinstance(module, nn.modules.batchnorm._BatchNorm)
            for buffer in module.buffers(recurse=False):
                if buffer.dtype == torch.bool:  # masks: constants of the architecture
                    continue
                if averaged and buffer.is_floating_point():
                    dist.all_reduce(buffer)
                    buffer /= world_size()
                else:
                    dist.broadcast(buffer, src=0)


def share_rows(stores: list[torch.Tensor], filled: torch.Tensor) -> None:
    """Per-sample float ``stores`` whose rows ``filled`` were computed on this rank: every rank gets every
    rank's rows (averaged where several computed the same row); ``filled`` becomes the union."""
    if not active():
        return
    counts = filled.to(torch.float32)
    with collective():
        dist.all_reduce(counts)
        for store in stores:
            store[~filled] = 0
            dist.all_reduce(store)
            store /= counts.clamp(min=1).view(-1, *([1] * (store.dim() - 1)))
    filled.copy_(counts > 0)


def agree(value):
    """Rank 0's ``value`` on every rank (a choice that must not differ, such as a cache hit)."""
    if not active():
        return value
    box = [value]
    with collective():
        dist.broadcast_object_list(box, src=0)
    return box[0]


def same_structure(model: nn.Module, where: str) -> None:
    """Every rank's model has rank 0's parameter and buffer shapes, then rank 0's values: a stage that
    changed the architecture (pruning) must have changed it the same way everywhere."""
    if not active():
        return
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items() if isinstance(t, torch.Tensor)}
    gathered = [None] * world_size()
    with collective():
        dist.all_gather_object(gathered, shapes)
    for other, theirs in enumerate(gathered):
        if theirs != gathered[0]:
            differ = next((n for n in theirs if theirs[n] != gathered[0].get(n)), "a parameter")
            raise ConfigError(f"{where}: rank {other} built a different model than rank 0 ({differ})")
    with collective():
        for tensor in model.state_dict().values():
            if isinstance(tensor, torch.Tensor):
                dist.broadcast(tensor, src=0)


def evaluation_batches(loader: Iterable) -> Iterator:
    """Every ``world_size``-th batch, starting at this rank's: validation split over the ranks."""
    for position, batch in enumerate(loader):
        if position % world_size() == rank():
            yield batch


@contextmanager
def main_only() -> Iterator[bool]:
    """Yields True on rank 0, which does the work (export, benchmark), and False on the others, which
    wait for it at the end of the block. A failure on rank 0 skips the wait: its exit makes torchrun
    stop every rank."""
    yield is_main()
    barrier()
