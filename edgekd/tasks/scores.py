"""What a classifier's ledger row reports beside accuracy: on imbalanced data (fraud, defects, rare
diseases) a model that always answers the majority class scores the majority's share as accuracy, so
the row also carries macro-F1, each class's recall and PR-AUC, and says so when the model finds no
sample of any class but one."""

from __future__ import annotations

import numpy as np
import torch


def class_metrics(logits: torch.Tensor, labels: torch.Tensor, classes: int) -> dict:
    """Macro-F1, per-class recall, PR-AUC (one-vs-rest, averaged over the classes present) and the
    share of the most predicted class, from a split's logits and labels."""
    from sklearn.metrics import average_precision_score, f1_score, recall_score

    if len(labels) == 0:
        return {}
    truth, predicted = labels.numpy(), logits.argmax(1).numpy()
    every = list(range(classes))
    scores = torch.softmax(logits, dim=1).numpy()
    present = [c for c in every if (truth == c).any()]
    pr_auc = [average_precision_score(truth == c, scores[:, c]) for c in present] if len(present) > 1 else []
    counts = np.bincount(predicted, minlength=classes)
    return {
        "macro_f1": round(float(f1_score(truth, predicted, labels=every, average="macro", zero_division=0)), 4),
        "per_class_recall": [
            round(float(r), 4) for r in recall_score(truth, predicted, labels=every, average=None, zero_division=0)
        ],
        "pr_auc": round(float(np.mean(pr_auc)), 4) if pr_auc else None,
        "most_predicted": {"class": int(counts.argmax()), "share": round(float(counts.max() / len(predicted)), 4)},
        "majority_share": round(majority_share(truth), 4),
        "classes_present": present,
    }


def majority_share(labels: np.ndarray) -> float:
    """The share of the most frequent class among ``labels``."""
    return float(np.bincount(labels).max() / len(labels)) if len(labels) else 0.0


FOUND_IOU = 0.01  # a class whose IoU stays below this is not found, only brushed


def classes_found(metrics: dict) -> tuple[list[int], list[int]] | None:
    """A segmenter's classes present in the masks and those it finds (IoU >= FOUND_IOU); None for others."""
    iou = metrics.get("per_class_iou")
    if iou is None:
        return None
    present = [c for c, v in enumerate(iou) if v is not None]
    return present, [c for c in present if iou[c] >= FOUND_IOU]


def one_class_warning(metrics: dict, labels: list[str] | None = None) -> str | None:
    """A line when the model finds no sample (or pixel) of any class but the one it mostly predicts, on a
    split that holds several: its accuracy is then that class's share, not skill."""

    def name(c: int) -> str:
        return labels[c] if labels and c < len(labels) else str(c)

    segmented = classes_found(metrics)
    if segmented is not None:
        present, found = segmented
        if len(present) < 2 or len(found) > 1:
            return None
        kept = f"'{name(found[0])}'" if found else "none"
        return (
            f"warning: finds (next to) no pixel of any class but {kept} (IoU < {FOUND_IOU:g} for "
            f"{len(present) - len(found)} of {len(present)} classes present): its pixel accuracy "
            f"{100 * metrics['pixel_accuracy']:.1f}% is that class's share, not skill; mIoU {metrics['miou']:.3f}; "
            "weigh rare classes with task=ek.tasks.get('segmentation', class_weights='balanced')"
        )
    most, recall = metrics.get("most_predicted"), metrics.get("per_class_recall") or []
    others = [c for c in metrics.get("classes_present", []) if most and c != most["class"]]
    if not others or any(recall[c] > 0 for c in others):
        return None
    missed = ", ".join(f"'{name(c)}'" for c in others[:5]) + (", ..." if len(others) > 5 else "")
    return (
        f"warning: finds no test sample of any class but '{name(most['class'])}' (recall 0 for {missed}): its "
        f"accuracy is that class's share, not skill (largest class {100 * metrics['majority_share']:.1f}%); "
        f"macro-F1 {metrics['macro_f1']:.3f}; weigh rare classes with task=ek.tasks.get('classification', "
        "class_weights='balanced')"
    )
