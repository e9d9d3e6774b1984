"""Turning a converter's failure into one line that names the op, the module it came from and what to do."""

from __future__ import annotations

import re

import torch
from torch import nn

from edgekd.errors import EdgekdError, first_line
from edgekd.inputs import ModelInputs, call_arguments

_OP_PATTERNS = (
    re.compile(r"torch\.ops\.[A-Za-z0-9_]+\.([A-Za-z0-9_]+)"),
    re.compile(r"(?:aten|prims)[.:]{1,2}([A-Za-z0-9_]+)"),
    re.compile(r"'(?:tfl|stablehlo|chlo|mhlo)\.([A-Za-z0-9_]+)'"),
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TELLING = re.compile(r"no onnx function|lowering not found|not supported|unsupported|failed to legalize|error:", re.I)


class ExportError(EdgekdError):
    """An artifact that could not be written or did not pass its checks."""


class ParityError(ExportError):
    """An artifact whose outputs in its runtime disagree with the PyTorch model it came from."""


def failing_op(message: str) -> str | None:
    for pattern in _OP_PATTERNS:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def module_of_op(model: nn.Module, example: ModelInputs, op: str) -> str | None:
    """The first module whose traced graph calls ``op`` (``name (Type)``), or None."""
    try:
        program = torch.export.export(model, *call_arguments(example))
    except Exception:  # noqa: BLE001 - best effort: the error message stands without it
        return None
    for node in program.graph.nodes:
        if node.op == "call_function" and _op_name(node.target) == op:
            stack = node.meta.get("nn_module_stack") or {}
            if stack:
                path, kind = list(stack.values())[-1]
                name = path.removeprefix("L['self'].") or "<model>"
                return f"'{name}' ({getattr(kind, '__name__', str(kind).rsplit('.', 1)[-1])})"
            return "'<model>'"
    return None


def telling_line(message: str) -> str:
    """The line of a converter's long report that says what went wrong (else its first line)."""
    lines = [line.strip(" -<>") for line in _ANSI.sub("", message).splitlines() if line.strip()]
    for line in lines:
        if _TELLING.search(line):
            return re.sub(r"^class '[^']*'>:\s*", "", line)[:200]
    return lines[0][:200] if lines else "unknown error"


def conversion_error(
    fmt: str, exc: BaseException, model: nn.Module, example: ModelInputs, quantized: bool = False
) -> ExportError:
    """One line: which op failed, in which module, and how to get past it."""
    message = "\n".join(str(e) for e in reversed(_chain(exc)))  # the root cause's words first
    op = failing_op(message)
    where = module_of_op(model, example, op) if op else None
    parts = [f"{fmt} conversion failed"]
    if op:
        parts.append(f" at op '{op}'")
    if where:
        parts.append(f" in module {where}")
    parts.append(f": {telling_line(message) if message.strip() else first_line(exc)}")
    if op:
        parts.append("; replace that op with one the converter supports")
        if quantized:
            parts.append(", or keep its module in float with Quantize(exclude=[...])")
    return ExportError("".join(parts))


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from: an exporter wraps the real cause in its own
    "Failed to export ... step 1/3" text, which tells the user nothing."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _op_name(target) -> str:
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]
