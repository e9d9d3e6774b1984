"""Checkpoint files: written atomically, read without executing code, checked against the model."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekd.errors import CheckpointError, first_line
from edgekd.utils.fileio import atomic_write


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` that never leaves a half-written checkpoint behind."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def safe_load(path: str | Path) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code."""
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"checkpoint '{source}' does not exist")
    if source.suffix.lower() in EXPORTED_SUFFIXES:
        raise CheckpointError(
            f"checkpoint '{source}' is an exported {source.suffix} file, not PyTorch weights: a file cannot be "
            "loaded into a module; give the module's state_dict() file, or distill from the file itself "
            "(ek.Pipeline(teacher='<file>'), a recipe's teacher: {file: ...})"
        )
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(_refusal(source, exc)) from exc
    except (zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"checkpoint '{source}' is corrupt or not a weights file: {_clean(exc)}") from exc


EXPORTED_SUFFIXES = (".onnx", ".tflite", ".pte", ".pb", ".h5", ".keras")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _clean(exc: BaseException) -> str:
    """A library's first line without terminal colour codes."""
    return _ANSI.sub("", first_line(exc))


def _refusal(source: Path, exc: BaseException) -> str:
    """Why a pickle was refused, and what to do, in one line (PyTorch's own text runs to a page)."""
    text = _ANSI.sub("", str(exc))
    found = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"allowlist.*?\[([\w.]+)\]", text)
    if found is None:  # not objects: bytes that are no PyTorch save at all
        reason = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
        detail = reason.group(1).strip() if reason else first_line(exc)
        return f"checkpoint '{source}' is corrupt or not a weights file: {detail}"
    what = f" (it stores the class {found.group(1)})"
    return (
        f"checkpoint '{source}' holds pickled Python objects{what}, which edgekd never runs: save "
        "model.state_dict() instead (torch.save(model.state_dict(), path)), or pass the module itself"
    )


def state_dict_of(payload: Any, source: str | Path) -> dict[str, torch.Tensor]:
    """The model weights inside a checkpoint: a bare state dict or one under ``"model"``."""
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        payload = payload["model"]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise CheckpointError(f"checkpoint '{source}' holds no model state dict")
    return payload


def load_weights(model: nn.Module, path: str | Path, payload: Any = None) -> nn.Module:
    """Load a checkpoint into ``model``; a mismatch names the first differing tensor and shapes."""
    state = state_dict_of(safe_load(path) if payload is None else payload, path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        what = f"missing '{missing[0]}'" if missing else f"unexpected '{unexpected[0]}'"
        raise CheckpointError(
            f"checkpoint '{path}' is for another architecture: {what} "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors)"
        )
    for key, tensor in expected.items():
        if tensor.shape != state[key].shape:
            raise CheckpointError(
                f"checkpoint '{path}' is for another architecture: '{key}' has shape "
                f"{tuple(state[key].shape)} in the file but {tuple(tensor.shape)} in the model"
            )
    model.load_state_dict(state)
    return model
