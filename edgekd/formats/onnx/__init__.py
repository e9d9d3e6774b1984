"""ONNX: written by torch's dynamo exporter (``writer``, INT8 rewrites in ``int8``), run and counted in
ONNX Runtime (``runner``)."""

from edgekd.formats.format import Format

FORMAT = Format(
    "onnx", ".onnx", "onnx", "ONNX Runtime", "edgekd.formats.onnx.runner", "OnnxRunner",
    "edgekd.formats.onnx.writer:onnx_writer", {"opset": (int, type(None)), "activations": (str,)},
    {"activations": ("auto", "uint8", "int8")}, ("cpu", "cuda"), order=0,
)  # fmt: skip
