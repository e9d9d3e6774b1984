"""Models looked up by name: the reference nets, the transformer families, and any a package declares.

Names live in the ``models`` catalog (:mod:`edgekd.catalog`): ``@register("name")`` in this process, or an
entry point of ``edgekd.models``. ``package.module:callable`` builds a model no catalog knows.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from edgekd.catalog import catalog, import_spec
from edgekd.errors import ConfigError

ModelFactory = Callable[..., nn.Module]


def register(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Add a model factory so recipes can name it."""
    return catalog("models").register(name)


def names() -> list[str]:
    """The registered model names."""
    return catalog("models").names()


def get(name: str, **kwargs) -> nn.Module:
    """Build a model by registry name or by ``package.module:callable``."""
    factory = import_spec(name, "model") if ":" in name else catalog("models").get(name)
    if not callable(factory):
        raise ConfigError(f"model '{name}' is not a callable model factory")
    _check_arguments(name, factory, kwargs)
    return factory(**kwargs)


def _check_arguments(name: str, factory: ModelFactory, kwargs: dict) -> None:
    """Arguments the factory does not take, named before it is called."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin without a signature: let it speak for itself
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    takes = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    extra = [key for key in kwargs if key not in takes]
    if extra:
        raise ConfigError(
            f"model '{name}' takes no argument {', '.join(map(repr, extra))}; it takes: {', '.join(takes)}"
        )
