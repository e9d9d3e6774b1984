"""Segmentation through the chain: digits on 64x64 canvases, a small U-Net teacher distilled into a narrower
one, pruned, QAT, INT8 ONNX + TFLite; mIoU on every row.

Data: ``ek.data.source("digit-canvases")`` (one to three MNIST digits per canvas, never overlapping, exact
masks of 11 classes: the background and the ten digits, a digit's class on its inked pixels; seeded, test
digits from MNIST's test images). The background covers about 90% of the pixels, so the label loss weighs
each class by its inverse pixel frequency (``class_weights="balanced"``) and every best epoch is picked on
validation mIoU. Teacher and student are ``edgekd``'s reference ``tiny-unet`` at widths 16 and 10. The student
is trained on the masks alone and distilled (per-pixel KL at T=4 plus the label loss, each pixel of both
terms weighed by its true class's weight), each over
``--seeds`` seeds; the seed-0 distilled student is then pruned (30% of its channels, recovered by
distillation), QAT'd and written as INT8 ONNX and TFLite, whose mIoU is measured on the files in their
runtimes and whose latency ``edgekd bench`` measures on ``mobile-like``. ``--quick`` trains a few epochs on
32x32 canvases. Run from the repository root:

    python -m benchmarks.run segment_digits [--quick] [--seeds 3]
"""

from __future__ import annotations

import edgekd as ek
from benchmarks.task_chain import CanvasStudy, canvas_study_main
from edgekd.train.preflight import with_task

SPEC = CanvasStudy(
    name="segment_digits",
    model="tiny-unet",
    widths=(16, 10),
    metrics={"miou": "mIoU", "pixel_accuracy": "pixel accuracy"},
    canvas={},
    teacher_epochs_quick=6,
    student_lr=(0.01, 0.005),
    student_epochs_quick=6,  # the class-weighted per-pixel KD needs more than 3 toy epochs to separate its logits
    # the background is about 90% of the pixels: each class weighs its inverse frequency in the training masks
    prepare=lambda data: with_task(data, ek.tasks.get("segmentation", class_weights="balanced"), None),
)


def main(argv: list[str] | None = None) -> None:
    canvas_study_main(SPEC, __doc__, argv)


if __name__ == "__main__":
    main()
