"""A tiny word-level BERT tokenizer, a synthetic sentiment corpus and tiny BERT classifiers for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

POSITIVE = ["good", "great", "fine", "superb", "lovely", "fun"]
NEGATIVE = ["bad", "awful", "dull", "poor", "boring", "weak"]
FILLER = ["the", "movie", "film", "plot", "was", "a", "very", "and", "story", "actors", "it", "is"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNUSED = ["brilliant", "terrible", "director"]  # in the vocabulary, never in the generated texts
VOCABULARY = SPECIAL + POSITIVE + NEGATIVE + FILLER + UNUSED


def tokenizer_folder(folder: Path) -> Path:
    """A saved word-level BERT tokenizer (vocab.txt, tokenizer.json, config), loadable by AutoTokenizer."""
    from transformers import BertTokenizerFast

    if not (folder / "tokenizer_config.json").is_file():
        vocab = {word: i for i, word in enumerate(VOCABULARY)}
        BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(str(folder))
    return folder


def tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_folder(folder)))


def sentiment_texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Sentences of filler words with one or two sentiment words; the label is their polarity."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        positive = bool(rng.integers(2))
        words = list(rng.choice(FILLER, rng.integers(3, 9)))
        for _ in range(rng.integers(1, 3)):
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(POSITIVE if positive else NEGATIVE)))
        texts.append(" ".join(words).capitalize())
        labels.append("positive" if positive else "negative")
    return texts, labels


def tiny_bert(layers: int = 4, width: int = 32, heads: int = 4, num_labels: int = 2, seed: int = 0):
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(VOCABULARY), hidden_size=width, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=2 * width, max_position_embeddings=64, num_labels=num_labels,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return BertForSequenceClassification(config)
