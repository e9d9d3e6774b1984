"""Export: any format's file written, gated by its own runtime and described by a manifest.

Format-independent: the gate (:mod:`~edgekd.export.artifact`, :mod:`~edgekd.export.parity`), the
manifest, the plan of what a run writes; each format's writer lives in :mod:`edgekd.formats`. Names
load on first use, so validating an export plan imports no converter.
"""

from edgekd.utils.lazy import lazy_attributes

_NAMES = {
    "Artifact": ("edgekd.export.artifact", "Artifact"),
    "Gate": ("edgekd.export.artifact", "Gate"),
    "runtime_accuracy": ("edgekd.export.artifact", "runtime_accuracy"),
    "export_file": ("edgekd.export.convert", "export_file"),
    "to_onnx": ("edgekd.export.convert", "to_onnx"),
    "to_tflite": ("edgekd.export.convert", "to_tflite"),
    "to_executorch": ("edgekd.export.convert", "to_executorch"),
    "ParityReport": ("edgekd.export.parity", "ParityReport"),
    "ExportError": ("edgekd.formats.failures", "ExportError"),
    "ParityError": ("edgekd.formats.failures", "ParityError"),
}
_MODULES = ("artifact", "convert", "manifest", "parity", "plan")

__all__ = list(_NAMES)

_lazy = lazy_attributes(globals(), _NAMES, _MODULES)


def __getattr__(name: str):
    if name == "FORMATS":  # the formats an export step can write, by name
        from edgekd.formats import exports

        return tuple(exports())
    return _lazy(name)
