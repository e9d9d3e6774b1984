"""Package attributes imported on first use (PEP 562), so importing a package stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_attributes(
    namespace: dict, names: dict[str, tuple[str, str]], modules: tuple[str, ...] = ()
) -> Callable[[str], object]:
    """A module ``__getattr__``: ``names`` maps attribute -> (module, name), or (module, "") for the module
    itself under another name; ``modules`` are submodules.

    The value is stored in ``namespace`` once imported, so the next access is a plain lookup."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> object:
        if name in names:
            module_name, attribute = names[name]
            module = importlib.import_module(module_name)
            value = getattr(module, attribute) if attribute else module
        elif name in modules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        namespace[name] = value
        return value

    return __getattr__
