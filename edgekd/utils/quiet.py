"""Keep third-party chatter off the user's terminal: TensorFlow's C++ start-up lines (pulled in by
litert-torch), litert-torch's progress lines, and torch deprecation notes raised inside torchao.

A library must leave its host program's logging alone, so the package itself only quiets the calls
it makes into converters, for their duration (:func:`third_party_quieted`, used by
:func:`native_stderr_captured` and :func:`quiet_import`). The CLI and the bench worker are programs:
they call :func:`quiet_third_party` once for their whole process. Only defaults are set either way, so
a user who asks for those logs through the environment still gets them.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from types import ModuleType

_ENV_DEFAULTS = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "LITERT_TORCH_SHOW_PROGRESS": "n",
}
_NOISY_LOGGERS = ("torch.utils._pytree", "torch.onnx._internal.exporter._registration")


def quiet_third_party() -> None:
    """For a program's whole process (the CLI, the bench worker)."""
    for name, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
    logging.getLogger("torchao").addFilter(_skip_missing_gpu_kernels)


@contextlib.contextmanager
def torch_deprecations_quieted() -> Iterator[None]:
    """torch's deprecation notes raised inside its own pytree code (deep copies of exported graphs while
    training, preparing and converting), for one block or, as a decorator, one call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        yield


@contextlib.contextmanager
def third_party_quieted() -> Iterator[None]:
    """The same quiet for one block only: environment, loggers and warning filters are put back after."""
    unset = [name for name in _ENV_DEFAULTS if name not in os.environ]
    levels = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    torchao = logging.getLogger("torchao")
    filtered_before = _skip_missing_gpu_kernels in torchao.filters  # the CLI's own, for its whole process
    with warnings.catch_warnings():
        try:
            quiet_third_party()
            yield
        finally:
            for name in unset:
                os.environ.pop(name, None)
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            if not filtered_before:
                torchao.removeFilter(_skip_missing_gpu_kernels)


def _skip_missing_gpu_kernels(record: logging.LogRecord) -> bool:
    """torchao warns at import that its CUDA-only kernel libraries do not load on a CPU build."""
    message = record.getMessage()
    return not (message.startswith("Failed to load") and ".so" in message)


@contextlib.contextmanager
def native_stderr_captured(replay: bool = True) -> Iterator[None]:
    """Send what native code writes to fd 2 into a temporary file; replay it if the block fails
    (unless ``replay`` is False: converters whose failure is reported as one line anyway)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, third_party_quieted():
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            if replay:
                sink.seek(0)
                sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quiet_import(name: str) -> ModuleType:
    """Import a module whose native start-up logs would otherwise land on the user's terminal."""
    if name in sys.modules:
        return sys.modules[name]
    with native_stderr_captured():
        return importlib.import_module(name)
