"""Segmentation through the chain: digits on 64x64 canvases, a small U-Net teacher distilled into a narrower
one, pruned, QAT, INT8 ONNX + TFLite; mIoU on every row.

Data: ``ek.data.source("digit-canvases")`` (one to three MNIST digits per canvas, never overlapping, exact
masks of 11 classes: the background and the ten digits, a digit's class on its inked pixels; seeded, test
digits from MNIST's test images). The background covers about 90% of the pixels, so the label loss weighs
each class by its inverse pixel frequency (``class_weights="balanced"``) and every best epoch is picked on
validation mIoU. Teacher and student are ``edgekd``'s reference ``tiny-unet`` at widths 16 and 10. The student
is trained on the masks alone and distilled (per-pixel KL at T=4 plus the label loss), each over
``--seeds`` seeds; the seed-0 distilled student is then pruned (30% of its channels, recovered by
distillation), QAT'd and written as INT8 ONNX and TFLite, whose mIoU is measured on the files in their
runtimes and whose latency ``edgekd bench`` measures on ``mobile-like``. ``--quick`` trains a few epochs on
32x32 canvases. Run from the repository root:

    python -m benchmarks.run segment_digits [--quick] [--seeds 3]
"""

from __future__ import annotations

import time

import torch

import edgekd as ek
from benchmarks.results_io import markdown_table, save
from benchmarks.study_args import parse, study_parser
from benchmarks.task_chain import ChainStudy, run_chain
from edgekd.train.preflight import with_task

TEACHER_WIDTH, STUDENT_WIDTH = 16, 10
METRICS = ("miou", "pixel_accuracy")


def main(argv: list[str] | None = None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    args = parse(parser, argv, {"seeds": 1})
    started = time.perf_counter()
    train, test, size, digits = (300, 60, 32, 1) if args.quick else (4000, 1000, 64, 3)
    teacher_epochs, student_epochs = (6, 3) if args.quick else (12, 8)
    data = ek.data.source("digit-canvases")(train=train, test=test, size=size, max_digits=digits, batch_size=32)
    data = with_task(data, ek.tasks.get("segmentation", class_weights="balanced"), None)  # weights: training masks
    torch.manual_seed(0)
    teacher = ek.models.get("tiny-unet", width=TEACHER_WIDTH)
    ek.pretrain(teacher, data, ek.TrainConfig(epochs=teacher_epochs, lr=0.005 if not args.quick else 0.01), seed=0,
                device="cpu", use_cache=False, quiet=True)  # fmt: skip
    study = ChainStudy(teacher, lambda: ek.models.get("tiny-unet", width=STUDENT_WIDTH), data, student_epochs,
                       0.01 if args.quick else 0.005,
                       0.3, METRICS, bench=not args.quick)  # fmt: skip
    rows, kd_gain = run_chain(study, args.seeds)
    table = markdown_table(
        ["model", "mIoU", "pixel accuracy", "params", "size", "p50 mobile-like"],
        [[name, f"{r['miou']:.3f}", f"{100 * r['pixel_accuracy']:.2f}%", f"{r['params']:,}",
          f"{r['size_bytes'] / 1024:.1f} KiB",
          f"{r['mobile_like_p50_ms']:.3f} ms" if r.get("mobile_like_p50_ms") else "-"] for name, r in rows.items()],
    )  # fmt: skip
    table += (
        f"\n{train:,} training / {test:,} test canvases of {size}x{size}, up to {digits} digit(s) each, 11 classes; "
        f"students are the mean of {args.seeds} seed(s); KD gain {kd_gain['mean_points']:+.1f} mIoU points "
        f"(per seed: {', '.join(f'{g:+.1f}' for g in kd_gain['per_seed_points'])}).\n"
    )
    results = {"rows": rows, "kd_gain": kd_gain, "seeds": args.seeds, "train": train, "test": test, "canvas": size,
               "max_digits": digits, "epochs": {"teacher": teacher_epochs, "student": student_epochs}}  # fmt: skip
    save("segment_digits", results, table, started, quick=args.quick)
    print(table)


if __name__ == "__main__":
    main()
