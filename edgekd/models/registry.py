"""Models looked up by name: the reference nets, the transformer families, and any a package declares.

Names live in the ``models`` catalog (:mod:`edgekd.catalog`): ``@register("name")`` in this process, or an
entry point of ``edgekd.models``. ``package.module:callable`` builds a model no catalog knows.
"""

from __future__ import annotations

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
    return factory(**kwargs)
