"""Submodules by their dotted names, as users write them in feature taps, ``exclude`` and ``ignore``."""

from __future__ import annotations

import difflib

from torch import nn

from edgekd.errors import ConfigError


def resolve_module(model: nn.Module, name: str, role: str) -> nn.Module:
    """The submodule called ``name``, or an error naming the nearest valid module names.

    ``role`` says which option the name came from (``student``, ``exclude``, ``ignore``...)."""
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return modules[name]
    valid = [n for n in modules if n]
    near = difflib.get_close_matches(name, valid, n=5, cutoff=0.4) or valid[:5]
    raise ConfigError(f"{role} module '{name}' does not exist; nearest valid names: {', '.join(near)}")


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` where the dotted ``name`` points (a swap of one submodule for another)."""
    parent_name, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attribute, module)
