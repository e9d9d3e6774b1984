"""Writing an artifact so that nothing unchecked ever sits under its final name.

The converter writes into a private staging folder beside the target; the file is loaded in its own
runtime and compared with the PyTorch model; only then are its files renamed into place and its
manifest written. A file that fails the gate is kept as ``<name>.rejected`` for inspection, and a
previous artifact with the same name is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd import inputs
from edgekd.data.sources import DataBundle, first_samples
from edgekd.errors import ConfigError, first_line
from edgekd.export import manifest as manifests
from edgekd.export.parity import FP32_RTOL, MIN_AGREEMENT, ParityReport, compare, compare_outputs, model_order
from edgekd.formats import FORMATS, side_data_path
from edgekd.formats.failures import ExportError, ParityError
from edgekd.formats.runner import Runner, open_runner
from edgekd.inputs import ModelInputs, floats, split_batch, to_numpy
from edgekd.outputs import logits_selected
from edgekd.quantize.model import QuantizedModel
from edgekd.tasks import Task
from edgekd.tasks.classification import Classification
from edgekd.train.evaluation import stacked, top1
from edgekd.utils.progress import steps

PARITY_SAMPLES = 256


@dataclass
class Artifact:
    """An exported file that passed its parity gate, with the figures measured on it."""

    path: Path
    format: str
    precision: str
    size_bytes: int
    sha256: str
    parity: ParityReport
    manifest_path: Path
    test_accuracy: float | None = None
    export_s: float = 0.0
    manifest: dict = field(default_factory=dict, repr=False)
    test_metrics: dict = field(default_factory=dict)  # the task's metrics of the file itself (accuracy, mIoU, RMSE...)
    metric: str = "accuracy"  # the task's monitored metric
    test_score: float | None = None  # its value on the file, in its runtime


@dataclass
class Gate:
    """How strict the parity gate is."""

    rtol: float = FP32_RTOL
    min_agreement: float = MIN_AGREEMENT
    samples: int = PARITY_SAMPLES


def parity_samples(data: DataBundle | None, example: ModelInputs, count: int, seed: int = 0) -> ModelInputs:
    """Held-out test inputs when there is data; otherwise the example plus seeded noise of its shape
    (integer inputs such as token ids are repeated from the example, not invented)."""
    if data is not None:
        return floats(first_samples(data.test, count)[0])
    generator = torch.Generator().manual_seed(seed)
    extra = max(count - inputs.count(example), 0)

    def grown(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.detach().cpu()
        if not tensor.is_floating_point():
            return tensor.repeat(-(-count // len(tensor)), *[1] * (tensor.dim() - 1))[:count]
        noise = torch.randn((extra, *tensor.shape[1:]), generator=generator)
        return torch.cat([tensor.float(), noise])[:count]

    if isinstance(example, Mapping):
        return {name: grown(tensor) for name, tensor in example.items()}
    return grown(example)


def runtime_accuracy(runner: Runner, loader, desc: str = "accuracy") -> tuple[float, int]:
    """Top-1 accuracy of the file itself, in its runtime, over a whole loader (a bar on a terminal:
    a TFLite file takes a while over a 10,000-image test set)."""
    logits, labels = runtime_logits(runner, loader, desc)
    return top1(logits, labels, empty=float("nan")), len(labels)


def runtime_logits(
    runner: Runner, loader, desc: str = "accuracy", task: Task | None = None, names: list[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The file's own outputs (dequantized) and the labels over a whole loader: its accuracy and the
    metrics beside it (:func:`edgekd.tasks.scores.class_metrics`) come from the same pass. A structured
    ``task`` (detection) gets every output, in the model's order (``names``), packed as it packs them."""

    def output(x) -> torch.Tensor:
        if task is None or not task.structured:
            return torch.from_numpy(runner.run(to_numpy(x)))
        arrays = model_order(runner, runner.run_all(to_numpy(x)), names)
        return task.output_of([torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])

    def batches():
        for batch in steps(loader, desc):
            x, y, _ = split_batch(batch)
            yield output(x), y.cpu()

    return stacked(batches())


