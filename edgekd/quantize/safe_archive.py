"""Loading a ``torch.export`` archive (``.pt2``) without ever unpickling what is inside it.

``torch.export.load`` falls back to full unpickling for weights or constants marked ``use_pickle``,
for custom and opaque objects, and for sample inputs that a weights-only load rejects. A file made
to exploit that would run code on load. Every such entry is checked first; an archive that needs
unpickling is refused, with the entry named. Archives edgekd writes never contain one.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import torch

from edgekd.errors import CheckpointError

_OBJECT_PREFIXES = ("custom_obj", "opaque_obj")


def check_archive(path: str | Path) -> None:
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: not a torch.export archive ({exc})") from exc
    with archive:
        for name in archive.namelist():
            if name.endswith(("_weights_config.json", "_constants_config.json")):
                _check_config(path, name, archive.read(name))
            elif "/data/constants/" in name and name.endswith(".pt"):
                raise CheckpointError(f"{path}: holds a pickled constants file ({name}); refusing to load it")
            elif "/data/sample_inputs/" in name:
                _check_weights_only(path, name, archive.read(name))


def _check_config(path: Path, name: str, raw: bytes) -> None:
    try:
        entries = json.loads(raw).get("config", {})
    except (ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: unreadable {name} ({exc})") from exc
    for key, entry in entries.items():
        if entry.get("use_pickle") or str(entry.get("path_name", "")).startswith(_OBJECT_PREFIXES):
            raise CheckpointError(f"{path}: entry '{key}' in {name} needs unpickling; refusing to load it")


def _check_weights_only(path: Path, name: str, raw: bytes) -> None:
    if not raw:
        return
    try:
        torch.load(io.BytesIO(raw), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything but plain tensors is refused
        raise CheckpointError(f"{path}: {name} is not weights-only data; refusing to load it") from exc
