"""A teacher that is an exported file (``.onnx``, ``.tflite``...), run in the runtime an app would use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgekd.distill.queried import QueriedTeacher
from edgekd.errors import ConfigError
from edgekd.formats import format_of, side_data_path, suffixes
from edgekd.formats.runner import Runner, RuntimeLoadError, open_runner


class FileTeacher(QueriedTeacher):
    """Distill from a file: its runtime answers each sample once (see :class:`QueriedTeacher` for the options).

    The file is what the teacher is: the benchmark measures it as it is (``bench_teacher``), and its
    size is the file's."""

    kind = "file"

    def __init__(self, path: str | Path, **options) -> None:
        path = Path(path)
        fmt = format_of(path)
        if fmt is None:
            raise ConfigError(
                f"teacher file '{path}': not a model file edgekd can run (expected {', '.join(suffixes())})"
            )
        if not path.is_file():
            raise ConfigError(f"teacher file '{path}' does not exist")
        super().__init__(path.name, **options)
        self.path, self.format = path, fmt.name
        self._runner: Runner | None = None

    @property
    def runner(self) -> Runner:
        """The file loaded in its runtime on first use (a broken file fails in one line naming it)."""
        if self._runner is None:
            try:
                self._runner = open_runner(self.path)
            except RuntimeLoadError as exc:
                raise ConfigError(f"teacher file: {exc}") from exc
            except Exception as exc:  # the runtime's own refusal of a file that is no model
                raise ConfigError(f"teacher file '{self.path}' does not load in its runtime: {exc}") from exc
        return self._runner

    def ask(self, x: np.ndarray | dict[str, np.ndarray], ids: torch.Tensor | None) -> list[np.ndarray]:
        self._check_sample_shapes(x)
        return self.runner.run_all(x)

    def _check_sample_shapes(self, x: np.ndarray | dict[str, np.ndarray]) -> None:
        """A sample whose shape the file does not take is named with both shapes, before the runtime's own
        error (which names neither in one line)."""
        arrays = x if isinstance(x, dict) else dict(zip([spec.name for spec in self.runner.inputs[:1]], [x]))
        for spec in self.runner.inputs:
            array = arrays.get(spec.name)
            if array is None or not spec.shape:
                continue
            expected, got = list(spec.shape)[1:], list(np.shape(array))[1:]
            fixed = [isinstance(e, int) and e > 0 for e in expected]
            if len(expected) != len(got) or any(f and e != g for f, e, g in zip(fixed, expected, got)):
                per_sample = "x".join(str(e) if f else "?" for f, e in zip(fixed, expected)) or "a scalar"
                raise ConfigError(
                    f"teacher file '{self.path.name}' takes {spec.name} samples of shape {per_sample}, the data "
                    f"gives {'x'.join(map(str, got)) or 'scalars'}: feed it the data it was exported for"
                )

    def size_bytes(self) -> int:
        side = side_data_path(self.path)
        return self.path.stat().st_size + (side.stat().st_size if side.is_file() else 0)

    def __getstate__(self) -> dict:  # a runtime session does not copy; the copy loads the file again
        return {**super().__getstate__(), "_runner": None}
