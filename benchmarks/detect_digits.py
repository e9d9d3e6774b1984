"""Detection through the chain: Fashion-MNIST items on 64x64 canvases, a CenterNet-style teacher distilled
into a small student, pruned, QAT, INT8 ONNX + TFLite with both outputs (heatmaps and boxes); mAP@0.5 on
every row.

Data: ``ek.data.source("digit-canvases")(targets="boxes", items="fashion-mnist")``: one to three clothing
items pasted per canvas, never overlapping, each with its exact box and class (0-9); seeded, test items
from the test images. (MNIST digits are too easy here: a 15k-parameter student finds them at mAP@0.5 0.98.)
Teacher and student are ``edgekd``'s reference ``centernet`` (stride-4 Conv-BN-ReLU features, a class
heatmap head and a box-distance head) at widths 16 and 6. The student is trained on the boxes alone and
distilled (the teacher's heatmaps as soft targets, its boxes where it sees an object, plus the label loss),
each over ``--seeds`` seeds; the seed-0 distilled student is then pruned (30% of its channels, recovered by
distillation), QAT'd and written as INT8 ONNX and TFLite, whose mAP is measured on the files in their
runtimes (decoded from both outputs) and whose latency ``edgekd bench`` measures on ``mobile-like``.
``--quick`` trains a few epochs on 32x32 canvases. Run from the repository root:

    python -m benchmarks.run detect_digits [--quick] [--seeds 3]
"""

from __future__ import annotations

from benchmarks.task_chain import CanvasStudy, canvas_study_main

SPEC = CanvasStudy(
    name="detect_digits",
    model="centernet",
    widths=(16, 6),
    metrics={"map50": "mAP@0.5", "map50_95": "mAP@0.5:0.95"},
    canvas={"targets": "boxes", "items": "fashion-mnist"},
    teacher_epochs_quick=4,
    student_lr=(0.01, 0.01),
)


def main(argv: list[str] | None = None) -> None:
    canvas_study_main(SPEC, __doc__, argv)


if __name__ == "__main__":
    main()
