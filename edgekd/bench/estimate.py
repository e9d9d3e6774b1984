"""Roofline estimates for named reference phones: never measured, always labelled as estimates.

time >= max(MACs / peak MAC rate, bytes / memory bandwidth), with the MACs counted from the file's
own conv / linear layers at batch 1 and the bytes taken as its weights plus one input and output
(a lower bound: activations that spill from cache add more). Peak rates are the int8 or fp32 figure
of the phone's core, whichever matches the file's kernels.
"""

from __future__ import annotations

from pathlib import Path

from edgekd.formats import format_of
from edgekd.targets import ReferencePhone, Target


def estimates_for(artifacts: list[Path], targets: list[Target]) -> list[dict]:
    rows = []
    phones = [p for t in targets for p in t.reference_phones]
    for path in artifacts:
        fmt = format_of(path)
        if not phones or not path.is_file() or fmt is None or not fmt.counted:
            continue
        try:
            cost = file_cost(path)
        except Exception as exc:  # noqa: BLE001 - an estimate is optional; say why it is missing
            rows.append({"artifact": path.name, "error": f"cannot count MACs: {exc}"})
            continue
        for phone in phones:
            estimate_ms, bound = roofline_ms(cost["macs"], cost["bytes"], phone, cost["int8"])
            rows.append({
                "artifact": path.name, "phone": phone.name, "macs": cost["macs"], "bytes": cost["bytes"],
                "precision": "int8" if cost["int8"] else "fp32", "estimate_ms": estimate_ms,
                "bound": bound, "kind": "roofline estimate",
            })  # fmt: skip
    return rows


def roofline_ms(macs: float, nbytes: float, phone: ReferencePhone, int8: bool) -> tuple[float, str]:
    """The phone's lower bound on one call and what bounds it (``compute`` or ``memory``)."""
    peak = (phone.peak_int8_gmacs if int8 else phone.peak_fp32_gmacs) * 1e9
    compute_ms, memory_ms = macs / peak * 1e3, nbytes / (phone.bandwidth_gbs * 1e9) * 1e3
    return max(compute_ms, memory_ms), "compute" if compute_ms >= memory_ms else "memory"


def file_cost(path: Path) -> dict:
    fmt = format_of(path)
    if fmt is None or not fmt.counted:
        raise ValueError(f"no layer counter for '{path.suffix}' files")
    return fmt.cost(path)
