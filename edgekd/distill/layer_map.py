"""Which student block learns from which teacher block, for transformer (or any block-stacked) students.

TinyBERT maps student layer ``m`` to teacher layer ``m * N / M`` (uniform); MiniLM teaches only the
last layer. Users name a mapping instead of writing one tap per layer: the pairs are expanded into
ordinary ``{student module: teacher module}`` feature taps, optionally on a part of each block (the
block's output, or its ``attention.self.query`` / ``key`` / ``value`` projections for attention
relations).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from edgekd.errors import ConfigError
from edgekd.models.transformers import block_list

MAPPINGS = ("uniform", "last")


def block_pairs(student_blocks: int, teacher_blocks: int, mapping: str | Mapping[int, int]) -> dict[int, int]:
    """Student block index -> teacher block index."""
    if isinstance(mapping, Mapping):
        pairs = {int(s): int(t) for s, t in mapping.items()}
        for s, t in pairs.items():
            if not 0 <= s < student_blocks or not 0 <= t < teacher_blocks:
                raise ConfigError(
                    f"layer_map: {s} -> {t} is outside the blocks (student 0..{student_blocks - 1}, "
                    f"teacher 0..{teacher_blocks - 1})"
                )
        return pairs
    if mapping == "uniform":
        return {m: (m + 1) * teacher_blocks // student_blocks - 1 for m in range(student_blocks)}
    if mapping == "last":
        return {student_blocks - 1: teacher_blocks - 1}
    raise ConfigError(
        f"layer_map: must be one of {', '.join(MAPPINGS)} or {{student block: teacher block}}; got {mapping!r}"
    )


def layer_pairs(
    student: nn.Module, teacher: nn.Module, mapping: str | Mapping[int, int], parts: Sequence[str] = ("",)
) -> dict[str, str]:
    """Feature taps ``{student module: teacher module}`` for every mapped block pair and every part
    (``""`` is the block itself)."""
    student_name, student_blocks = block_list(student)
    teacher_name, teacher_blocks = block_list(teacher)
    pairs = {}
    for s, t in block_pairs(len(student_blocks), len(teacher_blocks), mapping).items():
        for part in parts:
            suffix = f".{part}" if part else ""
            pairs[f"{student_name}.{s}{suffix}"] = f"{teacher_name}.{t}{suffix}"
    return pairs
