"""Unknown-name messages that point at the nearest valid name, shared by every lookup."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


def unknown(what: str, name: object, choices: Iterable[str]) -> str:
    """``unknown model 'x'; did you mean 'y'? known: a, b, c``."""
    options = sorted(choices)
    near = difflib.get_close_matches(str(name), options, n=1)
    hint = f"did you mean '{near[0]}'? " if near else ""
    return f"unknown {what} '{name}'; {hint}known: {', '.join(options)}"


def check_choice(key: str, value: str, choices: Sequence[str]) -> str:
    """``value`` when it is one of ``choices``, else one ConfigError line naming ``key``."""
    if value not in choices:
        from edgekd.errors import ConfigError

        raise ConfigError(f"{key}: must be one of {', '.join(choices)}, got '{value}'")
    return value
