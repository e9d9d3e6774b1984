"""Which artifacts a run writes and with what options, checked before any training starts.

Kept free of converter imports so that a recipe can be validated in a blink.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edgekd.errors import ConfigError
from edgekd.formats import EXPORTS
from edgekd.naming import unknown

EXPORT_OPTIONS: dict[str, dict[str, tuple]] = {name: fmt.options for name, fmt in EXPORTS.items()}
TFLITE_IO = ("float", "int8")
ONNX_ACTIVATIONS = ("auto", "uint8", "int8")  # the choices of edgekd.export.onnx_int8, kept import-free


def check_choice(key: str, value: str, choices: Sequence[str]) -> str:
    """``value`` when it is one of ``choices``, else one ConfigError line naming ``key``."""
    if value not in choices:
        raise ConfigError(f"{key}: must be one of {', '.join(choices)}, got '{value}'")
    return value


def export_plan(export: Sequence[str] | Mapping[str, Mapping | None] | None) -> dict[str, dict]:
    """``["onnx", "tflite"]`` or ``{"tflite": {"io": "int8"}}`` -> {format: options}, validated."""
    if not export:
        return {}
    if isinstance(export, str):
        raise ConfigError(f"export: must be a list of formats like ['onnx', 'tflite'], got '{export}'")
    items = export.items() if isinstance(export, Mapping) else ((name, None) for name in export)
    plan: dict[str, dict] = {}
    for name, options in items:
        if name not in EXPORT_OPTIONS:
            raise ConfigError(f"export: {unknown('export format', str(name), EXPORT_OPTIONS)}")
        options = dict(options or {})
        for key, value in options.items():
            allowed = EXPORT_OPTIONS[name]
            if key not in allowed:
                raise ConfigError(f"export.{name}: {unknown('option', key, allowed)}")
            if not isinstance(value, allowed[key]) or isinstance(value, bool):
                raise ConfigError(f"export.{name}.{key}: wrong type {type(value).__name__}")
        if name == "tflite":
            check_choice("export.tflite.io", options.get("io", "float"), TFLITE_IO)
        if name == "onnx":
            check_choice("export.onnx.activations", options.get("activations", "auto"), ONNX_ACTIVATIONS)
        plan[name] = options
    return plan
