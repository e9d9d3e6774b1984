"""Which artifacts a run writes and with what options, checked before any training starts.

Kept free of converter imports so that a recipe can be validated in a blink.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence

from edgekd.errors import ConfigError
from edgekd.formats import exports
from edgekd.utils.naming import check_choice, unknown


class ExportPlan(dict):
    """{format: options} that :func:`export_plan` has validated; passing it on validates nothing twice."""


def export_plan(export: Sequence[str] | Mapping[str, Mapping | None] | None) -> ExportPlan:
    """``["onnx", "tflite"]`` or ``{"tflite": {"io": "int8"}}`` -> {format: options}, validated."""
    if isinstance(export, ExportPlan):
        return export
    if not export:
        return ExportPlan()
    if isinstance(export, str):
        raise ConfigError(f"export: must be a list of formats like ['onnx', 'tflite'], got '{export}'")
    items = export.items() if isinstance(export, Mapping) else ((name, None) for name in export)
    plan = ExportPlan()
    writable = exports()
    for name, options in items:
        if name not in writable:
            raise ConfigError(f"export: {unknown('export format', str(name), writable)}")
        needed = writable[name].requires
        if needed and importlib.util.find_spec(needed) is None:
            raise ConfigError(f"export: {name} files need the {needed} package: pip install 'edgekd[{name}]'")
        options = dict(options or {})
        for key, value in options.items():
            allowed = writable[name].options
            if key not in allowed:
                raise ConfigError(f"export.{name}: {unknown('option', key, allowed)}")
            if not isinstance(value, allowed[key]) or isinstance(value, bool):
                raise ConfigError(f"export.{name}.{key}: wrong type {type(value).__name__}")
        for key, choices in writable[name].choices.items():
            check_choice(f"export.{name}.{key}", options.get(key, choices[0]), choices)
        plan[name] = options
    return plan
