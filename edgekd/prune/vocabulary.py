"""Vocabulary trimming: the token embedding table cut to the tokens a task's data uses.

In a small text model the embedding table is most of the parameters (all-MiniLM-L6-v2: 11.7M of
22.7M, for 30,522 tokens of which a sentiment corpus uses about 13,000). Trimming keeps the rows of
the tokens seen in the training data plus the tokenizer's special tokens; every other id maps to the
unknown token's row. The id map lives inside the model (a gather before the embedding), so the app
feeds the original tokenizer's ids unchanged and the exported file stays correct for any text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgekd.errors import ConfigError
from edgekd.inputs import split_batch
from edgekd.models.layers import TrimmedEmbedding
from edgekd.stage import RunContext, Stage, register_stage
from edgekd.train.loop import check
from edgekd.utils.modules import set_module
from edgekd.utils.typed import check_fields


def input_embedding(model: nn.Module) -> tuple[str, nn.Module]:
    """The token embedding: a trimmed one, Hugging Face's ``get_input_embeddings()``, else the largest
    ``nn.Embedding``."""
    trimmed = [(n, m) for n, m in model.named_modules() if isinstance(m, TrimmedEmbedding)]
    if trimmed:
        return trimmed[0]
    getter = getattr(model, "get_input_embeddings", None)
    embedding = getter() if callable(getter) else None
    candidates = {id(m): n for n, m in model.named_modules() if isinstance(m, nn.Embedding)}
    if not isinstance(embedding, nn.Embedding) or id(embedding) not in candidates:
        tables = [(m.num_embeddings, n, m) for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
        if not tables:
            raise ConfigError(f"{type(model).__name__} has no token embedding (nn.Embedding) to trim")
        _, name, embedding = max(tables, key=lambda item: item[0])
        return name, embedding
    return candidates[id(embedding)], embedding


def token_counts(loader, input_name: str = "input_ids") -> torch.Tensor:
    """How often each token id occurs in a loader's ``input_name`` input (index: the id)."""
    counts = torch.zeros(0, dtype=torch.long)
    for batch in loader:
        x, _, _ = split_batch(batch)
        if not isinstance(x, dict) or input_name not in x:
            raise ConfigError(f"trimming the vocabulary needs an '{input_name}' input; the data has none")
        batch_counts = torch.bincount(x[input_name].flatten().long())
        if len(batch_counts) > len(counts):
            counts = torch.cat([counts, torch.zeros(len(batch_counts) - len(counts), dtype=torch.long)])
        counts[: len(batch_counts)] += batch_counts
    if not counts.any():
        raise ConfigError("trimming the vocabulary needs training data; the loader is empty")
    return counts


def used_token_ids(loader, input_name: str = "input_ids", min_count: int = 1) -> torch.Tensor:
    """Every token id that occurs at least ``min_count`` times in a loader's ``input_name`` input."""
    return torch.nonzero(token_counts(loader, input_name) >= min_count).flatten()


def trim_vocabulary(model: nn.Module, keep: torch.Tensor, unknown_id: int) -> dict[str, int]:
    """Replace ``model``'s token embedding by the rows ``keep`` (plus ``unknown_id``); returns counts."""
    name, embedding = input_embedding(model)
    if isinstance(embedding, TrimmedEmbedding):
        raise ConfigError(f"the vocabulary of '{name}' is trimmed already")
    vocab = embedding.num_embeddings
    if not 0 <= unknown_id < vocab:
        raise ConfigError(f"unknown token id {unknown_id} is outside the vocabulary of {vocab}")
    keep = torch.unique(torch.cat([keep.flatten().long(), torch.tensor([unknown_id])]))
    if int(keep.max()) >= vocab or int(keep.min()) < 0:
        raise ConfigError(f"the data holds token id {int(keep.max())} but the embedding has {vocab} rows")
    padding = embedding.padding_idx
    trimmed = TrimmedEmbedding(vocab, len(keep), embedding.embedding_dim, None).to(embedding.weight.device)
    with torch.no_grad():
        trimmed.kept.weight.copy_(embedding.weight[keep])
        row = torch.full((vocab,), int(torch.searchsorted(keep, torch.tensor(unknown_id))), dtype=torch.int32)
        row[keep] = torch.arange(len(keep), dtype=torch.int32)
        trimmed.remap.copy_(row)
    trimmed.padding_idx = padding
    set_module(model, name, trimmed)
    return {"vocabulary": vocab, "kept": len(keep), "removed_params": (vocab - len(keep)) * embedding.embedding_dim}


@register_stage("trim_vocab")
@dataclass
class TrimVocabulary(Stage):
    """Cut the student's token embedding to the tokens of the training split (plus special tokens).

    Tokens first seen at test time (or in the app) read the unknown token's row, so the accuracy
    measured on the test set includes that cost. Needs text data (an ``input_ids`` input).

    Attributes:
        min_count: keep only tokens seen at least this often in training (a frequency cutoff: in a
            sentiment corpus about a quarter of the used tokens occur once, and their rows rarely matter).
    """

    name: str = "trim_vocab"
    min_count: int = 1

    def __post_init__(self) -> None:
        check_fields(self)
        valid = isinstance(self.min_count, int) and not isinstance(self.min_count, bool) and self.min_count >= 1
        check(valid, "min_count", f"must be an integer >= 1, got {self.min_count!r}")

    def validate(self, teachers: list[nn.Module], student: nn.Module) -> None:
        input_embedding(student)

    def run(self, ctx: RunContext, student: nn.Module) -> nn.Module:
        tokenizer = ctx.data.extra.get("tokenizer") or {}
        special = [entry["id"] for entry in tokenizer.get("special_tokens", {}).values()]
        unknown = tokenizer.get("special_tokens", {}).get("unk", {}).get("id", 0)
        used = used_token_ids(ctx.data.train, min_count=self.min_count)
        keep = torch.unique(torch.cat([used, torch.tensor(special, dtype=torch.long)]))
        counts = trim_vocabulary(student, keep, unknown)
        params = sum(p.numel() for p in student.parameters())
        seen = "of the training data" if self.min_count == 1 else f"seen {self.min_count}+ times in training"
        ctx.record(
            f"kept {counts['kept']:,} of {counts['vocabulary']:,} tokens (those {seen} and the "
            f"special ones); {counts['removed_params']:,} embedding parameters removed",
            **counts,
            params_after=params,
        )
        return student
