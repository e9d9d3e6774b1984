"""Box arithmetic for detection: IoU, and average precision as COCO computes it (101 recall points).

Boxes are (x0, y0, x1, y1) in pixels; a detection is a box, a score and a class. Kept to numpy so the
same code judges PyTorch's outputs and a file's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RECALL_POINTS = np.linspace(0.0, 1.0, 101)
COCO_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)


@dataclass
class Detections:
    """One image's detections: boxes (K, 4), scores (K,) and classes (K,)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def above(self, threshold: float) -> Detections:
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4): (N, M)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(high - low, 0, None).prod(-1)
    area = lambda boxes: np.clip(boxes[:, 2:] - boxes[:, :2], 0, None).prod(-1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def average_precision(
    found: list[Detections], truth: list[Detections], classes: int, threshold: float
) -> dict[int, float]:
    """AP per class at IoU ``threshold`` over images: detections matched greedily by score, each true box
    at most once; precision made monotone, read at 101 recall points. Classes without a true box are left out."""
    per_class: dict[int, float] = {}
    for c in range(classes):
        scored: list[tuple[float, bool]] = []
        total = 0
        for got, want in zip(found, truth):
            true_boxes = want.boxes[want.classes == c]
            total += len(true_boxes)
            mine = got.classes == c
            boxes, scores = got.boxes[mine], got.scores[mine]
            order = np.argsort(-scores, kind="stable")
            taken = np.zeros(len(true_boxes), bool)
            overlap = box_iou(boxes[order], true_boxes) if len(true_boxes) else np.zeros((len(order), 0))
            for row, index in enumerate(order):
                candidates = np.where(~taken & (overlap[row] >= threshold))[0] if overlap.shape[1] else []
                hit = len(candidates) > 0
                if hit:
                    taken[candidates[np.argmax(overlap[row, candidates])]] = True
                scored.append((float(scores[index]), hit))
        if total == 0:
            continue
        scored.sort(key=lambda item: -item[0])
        hits = np.array([hit for _, hit in scored], bool)
        tp, fp = np.cumsum(hits), np.cumsum(~hits)
        recall = tp / total if len(hits) else np.zeros(0)
        precision = tp / np.maximum(tp + fp, 1) if len(hits) else np.zeros(0)
        envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
        at = np.searchsorted(recall, RECALL_POINTS, side="left")
        per_class[c] = float(np.mean([envelope[i] if i < len(envelope) else 0.0 for i in at]))
    return per_class


def mean_average_precision(found: list[Detections], truth: list[Detections], classes: int) -> dict:
    """mAP@0.5, mAP@0.5:0.95 (COCO's ten thresholds) and the AP@0.5 of each class with true boxes."""
    at_50 = average_precision(found, truth, classes, 0.5)
    if not at_50:
        return {"map50": 0.0, "map50_95": 0.0, "ap50_per_class": {}}
    over = [np.mean(list(average_precision(found, truth, classes, t).values())) for t in COCO_THRESHOLDS]
    return {
        "map50": round(float(np.mean(list(at_50.values()))), 4),
        "map50_95": round(float(np.mean(over)), 4),
        "ap50_per_class": {c: round(v, 4) for c, v in sorted(at_50.items())},
    }


def matched_share(reference: list[Detections], other: list[Detections], threshold: float = 0.5) -> tuple[int, int]:
    """How many of ``reference``'s detections ``other`` repeats (same class, IoU >= ``threshold``), of how many."""
    matched = total = 0
    for want, got in zip(reference, other):
        total += len(want.scores)
        taken = np.zeros(len(got.scores), bool)
        overlap = box_iou(want.boxes, got.boxes)
        for row in range(len(want.scores)):
            ok = ~taken & (got.classes == want.classes[row]) & (overlap[row] >= threshold)
            if ok.any():
                taken[np.argmax(np.where(ok, overlap[row], -1.0))] = True
                matched += 1
    return matched, total
