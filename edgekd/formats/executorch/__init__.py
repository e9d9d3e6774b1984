"""ExecuTorch: ``.pte`` files lowered to the XNNPACK delegate (``writer``), run in ExecuTorch's own runtime
(``runner``). Needs the ``executorch`` extra (``pip install 'edgekd[executorch]'``)."""

from edgekd.formats.format import Format

FORMAT = Format(
    "executorch", ".pte", "executorch", "ExecuTorch", "edgekd.formats.executorch.runner", "ExecuTorchRunner",
    "edgekd.formats.executorch.writer:executorch_writer", counted=False, order=2, requires="executorch",
)  # fmt: skip
