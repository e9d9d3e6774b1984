"""Digits pasted on larger canvases, with exact per-pixel masks and boxes: segmentation and detection
data made offline from MNIST, seeded, in seconds.

Each canvas holds one to ``max_digits`` digits at random places (never overlapping); a digit's pixels
above ``INK`` are its class in the mask (digit + 1; 0 is the background), and its box is the tight box
around them. Digits come from MNIST's own training or test images, so no test digit is seen in training.
"""

from __future__ import annotations

import numpy as np

from edgekd.data.sources import (
    FASHION_MNIST_DIR,
    FASHION_MNIST_LABELS,
    DataBundle,
    from_arrays,
    load_idx_split,
    load_mnist_arrays,
)
from edgekd.errors import DataError

INK = 96  # a pixel brighter than this (of 255) belongs to the digit
CANVAS_LABELS = ["background", *[str(d) for d in range(10)]]
DIGIT_LABELS = [str(d) for d in range(10)]
TARGETS = ("masks", "boxes")


def _fashion_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return load_idx_split(FASHION_MNIST_DIR, "install Debian's package (apt-get install dataset-fashion-mnist)")


ITEMS = {"mnist": load_mnist_arrays, "fashion-mnist": _fashion_arrays}


def paste_digits(
    images: np.ndarray, labels: np.ndarray, count: int, size: int, max_digits: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` canvases (uint8, (count, 1, size, size)), their masks (int64, (count, size, size)) and boxes
    ((count, max_digits, 5): class, x0, y0, x1, y1; rows of -1 where a canvas holds fewer digits)."""
    side = images.shape[-1]
    if size < side:
        raise DataError(f"size: a canvas of {size} px cannot hold a {side} px digit")
    canvases = np.zeros((count, 1, size, size), np.uint8)
    masks = np.zeros((count, size, size), np.int64)
    boxes = np.full((count, max_digits, 5), -1, np.int64)
    for i in range(count):
        taken = np.zeros((size, size), bool)
        for slot in range(rng.integers(1, max_digits + 1)):
            pick = rng.integers(len(images))
            digit = images[pick]
            for _ in range(20):  # a free place, or the canvas keeps the digits it has
                top, left = rng.integers(0, size - side + 1, size=2)
                if not taken[top : top + side, left : left + side].any():
                    break
            else:
                break
            taken[top : top + side, left : left + side] = True
            region = canvases[i, 0, top : top + side, left : left + side]
            np.maximum(region, digit, out=region)
            ink = digit > INK
            masks[i, top : top + side, left : left + side][ink] = int(labels[pick]) + 1
            rows, cols = np.nonzero(ink)
            if len(rows):
                boxes[i, slot] = (labels[pick], left + cols.min(), top + rows.min(), left + cols.max() + 1,
                                  top + rows.max() + 1)  # fmt: skip
    return canvases, masks, boxes


def digit_canvases(
    train: int = 6000,
    test: int = 1000,
    size: int = 64,
    max_digits: int = 3,
    batch_size: int = 64,
    seed: int = 0,
    targets: str = "masks",
    items: str = "mnist",
) -> DataBundle:
    """MNIST digits (or ``items="fashion-mnist"``: clothing, harder to tell apart) on ``size`` x ``size``
    canvases: ``targets="masks"``, a segmentation bundle with masks of 11 classes (background and the ten
    classes); ``"boxes"``, a detection bundle with a (class, x0, y0, x1, y1) row per item (classes 0-9,
    rows of -1 where a canvas holds fewer than ``max_digits``)."""
    if train < 2 or test < 1:
        raise DataError(f"train and test: need at least 2 and 1 canvases, got {train} and {test}")
    if targets not in TARGETS:
        raise DataError(f"targets: '{targets}' is not one of {', '.join(TARGETS)}")
    if items not in ITEMS:
        raise DataError(f"items: '{items}' is not one of {', '.join(ITEMS)}")
    x_train, y_train, x_test, y_test = ITEMS[items]()
    names = DIGIT_LABELS if items == "mnist" else list(FASHION_MNIST_LABELS)
    rng = np.random.default_rng(seed)
    train_x, train_masks, train_boxes = paste_digits(x_train, y_train, train, size, max_digits, rng)
    test_x, test_masks, test_boxes = paste_digits(x_test, y_test, test, size, max_digits, rng)
    boxes = targets == "boxes"
    labels = names if boxes else ["background", *names]
    bundle = from_arrays(train_x, train_boxes if boxes else train_masks, test_x, test_boxes if boxes else test_masks,
                         labels=labels, batch_size=batch_size, seed=seed, name=f"{items}-canvases",
                         task="detection" if boxes else "segmentation")  # fmt: skip
    bundle.num_classes = len(labels)  # every digit class, whether or not a split happens to hold it
    bundle.extra = {"canvas": size, "max_digits": max_digits, "targets": targets, "items": items}
    return bundle
