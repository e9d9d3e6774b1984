"""``edgekd run --nproc N``: the same command under ``torchrun``, launched from Python.

torch's elastic launcher starts N copies of ``python -m edgekd ...`` on this machine with the rendezvous
of ``torchrun --standalone`` (a free local port) and stops them all when one fails. Each failing rank
prints its own one-line error and records it in the launcher's error file; the launcher then says which
rank stopped the run, in one line.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Sequence

from edgekd.errors import ConfigError, EdgekdError

LAUNCHER_LOGGERS = ("torch.distributed.elastic", "torch.distributed.launcher")


class RankFailedError(EdgekdError):
    """A rank of a multi-process run failed; the others were stopped."""


def without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` less its ``--nproc N`` / ``--nproc=N``: what every rank runs."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def check_launchable(nproc: int) -> None:
    """``--nproc`` mistakes, caught before any rank starts."""
    if nproc < 1:
        raise ConfigError(f"--nproc: must be >= 1, got {nproc}")
    if os.environ.get("WORLD_SIZE"):
        raise ConfigError("--nproc: this process is already one of a torchrun job; drop --nproc")


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m edgekd <argv>`` in ``nproc`` processes joined by torch.distributed; 0 when all
    ranks succeed, else a RankFailedError naming the first rank that failed and its error."""
    check_launchable(nproc)
    import torch.distributed.elastic.multiprocessing.api  # noqa: F401 - its logger exists from here on
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    for name in list(logging.root.manager.loggerDict):  # each sets its own level when created
        if name.startswith(LAUNCHER_LOGGERS):
            logging.getLogger(name).setLevel(logging.CRITICAL)  # the launcher's one line says what failed
    # each rank's share of the cores, as torchrun gives it: N ranks of all-core thread pools on the same
    # cores spin against each other and run many times slower
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"edgekd-{uuid.uuid4()}", rdzv_backend="c10d",
        rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.2,
    )  # fmt: skip
    try:
        elastic_launch(config, sys.executable)("-m", "edgekd", *without_nproc(argv))
    except ChildFailedError as exc:
        # the rank that failed on its own; the others lost contact with it or were stopped (SIGTERM)
        rank, failure = min(exc.failures.items(), key=_blame_order)
        message = _reason(failure)
        raise RankFailedError(f"rank {rank} of {nproc} failed: {message}; every rank was stopped") from None
    return 0


def _blame_order(item: tuple) -> tuple:
    from edgekd.train.distributed import PEER_LOST  # torch is loaded by now

    _rank, failure = item
    return (failure.exitcode == -15, PEER_LOST in str(failure.message), failure.timestamp or 0)


def _reason(failure) -> str:
    """The rank's own error line when it recorded one, else how it ended (exit code or signal)."""
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "")
    message = str(message or "").strip()
    if not message or message.startswith("To enable traceback"):
        return f"exit code {failure.exitcode}" if failure.exitcode >= 0 else f"killed by {failure.signal_name()}"
    kind, _, text = message.splitlines()[0].partition(": ")
    return text if text and kind.isidentifier() else message.splitlines()[0]  # "ConfigError: x" -> "x"
