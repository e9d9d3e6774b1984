"""The errors edgekd raises on purpose.

Each carries a one-line message that names what is wrong (the key, the file, the module). The CLI
prints that line and exits non-zero instead of a traceback.
"""

from __future__ import annotations


class EdgekdError(Exception):
    """Base of every error edgekd raises for the user to read."""

    exit_code = 1


class ConfigError(EdgekdError):
    """A recipe, an argument or a name that cannot be used as given."""

    exit_code = 2


class DataError(EdgekdError):
    """Data that cannot be loaded or does not fit the model."""


class BatchError(DataError, ValueError):
    """A batch that is not (inputs, labels[, index]); a ValueError too, for code that probes batches."""


class CheckpointError(EdgekdError):
    """A checkpoint that is missing, corrupt or belongs to another architecture."""


class TrainingError(EdgekdError):
    """Training that cannot go on, such as a NaN or Inf loss."""


class StorageError(EdgekdError):
    """A file that could not be written (disk full, permission denied); the previous one is intact."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of a third-party error, for a one-line message that wraps it."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:limit]
