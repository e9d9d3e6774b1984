"""TFLite: written by litert-torch (``writer``, float interface of INT8 files in ``float_io``), run and
counted in LiteRT (``runner``)."""

from edgekd.formats.format import Format

FORMAT = Format(
    "tflite", ".tflite", "tflite", "LiteRT", "edgekd.formats.tflite.runner", "LiteRTRunner",
    "edgekd.formats.tflite.writer:tflite_writer", {"io": (str,)}, {"io": ("float", "int8")}, order=1,
)  # fmt: skip
