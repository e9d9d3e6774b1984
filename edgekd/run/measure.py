"""Ledger rows measured on what a run produced: a model in PyTorch, or an exported file in its runtime."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgekd.data.sources import DataBundle
from edgekd.distill.queried import is_queried
from edgekd.models.cost import count_macs, count_params, size_bytes
from edgekd.run.ledger import LedgerRow, joined_notes
from edgekd.tasks.scores import one_class_warning
from edgekd.train.evaluation import logits_and_labels, top1, validation_score


def model_row(
    stage: str,
    kind: str,
    model: nn.Module,
    data: DataBundle,
    device: torch.device,
    wall_s: float,
    notes: str,
    judged: bool = True,
) -> LedgerRow:
    """Test and validation accuracy, macro-F1, per-class recall and PR-AUC on the test split, parameters,
    MACs for one sample and stored size of ``model``. ``judged``: a model that finds no class but one
    gets a warning in its notes (not for the untrained student, which is expected to)."""
    task = data.task
    outputs, targets = logits_and_labels(model, data.test, device, task)
    metrics = task.metrics(outputs, targets, data.num_classes)
    warning = one_class_warning(metrics, data.labels) if judged else None
    val = validation_score(model, data, device)
    classifier = task.name == "classification" and task.monitor == "accuracy"
    queried = is_queried(model)  # a file or a function: no layers to count, its size is the file's
    return LedgerRow(
        stage=stage,
        kind=kind,
        test_accuracy=top1(outputs, targets, empty=0.0) if task.name == "classification" else None,
        val_accuracy=val if classifier else None,
        metric=task.monitor,
        test_score=metrics.get(task.monitor),
        val_score=val,
        params=None if queried else count_params(model),
        macs=None if queried else count_macs(model, data.signature),
        size_bytes=queried_size(model) if queried else size_bytes(model),
        wall_s=round(wall_s, 2),
        notes=joined_notes(notes, warning),
        test_metrics=metrics,
    )


def queried_size(teacher: nn.Module) -> int:
    """Bytes of the file a queried teacher is (0 for a function: nothing of it is here)."""
    return teacher.size_bytes() if hasattr(teacher, "size_bytes") else 0


def soft_labels_row(stage: str, teacher, data: DataBundle, notes: str) -> LedgerRow:
    """Outputs on disk answer no validation or test sample: their row says how they agree with the
    training labels instead (a file keyed by the wrong rows is at chance)."""
    agreement = teacher.agreement(data)
    covered = f"{teacher.kind} for {len(teacher.ids):,} training samples" + (
        f" (top-{teacher.top_k}, the rest of the mass spread evenly)" if teacher.top_k else ""
    )
    said = "" if agreement is None else f"; their top class is the training label for {100 * agreement:.1f}%"
    return LedgerRow(
        stage=stage, kind="input", test_accuracy=None, metric=data.task.monitor, params=None, macs=None,
        size_bytes=queried_size(teacher), wall_s=0.0, notes=joined_notes(notes, covered + said),
        details={"agreement_with_training_labels": agreement},
    )  # fmt: skip


def artifact_row(fmt: str, artifact, previous: LedgerRow, run_dir: Path, labels: list[str] | None = None) -> LedgerRow:
    """An exported file's row: accuracy and size of the file itself, params and MACs of the model it holds."""
    return LedgerRow(
        stage=fmt,
        kind="artifact",
        test_accuracy=artifact.test_accuracy,
        metric=artifact.metric,
        test_score=artifact.test_score,
        params=previous.params,
        macs=previous.macs,
        size_bytes=artifact.size_bytes,
        wall_s=round(artifact.export_s, 2),
        notes=joined_notes(
            f"{artifact.precision} {artifact.path.name}; parity: {artifact.parity.summary()}",
            one_class_warning(artifact.test_metrics, labels),
        ),
        test_metrics=artifact.test_metrics,
        details={
            "path": str(artifact.path.relative_to(run_dir)),
            "manifest": str(artifact.manifest_path.relative_to(run_dir)),
            "sha256": artifact.sha256,
            "precision": artifact.precision,
            "parity": artifact.parity.as_dict(),
        },
    )
