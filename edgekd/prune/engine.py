"""Channel pruning on torch-pruning's dependency graph, with its failures turned into clear errors.

torch-pruning (DepGraph) finds which layers must shrink together; we only choose what to prune, keep
attention heads consistent, recalibrate BatchNorm (edgekd.train.batchnorm), and name the module when tracing fails.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from edgekd.catalog import catalog
from edgekd.errors import ConfigError, EdgekdError, first_line
from edgekd.inputs import ModelInputs, Signature, forward, split_batch, to_device
from edgekd.models.cost import count_macs, count_params
from edgekd.outputs import logits_of, raw_output, tensors_in
from edgekd.tasks import Task
from edgekd.tasks.classification import Classification
from edgekd.utils.modes import inference
from edgekd.utils.modules import resolve_module


# Channel importances by name (the ``importances`` catalog, :mod:`edgekd.catalog`): each builds a fresh
# torch-pruning criterion. A package adds its own as an entry point of ``edgekd.importances``.
def l1_importance() -> tp.importance.Importance:
    return tp.importance.GroupMagnitudeImportance(p=1)


def l2_importance() -> tp.importance.Importance:
    return tp.importance.GroupMagnitudeImportance(p=2)


def taylor_importance() -> tp.importance.Importance:
    return tp.importance.GroupTaylorImportance()


def bn_scale_importance() -> tp.importance.Importance:
    return tp.importance.BNScaleImportance()


def lamp_importance() -> tp.importance.Importance:
    return tp.importance.LAMPImportance(p=2)


def fpgm_importance() -> tp.importance.Importance:
    return tp.importance.FPGMImportance(p=2)


def importance_names() -> list[str]:
    return catalog("importances").names()


NEEDS_GRADIENTS = {"taylor"}


class PruningError(EdgekdError):
    """torch-pruning could not trace or prune a part of the model."""


@dataclass
class PruneSpec:
    """What to prune: the knobs torch-pruning takes, by module name rather than module object."""

    ratio: float = 0.5
    importance: str = "l2"
    global_pruning: bool = False
    round_to: int | None = 8
    ignore: list[str] | None = None
    per_layer: dict[str, float] = field(default_factory=dict)
    max_ratio: float = 0.9


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Modules with a fused ``qkv`` Linear and a ``num_heads`` attribute (ViT-style attention)."""
    return [m for m in model.modules() if isinstance(getattr(m, "qkv", None), nn.Linear) and hasattr(m, "num_heads")]


@dataclass(frozen=True)
class AttentionNaming:
    """How one family of Hugging Face attention names its query/key/value Linears and its head count."""

    projections: tuple[str, str, str]
    heads: str


ATTENTION_NAMINGS = (
    AttentionNaming(("query", "key", "value"), "num_attention_heads"),  # BERT, MiniLM, RoBERTa, ViT, ...
    AttentionNaming(("q_lin", "k_lin", "v_lin"), "n_heads"),  # DistilBERT
    AttentionNaming(("q_proj", "k_proj", "v_proj"), "num_heads"),  # BART, CLIP, Whisper, ...
)
FFN_SUFFIXES = ("intermediate.dense", "ffn.lin1", "mlp.fc1", ".fc1")  # each block's feed-forward widening
FFN_CONFIG_KEYS = ("intermediate_size", "hidden_dim", "ffn_dim", "encoder_ffn_dim")


def attention_naming(module: nn.Module) -> AttentionNaming | None:
    """The naming ``module`` follows when it is split q/k/v attention with a head count, else None."""
    for naming in ATTENTION_NAMINGS:
        if all(isinstance(getattr(module, part, None), nn.Linear) for part in naming.projections) and isinstance(
            getattr(module, naming.heads, None), int
        ):
            return naming
    return None


def split_attention_modules(model: nn.Module) -> list[nn.Module]:
    """Hugging Face style attention: separate query/key/value Linears and a head count, under any of
    :data:`ATTENTION_NAMINGS`. Pruned by whole heads, never by head width."""
    return [m for m in model.modules() if attention_naming(m) is not None]


def head_projections(attention: nn.Module) -> list[nn.Linear]:
    """The query, key and value Linears of a split attention module."""
    return [getattr(attention, part) for part in attention_naming(attention).projections]


def head_count(attention: nn.Module) -> int:
    return getattr(attention, attention_naming(attention).heads)


def transformer_layout(model: nn.Module) -> dict[str, list[int]]:
    """Heads and feed-forward width per block of a Hugging Face style transformer (empty otherwise)."""
    attention = split_attention_modules(model)
    if not attention:
        return {}
    ffn = [m.out_features for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.endswith(FFN_SUFFIXES)]
    return {"heads": [head_count(m) for m in attention], "ffn": ffn}