def publish(
    fmt: str,
    path: str | Path,
    write: Callable[[Path], dict],
    reference: nn.Module,
    example: ModelInputs,
    data: DataBundle | None,
    gate: Gate | None,
    free: Mapping[str, Sequence[int]] | None = None,
    outputs: list[str] | None = None,
) -> Artifact:
    """Convert (``write`` fills a staged path and returns format facts), gate, then move into place.

    An INT8 reference (:class:`QuantizedModel`) is judged in its output quantization steps, and its
    int8 boundaries go to the manifest. A file with ``free`` per-sample axes (a dynamic sequence length)
    is also gated on the samples cut to half their length along them. ``outputs``: the names of a forward's
    several outputs, each kept in the file and gated on its own (FP32)."""
    quantized = isinstance(reference, QuantizedModel)
    precision = "int8" if quantized else "fp32"
    output = reference.output_quantization if quantized else None
    output_step = output.scale if output else None
    internal_quantization = reference.boundaries() if quantized else None
    gate = gate or Gate()
    task = data.task if data is not None else Classification()
    path = Path(path)
    expected_suffix = FORMATS[fmt].suffix
    if path.suffix.lower() != expected_suffix:
        raise ConfigError(f"{path}: a {fmt} artifact needs the '{expected_suffix}' suffix")
    started = time.perf_counter()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as exc:
        raise ExportError(f"{path.parent}: cannot write there ({exc.strerror or first_line(exc)})") from exc
    try:
        # a model as it comes (tuple, dict, .logits) exports its logits, unless every output is to be kept
        with logits_selected(reference) if outputs is None else contextlib.nullcontext():
            staged = staging / path.name
            format_version = write(staged)
            runner = open_runner(staged)
            samples = parity_samples(data, example, gate.samples)
            if outputs is None:
                report = compare(reference, runner, samples, precision, output_step, gate.rtol, gate.min_agreement,
                                 task)  # fmt: skip
            else:
                report = compare_outputs(reference, runner, samples, outputs, gate.rtol, precision, task,
                                         gate.min_agreement)  # fmt: skip
            if not report.passed:
                rejected = _move_files(staged, path.parent, suffix=".rejected")
                raise ParityError(f"{path}: parity check failed ({report.reason}); the file is kept as {rejected}")
            parity = report.as_dict()
            if outputs is not None:
                parity["output_names"] = outputs
            if free and outputs is None:
                parity["shorter_inputs"] = _shorter_parity(reference, runner, samples, free, precision, output_step,
                                                           gate, path, staged)  # fmt: skip
            accuracy, metrics = None, {}
            if data is not None and (outputs is None or task.structured):
                found, targets = runtime_logits(runner, data.test, f"{path.name}: test {task.monitor}", task, outputs)
                metrics = task.metrics(found, targets, data.num_classes)
                accuracy = metrics.get("accuracy") if task.name == "classification" else None
            specs = runner.inputs, runner.outputs
            del runner  # the session holds the staged file open on some platforms
            manifests.carry_tokenizer(path.parent, data)
            content = manifests.build(
                staged, fmt, precision, *specs, format_version, parity, data, metrics, internal_quantization
            )
            for entry, name in zip(content["outputs"], outputs or []):
                entry["model_output"] = name  # which of the forward's outputs this tensor of the file holds
            staged_manifest = manifests.write(staged, content)
            # everything is complete on disk: only renames from here, which need no space
            _move_files(staged, path.parent)
            manifest_file = manifests.manifest_path(path)
            os.replace(staged_manifest, manifest_file)
    except OSError as exc:
        kept = "; the previous artifact is intact" if path.exists() else ""
        raise ExportError(f"{path}: writing the artifact failed ({exc.strerror or first_line(exc)}){kept}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Artifact(
        path,
        fmt,
        precision,
        content["size_bytes"],
        content["sha256"],
        report,
        manifest_file,
        accuracy,
        time.perf_counter() - started,
        content,
        metrics,
        task.monitor,
        metrics.get(task.monitor),
    )


def _shorter_parity(
    reference: nn.Module,
    runner: Runner,
    samples: ModelInputs,
    free: Mapping[str, Sequence[int]],
    precision: str,
    output_step: float | None,
    gate: Gate,
    path: Path,
    staged: Path,
) -> dict:
    """The gate again on ``samples`` cut to half their length along the free axes; a file that cannot
    take them, or disagrees there, is rejected like any other."""
    short = inputs.shortened(samples, free)
    shapes = {name: list(t.shape[1:]) for name, t in inputs.named_inputs(short).items()}
    try:
        report = compare(
            reference, runner, short, precision, output_step, gate.rtol, gate.min_agreement, Classification()
        )  # text models: the shorter-input check is a classifier's
        reason = report.reason
    except Exception as exc:  # noqa: BLE001 - a runtime refusing a shape raises its own types
        report, reason = None, first_line(exc)
    if report is None or not report.passed:
        rejected = _move_files(staged, path.parent, suffix=".rejected")
        raise ParityError(
            f"{path}: parity check at shorter inputs {shapes} failed ({reason}); the file is kept as {rejected}"
        )
    return {"shapes": shapes, **report.as_dict()}


def _move_files(staged: Path, folder: Path, suffix: str = "") -> Path:
    """Rename the staged file (and its side data file) into ``folder``; the data file first, so the
    model never points at a missing side file."""
    side = side_data_path(staged)
    if side.exists():
        os.replace(side, folder / (side.name + suffix))
    target = folder / (staged.name + suffix)
    os.replace(staged, target)
    return target
