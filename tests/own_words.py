"""A refusal is edgekd's own line, never a library's raw text passed through: the check the bad-input
sweeps run on every error they provoke."""

from __future__ import annotations

import re

# Phrases only a library's own error text carries: the user would learn nothing from them.
RAW_LIBRARY_TEXT = (
    re.compile(r"Weights only load failed|weights_only"),  # torch.load's page-long refusal
    re.compile(r"\x1b\["),  # terminal colour codes
    re.compile(r"Traceback \(most recent call last\)"),
    re.compile(r"object has no attribute"),  # an AttributeError escaping
    re.compile(r"is out of bounds"),  # cross_entropy's IndexError on a bad label
    re.compile(r"must be Tensor, not"),  # a torch op fed the wrong type
    re.compile(r"torch\._dynamo|torch\.fx\.|_C\._"),  # framework internals
    re.compile(r"This is step \d/\d of exporting"),  # the ONNX exporter's wrapper around the real cause
    re.compile(r"allow_pickle="),  # numpy's advice on pickled arrays
)


def raw_library_text(message: str) -> str | None:
    """The library phrase ``message`` carries, or None when it reads as edgekd's own words."""
    for pattern in RAW_LIBRARY_TEXT:
        found = pattern.search(message)
        if found:
            return found.group(0)
    return None


def assert_own_words(message: str) -> None:
    """One line, in edgekd's words."""
    assert "\n" not in message.strip(), f"a refusal is one line: {message!r}"
    leaked = raw_library_text(message)
    assert leaked is None, f"a library's raw text reached the user ({leaked!r}): {message}"