def _sync_transformer(model: nn.Module, pruner) -> None:
    """Each attention module told its new head count; a Hugging Face config's feed-forward width
    follows when every block has the same (the heads' count cannot be expressed in such a config
    once it differs from ``hidden_size / head size``: edgekd's model file records it per module)."""
    for attention in split_attention_modules(model):
        query = head_projections(attention)[0]
        setattr(attention, attention_naming(attention).heads, pruner.num_heads[query])
        if hasattr(attention, "all_head_size"):
            attention.all_head_size = query.out_features
    config = getattr(model, "config", None)
    widths = set(transformer_layout(model).get("ffn", []))
    key = next((k for k in FFN_CONFIG_KEYS if isinstance(getattr(config, k, None), int)), None)
    if key is not None and len(widths) == 1:
        setattr(config, key, widths.pop())


def _output_width(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.modules.conv._ConvNd):  # transposed too: an upsampling head's classes
        return module.out_channels
    return None


def output_widths(model: nn.Module, example: ModelInputs | None) -> set[int]:
    """The channel count of each output of a forward with several (a detector's heatmaps and boxes): the
    layers that produce them must keep it."""
    if example is None:
        return set()
    with inference(model):
        tensors = tensors_in(raw_output(model, lambda: forward(model, example)))
    return {int(t.shape[1]) for t in tensors if t.dim() >= 2} if len(tensors) > 1 else set()


def default_ignore(model: nn.Module, num_classes: int, example: ModelInputs | None = None) -> list[str]:
    """What is never pruned: the head (Linear layers, or convolutions for per-pixel outputs, that produce as
    many values as the task's outputs: classes, labels or targets; with ``example``, the width of every
    output of a forward with several) and a language model's output head (Hugging Face's
    ``get_output_embeddings()``). A hidden layer of such a width is kept whole too: it costs some pruning,
    never a broken output."""
    widths = {num_classes} | output_widths(model, example)
    names = [name for name, m in model.named_modules() if _output_width(m) in widths]
    heads = getattr(model, "get_output_embeddings", None)
    head = heads() if callable(heads) else None
    if isinstance(head, nn.Module):
        names += [name for name, m in model.named_modules() if m is head and name not in names]
    return names


def protected(
    model: nn.Module, num_classes: int, ignore: Iterable[str] | None, example: ModelInputs | None = None
) -> list[str]:
    """The default protections plus the user's ``ignore``: naming a module to skip never unprotects the head."""
    names = default_ignore(model, num_classes, example)
    return names + [name for name in (ignore or []) if name not in names]


def resolve_ignore(model: nn.Module, names: Iterable[str]) -> list[nn.Module]:
    """The modules named; ``""`` is the model itself (a student that is a lone head)."""
    return [model if name == "" else resolve_module(model, name, "ignore") for name in names]


def _module_in_traceback(model: nn.Module, tb) -> str | None:
    """The innermost model submodule seen in the failing frames: what torch-pruning choked on."""
    names = {id(m): n for n, m in model.named_modules()}
    found = None
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            if isinstance(value, nn.Module) and id(value) in names and names[id(value)]:
                found = names[id(value)]
        tb = tb.tb_next
    return found


def check_importance(name: str, key: str = "importance") -> None:
    """The one check of an importance name, for the Prune stage, the sensitivity probe and the CLI."""
    if name not in catalog("importances"):
        raise ConfigError(f"{key}: must be one of {', '.join(importance_names())}, got '{name}'")


