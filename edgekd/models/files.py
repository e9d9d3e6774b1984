"""Model files: weights plus structure, loadable without pickling code.

A pruned model is the original architecture with smaller layers. A model file stores the state dict
plus each module's shape attributes (channel counts, features, heads); loading rebuilds the
architecture from code, shrinks each module to the recorded shape, then loads the weights, with
``torch.load(weights_only=True)`` throughout. Unpruned models use the same format, so one loader
serves every checkpoint a run writes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgekd.catalog import catalog
from edgekd.errors import CheckpointError
from edgekd.models.checkpoint import atomic_save, load_weights, safe_load
from edgekd.models.layers import TrimmedEmbedding
from edgekd.utils.modules import set_module

SHAPE_ATTRIBUTES = (
    "in_channels",
    "out_channels",
    "groups",
    "in_features",
    "out_features",
    "num_features",
    "normalized_shape",
    "num_heads",
    "head_dim",
    "embed_dim",
    "num_attention_heads",  # Hugging Face attention, pruned by whole heads
    "all_head_size",
    "n_heads",  # DistilBERT's head count
)
FORMAT = "edgekd-model-v1"
TRIMMED = "trimmed_vocabulary"  # a token embedding cut to the task's tokens (edgekd.prune.vocabulary)


def structure_of(model: nn.Module) -> dict[str, dict[str, int | list[int]]]:
    """Per module, the shape attributes that pruning may have changed."""
    structure = {}
    for name, module in model.named_modules():
        attrs = {}
        for attr in SHAPE_ATTRIBUTES:
            value = getattr(module, attr, None)
            if isinstance(value, int) and not isinstance(value, bool):
                attrs[attr] = value
            elif isinstance(value, tuple) and all(isinstance(v, int) for v in value):
                attrs[attr] = list(value)
        if type(module).__name__ == "TrimmedEmbedding":  # rebuilt by apply_structure before its weights load
            attrs = {TRIMMED: [module.num_embeddings, module.kept.num_embeddings, module.embedding_dim]}
        if attrs:
            structure[name] = attrs
    return structure


def save_model(model: nn.Module, path: str | Path) -> Path:
    """Write the structure and weights as one weights-only file, atomically.

    A model that saves itself in its own format (a quantized graph: ``.pt2``) does so beside ``path``
    with its own suffix; the path written is returned.
    """
    suffix = getattr(model, "file_suffix", None)
    if suffix is not None:
        return model.save(Path(path).with_suffix(suffix))
    payload = {"format": FORMAT, "structure": structure_of(model), "model": model.state_dict()}
    return atomic_save(payload, path)


def load_model(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a checkpoint into a freshly built ``model`` (same architecture, unpruned).

    An edgekd model file first shrinks the model to the recorded structure; a plain state dict
    (or one under ``"model"``) is loaded as it is, with its shapes checked. A quantized model file
    (``.pt2``) holds its own graph and is returned as it is; ``model`` is not needed for it.
    """
    reader = Path(path).suffix.lstrip(".")
    if reader in catalog("model_files"):  # a file that holds its own graph (a quantized ``.pt2``)
        return catalog("model_files").get(reader)(path)
    payload = safe_load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return load_weights(model, path, payload)
    apply_structure(model, payload["structure"], payload["model"], str(path))
    return load_weights(model, path, payload)


def apply_structure(model: nn.Module, structure: dict, state: dict[str, torch.Tensor], source: str) -> None:
    present = {name for name, _ in model.named_modules()}
    for name, attrs in structure.items():
        if TRIMMED in attrs and name in present:
            set_module(model, name, TrimmedEmbedding(*attrs[TRIMMED]))
    modules = dict(model.named_modules())
    for name, attrs in structure.items():
        if TRIMMED in attrs:
            continue
        if name not in modules:
            raise CheckpointError(f"checkpoint '{source}' is for another architecture: no module '{name}' in the model")
        for attr, value in attrs.items():
            setattr(modules[name], attr, tuple(value) if isinstance(value, list) else value)
    for key, tensor in state.items():
        owner_name, _, leaf = key.rpartition(".")
        owner = modules.get(owner_name)
        if owner is None:
            raise CheckpointError(f"checkpoint '{source}' is for another architecture: unexpected '{key}'")
        current = getattr(owner, leaf, None)
        if not isinstance(current, torch.Tensor):
            raise CheckpointError(f"checkpoint '{source}' is for another architecture: unexpected '{key}'")
        if current.shape != tensor.shape:
            replacement = torch.empty(tensor.shape, dtype=current.dtype, device=current.device)
            if isinstance(current, nn.Parameter):
                setattr(owner, leaf, nn.Parameter(replacement, requires_grad=current.requires_grad))
            else:
                owner.register_buffer(leaf, replacement)
