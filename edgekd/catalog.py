"""One catalog for every named extension point: stages, models, data sources, corpora, feature losses,
pruning importances, file formats, model-file readers and tasks.

Every name is found by one rule: an entry registered in this process (:meth:`Catalog.register`), else a
Python entry point of the group ``edgekd.<kind>``. edgekd declares its own entries there too (in
``pyproject.toml``), so a third-party package adds a stage, a model or a format exactly as edgekd does::

    [project.entry-points."edgekd.stages"]
    halve = "my_package.stages:Halve"

Nothing is imported until it is named: listing names or validating a recipe imports no converter. The
catalog sits below every layer and names none of them; the entry points are data, not imports.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

from edgekd.errors import ConfigError, first_line
from edgekd.utils.naming import unknown

# kind -> what one entry is called in messages
KINDS = {
    "stages": "stage", "models": "model", "data": "data source", "corpora": "corpus", "feature_losses": "feature loss",
    "importances": "importance", "formats": "file format", "model_files": "model file reader", "tasks": "task",
}  # fmt: skip
Entry = TypeVar("Entry")


@cache
def _declared(group: str) -> dict[str, EntryPoint]:
    """The entry points of the installed distributions in ``group`` (read once per process)."""
    return {point.name: point for point in entry_points(group=group)}


def import_spec(spec: str, what: str) -> Any:
    """``package.module:attribute`` imported; one ConfigError line when it cannot be."""
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{what} '{spec}': cannot import module '{module_name}': {first_line(exc)}") from exc
    if not attribute or not hasattr(module, attribute):
        raise ConfigError(f"{what} '{spec}': module '{module_name}' has no attribute '{attribute}'")
    return getattr(module, attribute)


class Catalog:
    """The named entries of one extension point, loaded on first use."""

    def __init__(self, kind: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown catalog kind '{kind}'")
        self.kind, self.what = kind, KINDS[kind]
        self._entries: dict[str, Any] = {}

    @property
    def group(self) -> str:
        return f"edgekd.{self.kind}"

    def register(self, name: str, entry: Any = None) -> Any:
        """Add ``entry`` as ``name`` (or use as a decorator: ``@catalog.register("name")``).

        Registering another object under a taken name is an error; the same object twice is not."""

        def add(value: Entry) -> Entry:
            known = self._entries.get(name)
            if known is not None and _identity(known) != _identity(value):
                raise ConfigError(f"{self.what} '{name}' is already registered by {_identity(known)}")
            self._entries[name] = value
            return value

        return add if entry is None else add(entry)

    def names(self) -> list[str]:
        """Every name, registered or declared, without importing anything."""
        return sorted(set(self._entries) | set(_declared(self.group)))

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in _declared(self.group)

    def get(self, name: str, key: str | None = None) -> Any:
        """The entry named ``name``; a ConfigError line (prefixed with ``key``) when there is none."""
        if name in self._entries:
            return self._entries[name]
        point = _declared(self.group).get(name)
        if point is None:
            message = unknown(self.what, str(name), self.names())
            raise ConfigError(f"{key}: {message}" if key else message)
        try:
            value = point.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is the user's to fix: one line naming it
            raise ConfigError(f"{self.what} '{name}' ({point.value}) cannot be loaded: {first_line(exc)}") from exc
        return self._entries.setdefault(name, value)

    def load_all(self) -> dict[str, Any]:
        """Every entry, imported: for the small tables read whole (the file formats)."""
        return {name: self.get(name) for name in self.names()}


def _identity(value: Any) -> str:
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"


CATALOGS: dict[str, Catalog] = {}


def catalog(kind: str) -> Catalog:
    """The one catalog of ``kind`` in this process."""
    if kind not in CATALOGS:
        CATALOGS[kind] = Catalog(kind)
    return CATALOGS[kind]
