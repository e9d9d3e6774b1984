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

import time

import torch

import edgekd as ek
from benchmarks.results_io import markdown_table, save
from benchmarks.study_args import parse, study_parser
from benchmarks.task_chain import ChainStudy, run_chain

TEACHER_WIDTH, STUDENT_WIDTH = 16, 6
METRICS = ("map50", "map50_95")


def main(argv: list[str] | None = None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    args = parse(parser, argv, {"seeds": 1})
    started = time.perf_counter()
    train, test, size, digits = (300, 60, 32, 1) if args.quick else (4000, 1000, 64, 3)
    teacher_epochs, student_epochs = (4, 3) if args.quick else (12, 8)
    data = ek.data.source("digit-canvases")(train=train, test=test, size=size, max_digits=digits, batch_size=32,
                                            targets="boxes", items="fashion-mnist")  # fmt: skip
    torch.manual_seed(0)
    teacher = ek.models.get("centernet", width=TEACHER_WIDTH)
    ek.pretrain(teacher, data, ek.TrainConfig(epochs=teacher_epochs, lr=0.005 if not args.quick else 0.01), seed=0,
                device="cpu", use_cache=False, quiet=True)  # fmt: skip
    study = ChainStudy(teacher, lambda: ek.models.get("centernet", width=STUDENT_WIDTH), data, student_epochs, 0.01,
                       0.3, METRICS, bench=not args.quick)  # fmt: skip
    rows, kd_gain = run_chain(study, args.seeds)
    kd_gain["strict_points"] = 100 * (rows["student, distilled"]["map50_95"] - rows["student, labels only"]["map50_95"])
    table = markdown_table(
        ["model", "mAP@0.5", "mAP@0.5:0.95", "params", "size", "p50 mobile-like"],
        [[name, f"{r['map50']:.3f}", f"{r['map50_95']:.3f}", f"{r['params']:,}", f"{r['size_bytes'] / 1024:.1f} KiB",
          f"{r['mobile_like_p50_ms']:.3f} ms" if r.get("mobile_like_p50_ms") else "-"] for name, r in rows.items()],
    )  # fmt: skip
    table += (
        f"\n{train:,} training / {test:,} test canvases of {size}x{size}, up to {digits} item(s) each; students are "
        f"the mean of {args.seeds} seed(s); KD gain {kd_gain['mean_points']:+.1f} mAP@0.5 points "
        f"(per seed: {', '.join(f'{g:+.1f}' for g in kd_gain['per_seed_points'])}), {kd_gain['strict_points']:+.1f} "
        "mAP@0.5:0.95 points.\n"
    )
    results = {"rows": rows, "kd_gain": kd_gain, "seeds": args.seeds, "train": train, "test": test, "canvas": size,
               "max_digits": digits, "epochs": {"teacher": teacher_epochs, "student": student_epochs}}  # fmt: skip
    save("detect_digits", results, table, started, quick=args.quick)
    print(table)


if __name__ == "__main__":
    main()
