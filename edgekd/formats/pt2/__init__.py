"""``.pt2``: the PyTorch reference a run keeps beside its files (``writer``), run in PyTorch (``runner``)."""

from edgekd.formats.format import Format

FORMAT = Format(
    "pt2", ".pt2", "torch", "PyTorch", "edgekd.formats.pt2.runner", "TorchRunner", devices=("cpu", "cuda"),
    counted=False, order=2,
)  # fmt: skip
