"""Progress bars for long steps: a bar on a terminal, nothing in a log file or a test.

A log gets one line per step from the caller; a bar would fill it with carriage returns. Whether
bars show at all is one switch (:func:`bars_hidden`) so ``--quiet`` silences every part at once
without each function taking a ``quiet`` argument.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from tqdm import tqdm

Item = TypeVar("Item")

_shown: ContextVar[bool] = ContextVar("edgekd_progress_bars", default=True)


def on_terminal() -> bool:
    """Whether a bar would be seen: bars are shown and stderr is a terminal."""
    return _shown.get() and sys.stderr.isatty()


@contextmanager
def bars_hidden(hidden: bool = True) -> Iterator[None]:
    """Hide every progress bar inside the block (``hidden=False`` leaves things as they are, so an
    outer ``--quiet`` still holds)."""
    token = _shown.set(_shown.get() and not hidden)
    try:
        yield
    finally:
        _shown.reset(token)


def steps(items: Iterable[Item], desc: str, total: int | None = None) -> Iterator[Item]:
    """Yield ``items``, drawing a transient bar on a terminal."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with tqdm(items, desc=desc, total=total, disable=not on_terminal(), leave=False, dynamic_ncols=True) as bar:
        yield from bar


def say(line: str) -> None:
    """One line on stderr that does not break a bar being drawn."""
    tqdm.write(line, file=sys.stderr)
