"""The logits out of whatever a model's forward returns: a tensor, a tuple, a dict, a Hugging Face output.

edgekd needs one (batch, classes) tensor from every teacher and student. Models come with forwards
that return a tensor, a tuple or list with the logits first, a dict, or an object with ``.logits``
(every Hugging Face classifier). The default rule takes the logits from each of those; an explicit
selector (an attribute or key name, an index, or a function) covers any other shape.

The selection is attached to the model as a forward hook (:func:`select_output`), so everything
that calls the model sees the tensor: the training loop, feature taps, torch-pruning's tracer,
``torch.export``, both exporters and the parity gate. Module names stay as the user wrote them,
which keeps feature taps, ``exclude`` and ``ignore`` lists valid. :func:`logits_of` applies the same
rule where edgekd calls a model it did not hook (the Trainer on its own, ``evaluate``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from edgekd.errors import ConfigError, DataError

Selector = str | int | Callable[[Any], torch.Tensor] | None
_AUTO = "auto"


class OutputError(DataError):
    """A forward whose output holds no logits tensor that the selector can find."""


def logits_of(output: Any, selector: Selector = None) -> torch.Tensor:
    """The logits in ``output``: by ``selector`` when given, else tensor / ``logits`` / first element."""
    chosen = _by_default(output) if selector is None else _by_selector(output, selector)
    if not isinstance(chosen, torch.Tensor):
        how = "" if selector is None else f" (output selector {selector!r} gave {describe(chosen)})"
        raise OutputError(
            f"the forward returned {describe(output)}{how}; no logits tensor found: give output= an attribute "
            "or key name, an index or a function that picks it"
        )
    return chosen


def _by_default(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):  # Hugging Face ModelOutput is a mapping too
        if isinstance(output.get("logits"), torch.Tensor):
            return output["logits"]
        tensors = [v for v in output.values() if isinstance(v, torch.Tensor)]
        return tensors[0] if len(tensors) == 1 else None
    if isinstance(getattr(output, "logits", None), torch.Tensor):
        return output.logits
    if isinstance(output, (tuple, list)) and output:
        return _by_default(output[0])
    return None


def _by_selector(output: Any, selector: Selector) -> Any:
    if callable(selector):
        return selector(output)
    if isinstance(selector, bool) or not isinstance(selector, (str, int)):
        raise ConfigError(f"output: must be an attribute or key name, an index or a function, got {selector!r}")
    if isinstance(selector, int):
        if isinstance(output, Mapping):
            output = list(output.values())
        if isinstance(output, (tuple, list)) and -len(output) <= selector < len(output):
            return output[selector]
        return None
    if isinstance(output, Mapping) and selector in output:
        return output[selector]
    return getattr(output, selector, None)


def describe(value: Any, depth: int = 0) -> str:
    """A short account of a forward's output for an error line: types, keys and tensor shapes."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if depth > 1:
        return type(value).__name__
    if isinstance(value, Mapping):
        items = ", ".join(f"{k}: {describe(v, depth + 1)}" for k, v in list(value.items())[:6])
        return f"{type(value).__name__}({items})"
    if isinstance(value, (tuple, list)):
        items = ", ".join(describe(v, depth + 1) for v in value[:6])
        return f"a {type(value).__name__} of {len(value)} ({items})"
    return f"{type(value).__name__}" if value is not None else "None"


def tensors_in(value: Any, depth: int = 0) -> list[torch.Tensor]:
    """Every tensor a forward's output holds (tuples, lists, mappings, nested a few levels deep)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if depth > 3:
        return []
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in tensors_in(item, depth + 1)]
    return []


def output_names(value: Any, prefix: str = "", depth: int = 0) -> list[str]:
    """A name per tensor in a forward's output, in the order exporters flatten it: a mapping's keys (an
    output object's fields), ``output_0``, ``output_1``... for a tuple, ``boxes.0`` for nesting."""
    if isinstance(value, torch.Tensor):
        return [prefix or "output"]
    if depth > 3:
        return []
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (tuple, list)):
        items = [(f"output_{i}" if not prefix else str(i), v) for i, v in enumerate(value)]
    else:
        return []
    return [name for key, item in items for name in output_names(item, f"{prefix}.{key}" if prefix else key, depth + 1)]


def raw_output(model: nn.Module, run: Callable[[], Any]) -> Any:
    """What ``model``'s forward returns before any selection hook replaces it, while ``run()`` calls it."""
    seen: dict[str, Any] = {}

    def peek(module: nn.Module, args: tuple, output: Any) -> None:
        seen.setdefault("output", output)

    handle = model.register_forward_hook(peek, prepend=True)
    try:
        run()
    finally:
        handle.remove()
    return seen.get("output")


def several_outputs(output: Any) -> str | None:
    """``"a tuple of 2 (...)"`` when the forward returns more than one tensor, else None."""
    return describe(output) if len(tensors_in(output)) > 1 else None


def resolve_selector(selector: Any, where: str = "output") -> Selector:
    """A recipe's ``output:`` value: a name, an index, or ``package.module:function`` for a function."""
    if selector is None or callable(selector) or isinstance(selector, int) and not isinstance(selector, bool):
        return selector
    if not isinstance(selector, str) or not selector:
        raise ConfigError(f"{where}: must be an attribute or key name, an index or 'package.module:function'")
    if ":" not in selector:
        return selector
    module_name, _, attr = selector.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr, None)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import module '{module_name}': {exc}") from exc
    if not callable(function):
        raise ConfigError(f"{where}: '{attr}' in module '{module_name}' is not a function")
    return function


def select_output(model: nn.Module, selector: Selector = None) -> nn.Module:
    """Make ``model`` return its logits tensor (chosen by ``selector``, or the default rule); returns it.

    Calling it again replaces the earlier selection; :func:`release_output` undoes it. The hook
    travels with ``copy.deepcopy`` (every stage works on copies), not with a saved state dict."""
    if not isinstance(model, nn.Module):
        raise OutputError(f"select_output: expected a torch.nn.Module, got {type(model).__name__}")
    release_output(model)
    resolved = resolve_selector(selector)

    def pick(module: nn.Module, args: tuple, output: Any) -> torch.Tensor:
        try:
            return logits_of(output, resolved)
        except OutputError as exc:
            raise OutputError(f"{type(module).__name__}: {exc}") from None

    pick.edgekd_selector = _AUTO if selector is None else selector  # type: ignore[attr-defined]
    model.register_forward_hook(pick)
    return model


def output_selection(model: nn.Module) -> Any:
    """What the model's selection was built from (``auto`` for the default rule), or None."""
    for hook in model._forward_hooks.values():
        if hasattr(hook, "edgekd_selector"):
            return hook.edgekd_selector
    return None


def release_output(model: nn.Module) -> None:
    """Remove the selection hook :func:`select_output` attached, if any."""
    for key, hook in list(model._forward_hooks.items()):
        if hasattr(hook, "edgekd_selector"):
            del model._forward_hooks[key]


@contextmanager
def logits_selected(*models: nn.Module) -> Iterator[None]:
    """For the block, models without a selection return their logits by the default rule.

    For the entry points a user may call with a model as it comes (export, the parity gate); a
    selection the user made with :func:`select_output` is left as it is."""
    added = [model for model in models if output_selection(model) is None]
    for model in added:
        select_output(model)
    try:
        yield
    finally:
        for model in added:
            release_output(model)
