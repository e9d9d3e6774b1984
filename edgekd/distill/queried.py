"""A teacher seen only through its answers: a deployed file, a service's function, or outputs on disk.

Response distillation needs nothing but the teacher's outputs, so a teacher need not be a module whose
layers we can read. :class:`QueriedTeacher` is the module face such a teacher wears inside the run:
no parameters, a forward that asks the teacher about each sample once (answers are kept per sample,
keyed by the sample's bytes, across epochs and stages) and counts the queries, so a paid service is
asked as little as possible and the ledger says how often it was. What needs the teacher's insides
(feature taps, a copy that trains, a student cut from its blocks) is refused in one line with
:func:`insides_refused`.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.errors import ConfigError, EdgekdError, first_line
from edgekd.inputs import ModelInputs, rows, to_numpy
from edgekd.utils.fileio import atomic_write

ANSWER_LIMIT_BYTES = 1024**3  # answers kept in memory; past this, samples are asked again (and counted)
GIVES = ("auto", "logits", "probabilities", "log-probabilities")


class QueryBudgetError(EdgekdError):
    """A teacher asked more often than its ``max_queries`` allows."""


class QueriedTeacher(nn.Module):
    """A teacher without insides: subclasses answer a batch of inputs in :meth:`ask`.

    Args:
        source: what the teacher is, for messages and the ledger (a file name, a function's name).
        max_queries: most samples the teacher may be asked about in the whole run (answers reused from
            memory are free); a run that would pass it stops with one line before the query is sent.
        per_second: most samples asked per second (a service's rate limit); the run waits between calls.
        gives: what the answers are: ``logits``, ``probabilities`` or ``log-probabilities`` of classes;
            ``auto`` reads class probabilities (rows >= 0 that sum to 1) as such, and says so.
    """

    kind = "queried"

    def __init__(
        self, source: str, max_queries: int | None = None, per_second: float | None = None, gives: str = "auto"
    ) -> None:
        super().__init__()
        if max_queries is not None and (isinstance(max_queries, bool) or int(max_queries) < 1):
            raise ConfigError(f"max_queries: must be a whole number >= 1, got {max_queries!r}")
        if per_second is not None and not float(per_second) > 0:
            raise ConfigError(f"per_second: must be > 0, got {per_second!r}")
        if gives not in GIVES:
            raise ConfigError(f"gives: must be one of {', '.join(GIVES)}, got {gives!r}")
        self.source = source
        self.max_queries = None if max_queries is None else int(max_queries)
        self.per_second = None if per_second is None else float(per_second)
        self.gives = gives
        self.classes = False  # the Pipeline sets it for a classification task: only then are rows read as probabilities
        self.queries = 0  # samples sent to the teacher
        self.reused = 0  # samples answered from memory
        self.waited_s = 0.0
        self.notes: list[str] = []
        self._answers: dict[bytes, list[np.ndarray]] = {}
        self._answer_bytes = 0
        self._read_as: str | None = None if gives == "auto" else gives
        self._ids: torch.Tensor | None = None
        self._last_ask = 0.0

    def describe(self) -> str:
        return f"{self.kind} {self.source}"

    # what the Pipeline and the objective call -------------------------------------------------------

    @contextlib.contextmanager
    def asked_about(self, ids: torch.Tensor | None) -> Iterator[None]:
        """For the block, the batch's training-sample ids (what outputs on disk are keyed by)."""
        self._ids = ids
        try:
            yield
        finally:
            self._ids = None

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(args) > 1 or (args and kwargs):
            raise ConfigError(f"teacher {self.source}: takes one input tensor or named inputs, got {len(args)} tensors")
        x: ModelInputs = kwargs if kwargs else args[0]
        device = next(iter(x.values())).device if isinstance(x, Mapping) else x.device
        outputs = [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in self.answer(x, self._ids)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def answer(self, x: ModelInputs, ids: torch.Tensor | None) -> list[np.ndarray]:
        """Every output for the rows of ``x``: from memory where the sample was asked about before."""
        arrays = to_numpy(x)
        keys = sample_keys(arrays)
        fresh = list(dict.fromkeys(k for k in keys if k not in self._answers))
        position = {key: i for i, key in reversed(list(enumerate(keys)))}
        asked: dict[bytes, list[np.ndarray]] = {}
        if fresh:
            where = torch.as_tensor([position[k] for k in fresh])
            picked_ids = None if ids is None else ids[where]
            answers = self._checked(
                self._ask_within_limits(rows(arrays, where.numpy()), picked_ids, len(fresh)), len(fresh)
            )
            asked = {key: [a[i] for a in answers] for i, key in enumerate(fresh)}
            self._keep(asked)
        self.reused += len(keys) - len(fresh)
        found = [asked.get(k) or self._answers[k] for k in keys]
        return [np.stack([sample[j] for sample in found]) for j in range(len(found[0]))]

    def ask(self, x: np.ndarray | dict[str, np.ndarray], ids: torch.Tensor | None) -> list[np.ndarray]:
        """The teacher's outputs (one array per output, batch first) for the rows of ``x``."""
        raise NotImplementedError

    def expected_queries(self, samples: int) -> None:
        """One line before any training when ``max_queries`` cannot cover ``samples`` distinct samples."""
        if self.max_queries is not None and samples > self.max_queries:
            raise ConfigError(
                f"teacher {self.source}: max_queries={self.max_queries:,} is fewer than the {samples:,} distinct "
                "samples the run asks about (training, validation and test); raise max_queries or use less data"
            )

    def save_answers(self, path: Path) -> None:
        """The answers so far, so a resumed run asks no sample twice (a paid service is not paid twice)."""
        if not self._answers:
            return
        keys = list(self._answers)
        arrays = {"keys": np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), -1),
                  "queries": np.asarray(self.queries)}  # fmt: skip
        for j in range(len(self._answers[keys[0]])):
            arrays[f"output{j}"] = np.stack([self._answers[k][j] for k in keys])
        atomic_write(path, lambda handle: np.savez(handle, **arrays))

    def load_answers(self, path: Path) -> None:
        """Answers a killed run saved; their queries count as asked."""
        if not path.is_file():
            return
        with np.load(path, allow_pickle=False) as stored:
            outputs = [stored[f"output{j}"] for j in range(sum(k.startswith("output") for k in stored.files))]
            for row, key in enumerate(stored["keys"]):
                self._answers[key.tobytes()] = [output[row] for output in outputs]
            self.queries = int(stored["queries"])
        self._answer_bytes = sum(a.nbytes for sample in self._answers.values() for a in sample)

    def query_facts(self) -> dict:
        return {"queries": self.queries, "reused": self.reused, "waited_s": round(self.waited_s, 2)}

    # inside ---------------------------------------------------------------------------------------------

    def _ask_within_limits(self, x, ids: torch.Tensor | None, samples: int) -> list[np.ndarray]:
        if self.max_queries is not None and self.queries + samples > self.max_queries:
            raise QueryBudgetError(
                f"teacher {self.source}: {samples} more queries would pass max_queries={self.max_queries:,} "
                f"({self.queries:,} asked so far); raise max_queries, or keep the training data free of random "
                "augmentation so each sample is asked once"
            )
        if self.per_second is not None:
            wait = self._last_ask + samples / self.per_second - time.monotonic()
            if wait > 0:
                time.sleep(wait)
                self.waited_s += wait
        self._last_ask = time.monotonic()
        try:
            answers = self.ask(x, ids)
        except EdgekdError:
            raise
        except Exception as exc:  # a service or runtime failing: one line naming the teacher
            raise EdgekdError(f"teacher {self.source} failed on a batch of {samples}: {_first_line(exc)}") from exc
        self.queries += samples
        return answers

    def _checked(self, answers: list[np.ndarray], samples: int) -> list[np.ndarray]:
        arrays = [np.asarray(a) for a in answers]
        if not arrays or any(a.ndim == 0 or len(a) != samples for a in arrays):
            shapes = ", ".join(str(a.shape) for a in arrays) or "nothing"
            raise EdgekdError(f"teacher {self.source}: asked about {samples} samples, answered {shapes}")
        if not all(np.issubdtype(a.dtype, np.number) for a in arrays):
            raise EdgekdError(f"teacher {self.source}: answers must be numbers, got {arrays[0].dtype}")
        arrays = [a.astype(np.float32) for a in arrays]
        if not all(np.isfinite(a).all() for a in arrays):
            raise EdgekdError(f"teacher {self.source}: answered NaN or Inf")
        return [self._as_logits(arrays[0]), *arrays[1:]]

    def _as_logits(self, first: np.ndarray) -> np.ndarray:
        """Class probabilities read as log-probabilities: softmax(log p / T) is p softened by T."""
        if self._read_as is None:
            distribution = (
                self.classes and first.ndim == 2 and first.shape[1] >= 2 and bool((first >= 0).all())
                and bool(np.allclose(first.sum(1), 1.0, atol=1e-3))
            )  # fmt: skip
            self._read_as = "probabilities" if distribution else "logits"
            if distribution:
                self.notes.append("its answers are class probabilities (rows sum to 1): read as log-probabilities")
        if self._read_as == "probabilities":
            return np.log(np.clip(first, 1e-12, None)).astype(np.float32)
        return first

    def _keep(self, asked: dict[bytes, list[np.ndarray]]) -> None:
        size = sum(a.nbytes for sample in asked.values() for a in sample)
        if self._answer_bytes + size > ANSWER_LIMIT_BYTES:
            if "answers kept" not in " ".join(self.notes):
                self.notes.append(f"answers kept up to {ANSWER_LIMIT_BYTES >> 20} MiB; later samples asked again")
            return
        self._answers.update(asked)
        self._answer_bytes += size


def sample_keys(x: np.ndarray | dict[str, np.ndarray]) -> list[bytes]:
    """One digest per row of the inputs: the same sample gets the same key in any batch, split or stage."""
    parts = list(x.values()) if isinstance(x, Mapping) else [x]
    keys = []
    for row in range(len(parts[0])):
        digest = hashlib.blake2b(digest_size=16)
        for part in parts:
            digest.update(np.ascontiguousarray(part[row]).tobytes())
        keys.append(digest.digest())
    return keys


def is_queried(model: object) -> bool:
    return isinstance(model, QueriedTeacher)


def insides_refused(teachers: list[nn.Module], what: str, index: int | None = 0) -> None:
    """ConfigError when ``what`` needs a teacher's layers and that teacher is only queried.

    ``index``: which teacher ``what`` reads (None: every one)."""
    chosen = teachers if index is None else teachers[index : index + 1]
    for teacher in chosen:
        if is_queried(teacher):
            raise ConfigError(
                f"{what} reads the teacher's layers, and the teacher ({teacher.describe()}) is seen only through "
                "its outputs; leave it out, or pass the teacher as a torch.nn.Module"
            )


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"


__all__ = ["QueriedTeacher", "QueryBudgetError", "insides_refused", "is_queried", "sample_keys"]
