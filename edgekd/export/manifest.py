"""The manifest an app developer needs beside each artifact (``model.onnx.json``, ``model.tflite.json``).

It says how to feed the file (each input's name, shape, dtype, layout, normalization, int8 scale/zero
point; token ids stay int64),
how to read it (output, labels), what it is (format version, precision, sha256, size) and how good it
is (parity with PyTorch and accuracy measured on the file itself).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from edgekd.data.sources import DataBundle
from edgekd.formats import files_of, manifest_path  # noqa: F401 - manifest_path is read from here too
from edgekd.formats.runner import TensorSpec
from edgekd.utils.fileio import atomic_write, atomic_write_text
from edgekd.utils.version import __version__

MANIFEST_SCHEMA_VERSION = 1


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensor_entry(spec: TensorSpec, layout: str | None) -> dict:
    entry = asdict(spec)
    entry["quantization"] = (
        {"scale": spec.scale, "zero_point": spec.zero_point, "formula": "real = (q - zero_point) * scale"}
        if spec.quantized
        else None
    )
    del entry["scale"], entry["zero_point"]
    if layout:
        entry["layout"] = layout
    return entry


def build(
    artifact: Path,
    fmt: str,
    precision: str,
    input_specs: list[TensorSpec],
    output_specs: list[TensorSpec],
    format_version: dict,
    parity: dict,
    data: DataBundle | None = None,
    test_metrics: dict | None = None,
    internal_quantization: dict | None = None,
    extra: dict | None = None,
) -> dict:
    files = files_of(artifact)
    inputs = [tensor_entry(spec, "NCHW" if len(spec.shape) == 4 else None) for spec in input_specs]
    outputs = [tensor_entry(spec, None) for spec in output_specs]
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "file": artifact.name,
        "format": fmt,
        **format_version,
        "precision": precision,
        "size_bytes": sum(f.stat().st_size for f in files),
        "files": {f.name: {"size_bytes": f.stat().st_size, "sha256": sha256_of(f)} for f in files},
        "sha256": sha256_of(artifact),
        "input": inputs[0],  # the first of ``inputs``: what a single-input app reads
        "output": outputs[0],
        "inputs": inputs,
        "outputs": outputs,
        "model_inputs": _model_inputs(data),
        "int8_boundaries": internal_quantization,
        "normalization": _normalization(data),
        "labels": list(data.labels) if data is not None else None,
        "task": data.task.describe() if data is not None else None,
        "tokenizer": tokenizer_entry(data, fixed_length="fixed_axes" in format_version),
        "parity": parity,
        "accuracy": (
            {"test_accuracy": test_metrics["accuracy"], "dataset": data.name, "measured_on": "this file in its runtime"}
            if test_metrics and test_metrics.get("accuracy") is not None and data is not None
            else None
        ),
        "metrics": (
            {
                **scalar_metrics(test_metrics),
                "dataset": data.name,
                "split": "test",
                "measured_on": "this file in its runtime",
            }
            if test_metrics and data is not None
            else None
        ),
        "edgekd_version": __version__,
    }
    if extra:
        manifest.update(extra)
    return manifest


def scalar_metrics(metrics: dict) -> dict:
    """The single-number metrics (per-class lists stay in the ledger)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def write(artifact: Path, manifest: dict) -> Path:
    path = manifest_path(artifact)
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")
    return path


def _model_inputs(data: DataBundle | None) -> dict | None:
    """How the PyTorch model was called: one tensor, or keyword inputs in the file's input order."""
    if data is None:
        return None
    signature = data.signature
    return {"keyword": signature.keyword, "inputs": signature.describe()}


TOKENIZER_FOLDER = "tokenizer"


def _tokenizer_of(data: DataBundle | None) -> tuple[dict | None, list[Path]]:
    """The data's tokenizer description and the files edgekd saved of it (none when it could not save)."""
    described = data.extra.get("tokenizer") if data is not None else None
    if not described:
        return None, []
    source = Path(described["saved_to"]) if described.get("saved_to") else None
    return described, sorted(f for f in source.iterdir() if f.is_file()) if source and source.is_dir() else []


def carry_tokenizer(folder: Path, data: DataBundle | None) -> None:
    """Copy the data's tokenizer files into ``folder/tokenizer`` (each file written atomically), so the
    app that ships the artifact ships the exact tokenizer it was trained with."""
    for file in _tokenizer_of(data)[1]:
        atomic_write(folder / TOKENIZER_FOLDER / file.name, lambda handle, f=file: handle.write(f.read_bytes()))


def tokenizer_entry(data: DataBundle | None, fixed_length: bool = False) -> dict | None:
    """How to tokenize for this file: the tokenizer's description and the files that
    :func:`carry_tokenizer` puts beside the artifact (byte copies, so the same digests);
    ``fixed_length``: this file takes the padded length although the data asked for a dynamic one."""
    described, files = _tokenizer_of(data)
    if described is None:
        return None
    entry = {key: value for key, value in described.items() if key != "saved_to"}
    if fixed_length:
        entry["sequence"] = "fixed"
    if files:
        entry["folder"] = TOKENIZER_FOLDER
        entry["files"] = {f.name: sha256_of(f) for f in files}
    return entry


def _normalization(data: DataBundle | None) -> dict | None:
    """How the app turns its raw inputs into the file's: pixels per channel, or features per column."""
    if data is None or not data.mean:
        return None
    if len(data.input_shape) == 1:  # flat feature vectors (tabular): no pixels, no 1/255
        return {
            "kind": "features",
            "mean": list(data.mean),
            "std": list(data.std),
            "formula": "x[i] = (feature[i] - mean[i]) / std[i], per feature i",
        }
    return {
        "kind": "image",
        "mean": list(data.mean),
        "std": list(data.std),
        "pixel_scale": 1 / 255,
        "formula": "x = (pixel * pixel_scale - mean[c]) / std[c], per channel c",
    }
