"""Importing ExecuTorch, or one line that says how to install it (the package is an optional extra)."""

from __future__ import annotations

import importlib.util

from edgekd.errors import ConfigError

INSTALL = "pip install 'edgekd[executorch]'"


def available() -> bool:
    return importlib.util.find_spec("executorch") is not None


def require(what: str = "ExecuTorch files") -> None:
    """ConfigError naming the extra to install when ExecuTorch is missing."""
    if not available():
        raise ConfigError(f"{what} need the executorch package: {INSTALL}")
