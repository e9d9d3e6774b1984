"""A run folder belongs to one process at a time: ``run.lock`` names the holder.

The lock file is created exclusively (``O_EXCL``), so two runs started together cannot both get it.
A lock left by a process that no longer exists (killed, machine rebooted) is taken over, which is
what lets ``--resume`` pick up a run that was killed.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from edgekd.errors import ConfigError

LOCK_NAME = "run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(UTC).isoformat()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                other = self._holder()
                if other and other.get("host") == socket.gethostname() and not _alive(int(other.get("pid", 0))):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                who = f"process {other.get('pid')} on {other.get('host')} since {other.get('since')}" if other else "?"
                raise ConfigError(
                    f"run folder '{self.path.parent}' is in use by {who}; wait for it or use another"
                ) from None
            with os.fdopen(fd, "w") as handle:
                json.dump(holder, handle)
            self.held = True
            return self
        raise ConfigError(f"run folder '{self.path.parent}': could not take the lock {self.path}")

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