def build_pruner(model: nn.Module, example: ModelInputs, spec: PruneSpec, num_classes: int, steps: int = 1):
    """A torch-pruning pruner for ``model``; tracing failures become a PruningError naming the module."""
    check_importance(spec.importance)
    ignore_names = protected(model, num_classes, spec.ignore, example)
    ignored = resolve_ignore(model, ignore_names)
    per_layer = {resolve_ignore(model, [name])[0]: r for name, r in spec.per_layer.items()}
    heads = {m.qkv: m.num_heads for m in attention_modules(model)}
    split = split_attention_modules(model)
    if spec.round_to and not spec.global_pruning and not heads and not split:
        per_layer |= rounding_caps(model, spec, ignored, per_layer)
    transformer = {}
    if split:  # whole heads and feed-forward neurons go; the residual width (the embeddings') stays
        heads = {linear: head_count(m) for m in split for linear in head_projections(m)}
        ignored += [m for m in model.modules() if isinstance(m, nn.Embedding)]
        transformer = {"prune_num_heads": True, "prune_head_dims": False, "head_pruning_ratio": spec.ratio,
                       "output_transform": lambda output: logits_of(output).sum()}  # fmt: skip
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tp.pruner.BasePruner(
                model,
                example,
                importance=catalog("importances").get(spec.importance)(),
                global_pruning=spec.global_pruning,
                pruning_ratio=spec.ratio,
                pruning_ratio_dict=per_layer or None,
                max_pruning_ratio=spec.max_ratio,
                iterative_steps=steps,
                ignored_layers=ignored,
                round_to=spec.round_to,
                num_heads=heads,
                **({"prune_head_dims": bool(heads), "prune_num_heads": False} | transformer),
            )
    except EdgekdError:
        raise
    except Exception as exc:  # torch-pruning raises many kinds while tracing a user's model
        raise _tracing_error(model, exc, ignore_names) from exc


def rounding_caps(model: nn.Module, spec: PruneSpec, ignored: list[nn.Module],
                  per_layer: dict[nn.Module, float]) -> dict[nn.Module, float]:  # fmt: skip
    """Ratios lowered so that ``round_to`` channels survive in every layer a cut would empty.

    torch-pruning rounds the kept channels down to a multiple of ``round_to`` and skips a group whose
    kept count rounds to zero: a 24-channel layer cut by 90% (2 kept, rounded to 0) would stay whole, so
    the deeper the ratio, the more of a narrow network's layers (the stem, the early bottlenecks) would
    escape it. Capped, such a layer keeps ``round_to`` channels, the fewest the rounding allows.
    """
    caps = {}
    for module in model.modules():
        if module in ignored or not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        channels = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        ratio = per_layer.get(module, spec.ratio)
        if ratio > 0 and int(channels * (1 - ratio)) < spec.round_to:
            # half a channel over round_to: torch-pruning keeps int(channels * (1 - ratio)) = round_to
            caps[module] = max(0.0, 1 - (spec.round_to + 0.5) / channels)
    return caps


def _tracing_error(model: nn.Module, exc: Exception, ignored: Iterable[str] = ()) -> PruningError:
    """One line naming the module torch-pruning choked on, with a hint that changes something: a module
    already kept whole is never suggested again (following the hint must not give the same refusal)."""
    where = _module_in_traceback(model, sys.exc_info()[2])
    first = first_line(exc)
    if where and where in set(ignored):
        kind = type(dict(model.named_modules())[where]).__name__
        return PruningError(
            f"torch-pruning cannot trace module '{where}' ({kind}) even kept whole (it is in ignore): {first}; "
            "its weights are likely shared with another layer (tied input and output embeddings): this model "
            "cannot be pruned by torch-pruning as it is"
        )
    if where:
        kind = type(dict(model.named_modules())[where]).__name__
        return PruningError(
            f"torch-pruning cannot trace module '{where}' ({kind}): {first}; add '{where}' to ignore "
            "or replace the module"
        )
    return PruningError(f"torch-pruning cannot trace this model: {first}; add the failing module to ignore")


def prune_step(pruner, model: nn.Module, example: ModelInputs) -> None:
    """One pruning step, attention modules told their new head layout, and a forward pass to prove it.

    A module with hard-coded channel counts (a ``view(b, 48, -1)``) survives tracing but breaks on
    the pruned shapes; the check forward pass names it instead of failing later in training.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pruner.step()
        for attention in attention_modules(model):
            attention.num_heads = pruner.num_heads[attention.qkv]
            attention.head_dim = attention.qkv.out_features // (3 * attention.num_heads)
        _sync_transformer(model, pruner)
        with inference(model):
            forward(model, example)
    except EdgekdError:
        raise
    except Exception as exc:
        raise _tracing_error(model, exc) from exc


def accumulate_gradients(
    model: nn.Module, loader: Iterable, device: torch.device, batches: int = 8, task: Task | None = None
) -> None:
    """Loss gradients (the task's label loss) on a few batches, for gradient-based importance (Taylor)."""
    task = task or Classification()
    model.train()
    model.zero_grad(set_to_none=True)
    for i, batch in enumerate(loader):
        if i >= batches:
            break
        x, y, _ = split_batch(batch)
        task.loss(task.output_of(forward(model, to_device(x, device))), y.to(device)).backward()


def model_cost(model: nn.Module, inputs: Signature) -> dict[str, int]:
    return {"params": count_params(model), "macs": count_macs(model, inputs)}
