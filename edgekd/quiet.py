"""Keep third-party chatter off the user's terminal: TensorFlow's C++ start-up lines (pulled in by
litert-torch), litert-torch's progress lines, and torch deprecation notes raised inside torchao.

Only defaults are set, so a user who asks for those logs through the environment still gets them.
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
    for name, value in _ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
    logging.getLogger("torchao").addFilter(_skip_missing_gpu_kernels)


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
    with tempfile.TemporaryFile() as sink:
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
