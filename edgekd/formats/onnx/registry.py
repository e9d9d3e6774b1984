"""One torchlib registry per process for torch's dynamo ONNX exporter.

The exporter rebuilds its table of ATen-to-ONNX functions on every call (about 0.35 s on a 2-core
machine, more than exporting a small model), though the table depends only on the opset. The table is
read-only during an export (edgekd passes no custom translation table), so :func:`shared_registry`
hands each export the one built for its opset. If a torch release moves the builder, exports still
work: they just build the table themselves again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

_BUILT: dict[int, object] = {}


@contextlib.contextmanager
def shared_registry() -> Iterator[None]:
    """Within this block, ``ONNXRegistry.from_torchlib`` returns the table already built for its opset."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        yield
        return
    owner = getattr(_registration, "ONNXRegistry", None)
    original = vars(owner).get("from_torchlib") if owner is not None else None
    if not isinstance(original, classmethod):
        yield
        return
    build = original.__get__(None, owner)

    def cached(*args, **kwargs):
        opset = kwargs.get("opset_version", args[0] if args else None)
        key = opset if isinstance(opset, int) else -1
        if key not in _BUILT:
            _BUILT[key] = build(*args, **kwargs)
        return _BUILT[key]

    owner.from_torchlib = staticmethod(cached)
    try:
        yield
    finally:
        owner.from_torchlib = original
