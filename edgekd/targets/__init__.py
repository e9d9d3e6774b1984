"""Benchmark targets as data: ``edgekd/targets/*.toml`` (linked from ``targets/``) or the user's own file.

A target names the runtimes to measure, the device, threads, core pinning, a memory cap and the batch
sizes, plus timing settings; every key is checked, so a typo is an error that names the file and key.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from importlib.resources import files
from pathlib import Path

from edgekd.errors import ConfigError
from edgekd.utils.naming import unknown

RUNTIMES = ("onnx", "tflite", "torch", "executorch")
DEVICES = ("cpu", "cuda")


@dataclass
class ReferencePhone:
    """Published-spec roofline inputs for an estimate (never a measurement)."""

    name: str
    peak_int8_gmacs: float
    peak_fp32_gmacs: float
    bandwidth_gbs: float


@dataclass
class Target:
    name: str
    description: str = ""
    runtimes: list[str] = field(default_factory=lambda: list(RUNTIMES))
    device: str = "cpu"
    threads: int | str = "all"
    pin_cores: int | None = None
    memory_limit_mb: int | None = None
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    warmup_runs: int = 10
    warmup_s: float = 0.5
    runs: int = 50
    min_s: float = 1.0
    reference_phones: list[ReferencePhone] = field(default_factory=list)
    source: str = ""

    @property
    def thread_count(self) -> int:
        return available_cores() if self.threads == "all" else int(self.threads)


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_TYPES = {
    "name": str, "description": str, "runtimes": list, "device": str, "threads": (int, str), "pin_cores": int,
    "memory_limit_mb": int, "batch_sizes": list, "warmup_runs": int, "warmup_s": (int, float), "runs": int,
    "min_s": (int, float), "reference_phones": list,
}  # fmt: skip


def builtin_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in files("edgekd.targets").iterdir() if p.name.endswith(".toml"))


def load_target(spec: str | Path) -> Target:
    """A built-in target by name (``cpu``, ``mobile-like``, ``gpu``) or a ``.toml`` file."""
    path = Path(spec)
    if path.suffix == ".toml":
        if not path.is_file():
            raise ConfigError(f"target file {path} does not exist")
        return parse_target(path.read_text(), str(path))
    if str(spec) not in builtin_names():
        raise ConfigError(unknown("target", spec, builtin_names()) + "; or give a path to a .toml file")
    return parse_target(files("edgekd.targets").joinpath(f"{spec}.toml").read_text(), f"targets/{spec}.toml")


def parse_target(text: str, source: str) -> Target:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    known = {f.name for f in fields(Target)} - {"source"}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{source}: {unknown('key', key, known)}")
        if not isinstance(value, _TYPES[key]) or isinstance(value, bool):
            raise ConfigError(f"{source}: {key}: wrong type {type(value).__name__}")
    if "name" not in raw:
        raise ConfigError(f"{source}: missing required key 'name'")
    phones = [_phone(p, source) for p in raw.pop("reference_phones", [])]
    target = Target(**raw, reference_phones=phones, source=source)
    _check(target, source)
    return target


def _phone(raw: dict, source: str) -> ReferencePhone:
    known = {f.name for f in fields(ReferencePhone)}
    if not isinstance(raw, dict) or set(raw) != known:
        raise ConfigError(f"{source}: reference_phones entries need exactly {', '.join(sorted(known))}")
    return ReferencePhone(**raw)


def _check(target: Target, source: str) -> None:
    for runtime in target.runtimes:
        if runtime not in RUNTIMES:
            raise ConfigError(f"{source}: runtimes: {unknown('runtime', runtime, RUNTIMES)}")
    if target.device not in DEVICES:
        raise ConfigError(f"{source}: device: {unknown('device', target.device, DEVICES)}")
    if target.threads != "all" and not (isinstance(target.threads, int) and target.threads >= 1):
        raise ConfigError(f"{source}: threads: must be 'all' or a number >= 1, got {target.threads!r}")
    if not target.batch_sizes or not all(isinstance(b, int) and b >= 1 for b in target.batch_sizes):
        raise ConfigError(f"{source}: batch_sizes: must be a list of numbers >= 1")
    for key in ("pin_cores", "memory_limit_mb", "warmup_runs", "runs"):
        value = getattr(target, key)
        if value is not None and value < (0 if key == "warmup_runs" else 1):
            raise ConfigError(f"{source}: {key}: must be >= 1, got {value}")
