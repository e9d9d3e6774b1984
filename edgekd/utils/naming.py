"""Unknown-name messages that point at the nearest valid name, shared by every lookup."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown(what: str, name: object, choices: Iterable[str]) -> str:
    """``unknown model 'x'; did you mean 'y'? known: a, b, c``."""
    options = sorted(choices)
    near = difflib.get_close_matches(str(name), options, n=1)
    hint = f"did you mean '{near[0]}'? " if near else ""
    return f"unknown {what} '{name}'; {hint}known: {', '.join(options)}"
