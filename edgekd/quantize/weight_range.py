"""How wide the int8 weight range is: full [-127, 127], or narrow [-63, 63] where x86 kernels saturate.

ONNX Runtime's integer convolutions and matmuls on x86 CPUs without VNNI (AVX2, and AVX-512 before
VNNI: many AMD EPYC and older Xeon servers) multiply u8 activations by s8 weights and add each pair
of products in a saturating 16-bit lane. Two products of 255 x 127 overflow it, so a file computes
something else than its PyTorch graph (a small MobileNet's INT8 file lost 2 of 155 decisions on an
AMD EPYC; the parity gate refused it). With weights in [-63, 63] a pair sums to at most
2 x 255 x 63 = 32130 < 2**15: exact on every x86 CPU, at the cost of one bit of weight precision,
which QAT learns around. VNNI CPUs and ARM cores accumulate in 32 bits and need no narrowing.

``auto`` narrows on the machine that quantizes when it is x86 without VNNI: its parity gate would
refuse a full-range file there. A fleet that includes such CPUs should ask for ``narrow``.
"""

from __future__ import annotations

import platform

from edgekd.train import check
from edgekd.utils.environment import X86_MACHINES, cpu_flags

WEIGHT_RANGES = ("auto", "full", "narrow")
FULL_MAX, NARROW_MAX = 127, 63
VNNI_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}


def resolve_weight_range(requested: str, machine: str | None = None, flags: set[str] | None = None) -> str:
    """``full`` or ``narrow``; ``auto`` reads the machine (``machine`` and ``flags`` override it)."""
    check(requested in WEIGHT_RANGES, "weight_range", f"must be one of {', '.join(WEIGHT_RANGES)}, got {requested!r}")
    if requested != "auto":
        return requested
    machine = (machine or platform.machine()).lower()
    flags = set(cpu_flags()) if flags is None else flags
    return "narrow" if machine in X86_MACHINES and not flags & VNNI_FLAGS else "full"


def weight_max(weight_range: str) -> int:
    return NARROW_MAX if weight_range == "narrow" else FULL_MAX
