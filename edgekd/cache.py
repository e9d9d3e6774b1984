"""Where edgekd keeps what it can reuse across runs: trained teachers, tokenized texts, latency tables."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$EDGEKD_CACHE``, else ``~/.cache/edgekd``."""
    return Path(os.environ.get("EDGEKD_CACHE", Path.home() / ".cache" / "edgekd"))
