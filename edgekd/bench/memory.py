"""Memory of the benchmark process: resident size, its peak, and a cap.

The cap uses a cgroup v2 child group with ``memory.max`` when this process may create one (the
kernel then enforces it). Where it may not (most containers), the documented fallback is a check:
the peak resident size is compared with the cap after the run and the result is marked over budget.
The report says which method was used.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """High-water mark of the resident set since the process started."""
    return _status_kib("VmHWM") * 1024


def apply_cap(limit_mb: int | None) -> dict:
    if not limit_mb:
        return {"method": "none", "limit_bytes": None}
    limit = int(limit_mb) * 1024 * 1024
    try:
        parent = _own_cgroup_v2()
        group = parent / f"edgekd-bench-{os.getpid()}"
        group.mkdir()
        (group / "memory.max").write_text(str(limit))
        (group / "cgroup.procs").write_text(str(os.getpid()))
        if _own_cgroup_v2() != group:
            raise OSError("the process did not move into the new group")
        return {"method": "cgroup-v2 memory.max", "limit_bytes": limit, "cgroup": str(group)}
    except OSError as exc:
        why = exc.strerror or str(exc)
        return {"method": "rss-check", "limit_bytes": limit, "why": f"no writable cgroup v2 memory controller: {why}"}


def remove_group(cap: dict) -> None:
    """The parent removes the worker's emptied group once the worker has exited."""
    if cap.get("cgroup"):
        try:
            Path(cap["cgroup"]).rmdir()
        except OSError:
            pass


def _own_cgroup_v2() -> Path:
    """This process's group on the unified (v2) hierarchy, where the memory controller is enabled."""
    mount = next(
        (line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
         if line.split(" - ")[1].split()[0] == "cgroup2"),
        None,
    )  # fmt: skip
    if mount is None:
        raise OSError("no cgroup2 file system mounted")
    relative = next(line.split("::", 1)[1] for line in Path("/proc/self/cgroup").read_text().splitlines()
                    if line.startswith("0::"))  # fmt: skip
    group = Path(mount) / relative.lstrip("/")
    if "memory" not in (group / "cgroup.controllers").read_text().split():
        raise OSError(f"the memory controller is not enabled for {group}")
    return group
