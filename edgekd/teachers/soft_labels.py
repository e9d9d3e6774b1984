"""A teacher that is a file of its outputs: soft labels per training sample, full or top-k as APIs give them.

The file is an ``.npz`` with one row per training sample:

- ``logits``, ``probabilities`` or ``log_probabilities``: ``(samples, classes)`` (``logits`` may hold any
  task's outputs, ``(samples, ...)``);
- or ``top_ids`` ``(samples, k)`` with ``top_logprobs`` or ``top_probs``: the k classes an API returned and
  their (log-)probabilities; the rest of the mass is spread evenly over the other classes;
- ``ids`` (optional) ``(samples,)``: the training sample each row answers, its row in the training data as
  given (``x_train`` before the validation split); without it, row i answers sample i.

:func:`save_soft_labels` writes such a file from any teacher, e.g. once from a paid service.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.data.sources import DataBundle, read_npz
from edgekd.distill.queried import QueriedTeacher
from edgekd.errors import ConfigError, DataError
from edgekd.inputs import forward, split_batch
from edgekd.utils.fileio import atomic_write
from edgekd.utils.modes import inference

FULL_KEYS = ("logits", "probabilities", "log_probabilities")
TOP_KEYS = ("top_logprobs", "top_probs")


class SoftLabels(QueriedTeacher):
    """Distill from outputs on disk, looked up by training sample id; never asked about anything else
    (validation and test are not in the file, so its ledger row shows how it agrees with the training labels)."""

    kind = "soft labels"

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"soft labels '{path}' do not exist")
        super().__init__(path.name, gives="logits")
        self.path = path
        arrays = read_npz(path)
        self._arrays = arrays
        self.top_k = None
        self.classes_needed = any(k in arrays for k in ("probabilities", "log_probabilities", "top_ids"))
        values = self._values(arrays, None)  # top-k rows stay ids until the data says how many classes
        ids = arrays.get("ids", np.arange(len(values)))
        if ids.ndim != 1 or len(ids) != len(values) or not np.issubdtype(ids.dtype, np.integer):
            raise ConfigError(f"soft labels '{path}': ids must be one whole number per row ({len(values)} rows)")
        if len(np.unique(ids)) != len(ids):
            raise ConfigError(f"soft labels '{path}': ids repeat a sample")
        self.ids = ids.astype(np.int64)
        self._row_of = {int(i): row for row, i in enumerate(self.ids)}
        self.table: np.ndarray | None = None if "top_ids" in arrays else values

    def _values(self, arrays: dict[str, np.ndarray], classes: int | None) -> np.ndarray:
        """The stored outputs as logits (log-probabilities where probabilities were stored)."""
        found = [key for key in (*FULL_KEYS, "top_ids") if key in arrays]
        if len(found) != 1:
            what = "more than one of" if found else "none of"
            raise ConfigError(
                f"soft labels '{self.path}': {what} {', '.join((*FULL_KEYS, 'top_ids'))}; give exactly one"
            )
        key = found[0]
        if key == "top_ids":
            return self._completed(arrays, classes)
        values = np.asarray(arrays[key], dtype=np.float32)
        if values.ndim < 2 or not np.isfinite(values).all() and key != "log_probabilities":
            raise ConfigError(f"soft labels '{self.path}': {key} must be (samples, ...) finite numbers")
        if key == "log_probabilities":
            return np.maximum(np.nan_to_num(values, nan=-30.0), -30.0)  # log 0 stays a large negative, not -inf
        if key == "probabilities":
            if (values < 0).any() or not np.allclose(values.sum(1), 1.0, atol=1e-3):
                raise ConfigError(f"soft labels '{self.path}': probabilities must be >= 0 and sum to 1 per row")
            return np.log(np.clip(values, 1e-12, None))
        return values

    def _completed(self, arrays: dict[str, np.ndarray], classes: int | None) -> np.ndarray:
        """Top-k answers as full log-probabilities: the mass left over is shared evenly by the other classes."""
        top = [key for key in TOP_KEYS if key in arrays]
        if len(top) != 1:
            raise ConfigError(f"soft labels '{self.path}': top_ids needs exactly one of {', '.join(TOP_KEYS)}")
        ids, given = np.asarray(arrays["top_ids"]), np.asarray(arrays[top[0]], dtype=np.float64)
        if ids.shape != given.shape or ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ConfigError(
                f"soft labels '{self.path}': top_ids (whole numbers) and {top[0]} must both be (samples, k)"
            )
        if classes is None:
            return ids
        if ids.min() < 0 or ids.max() >= classes:
            raise ConfigError(
                f"soft labels '{self.path}': top_ids outside 0..{classes - 1} (the data has {classes} classes)"
            )
        probs = np.exp(given) if top[0] == "top_logprobs" else given
        if (probs < 0).any() or (probs.sum(1) > 1 + 1e-3).any():
            raise ConfigError(
                f"soft labels '{self.path}': {top[0]} give more than all of the probability to the top {ids.shape[1]}"
            )
        k = ids.shape[1]
        self.top_k = k
        rest = np.clip(1.0 - probs.sum(1, keepdims=True), 1e-6, None) / max(classes - k, 1)
        full = np.repeat(rest, classes, axis=1)
        np.put_along_axis(full, ids, probs, axis=1)
        return np.log(np.clip(full, 1e-12, None)).astype(np.float32)

    def check_data(self, data: DataBundle) -> None:
        """One line before any training: classes the outputs do not fit, training samples the file misses."""
        classes = data.num_classes
        if self.classes_needed and data.task.name != "classification":
            raise ConfigError(
                f"soft labels '{self.path}': class probabilities teach a classifier, not {data.task.name}"
            )
        if self.table is None:
            self.table = self._completed(self._arrays, classes)
        if data.task.name == "classification" and (self.table.ndim != 2 or self.table.shape[1] != classes):
            raise ConfigError(
                f"soft labels '{self.path}': rows of {tuple(self.table.shape[1:])} for data with {classes} classes"
            )
        wanted = training_ids(data.train)
        if wanted is not None:
            missing = np.setdiff1d(wanted, self.ids)
            if len(missing):
                raise ConfigError(
                    f"soft labels '{self.path}' cover {len(wanted) - len(missing):,} of the {len(wanted):,} training "
                    f"samples (missing e.g. sample {int(missing[0])}); write them for every training sample "
                    "(ek.teachers.save_soft_labels)"
                )

    def answer(self, x, ids: torch.Tensor | None) -> list[np.ndarray]:
        if ids is None:
            raise ConfigError(
                f"soft labels '{self.path}' answer training samples by their id; this batch has none (a loader "
                "that yields (x, y) without an index, or validation / test data, which the file does not hold)"
            )
        if self.table is None:
            raise ConfigError(f"soft labels '{self.path}': top-k rows need the data's classes; run them in a Pipeline")
        try:
            rows = [self._row_of[int(i)] for i in ids]
        except KeyError as exc:
            raise ConfigError(f"soft labels '{self.path}' hold no row for training sample {exc.args[0]}") from None
        self.reused += len(rows)
        return [self.table[rows]]

    def agreement(self, data: DataBundle) -> float | None:
        """How often the soft labels' top class is the training label: a file keyed by the wrong rows is at
        chance here, before any training."""
        wanted, labels = training_ids(data.train), getattr(data.train, "y", None)
        if wanted is None or not isinstance(labels, torch.Tensor) or labels.dim() != 1 or self.table is None:
            return None
        rows = [self._row_of[int(i)] for i in wanted]
        return float((self.table[rows].reshape(len(rows), -1).argmax(1) == labels.numpy()).mean())

    def size_bytes(self) -> int:
        return self.path.stat().st_size


def training_ids(loader) -> np.ndarray | None:
    """The id of every training sample an in-memory loader holds (its row in the data as given)."""
    ids = getattr(loader, "ids", None)
    if ids is not None:
        return np.asarray(ids)
    size = getattr(loader, "dataset_size", None)
    return np.arange(size) if isinstance(size, int) and hasattr(loader, "x") else None


def save_soft_labels(teacher: nn.Module, data: DataBundle, path: str | Path, top_k: int | None = None) -> Path:
    """Ask ``teacher`` (a module, a file or a function teacher) about every training sample once and write its
    answers as soft labels: full logits, or with ``top_k`` the top classes and their log-probabilities."""
    if top_k is not None and (isinstance(top_k, bool) or not 1 <= int(top_k) < data.num_classes):
        raise ConfigError(f"top_k: must be in 1..{data.num_classes - 1}, got {top_k!r}")
    if getattr(data.train, "deterministic", True) is False:
        raise DataError(
            "save_soft_labels: the training data is augmented; write soft labels from the samples as they are"
        )
    if isinstance(teacher, QueriedTeacher):
        teacher.classes = data.task.name == "classification"  # a service's probabilities are read as such
    table = getattr(data.train, "ids", None)
    ids, outputs = [], []
    with inference(teacher):
        for batch in data.train:
            x, _, index = split_batch(batch)
            if index is None:
                raise DataError("save_soft_labels: the training loader yields no sample index; yield (x, y, index)")
            ids.append(index if table is None else table[index])
            outputs.append(data.task.output_of(forward(teacher, x)).float().cpu())
    order = torch.cat(ids).argsort()
    logits, sample_ids = torch.cat(outputs)[order], torch.cat(ids)[order].numpy()
    if top_k is None:
        arrays = {"ids": sample_ids, "logits": logits.numpy()}
    else:
        best = torch.log_softmax(logits, 1).topk(int(top_k), dim=1)
        arrays = {"ids": sample_ids, "top_ids": best.indices.numpy(), "top_logprobs": best.values.numpy()}
    return atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))
