"""Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network", section 3, on MNIST.

- teacher: 784-1200-1200-10 ReLU net, dropout (0.2 on inputs, 0.5 on hidden units), inputs jittered
  by up to 2 pixels;
- student: 784-800-800-10 ReLU net trained on the labels alone, no regularization;
- distilled: the same student trained on the teacher's soft targets at T=20 (plus a small weight on
  the labels), without jitter.

The paper reports 67, 146 and 74 test errors. Its transfer experiment follows: the same distillation
with every 3 left out of the transfer set (206 test errors, 133 of them on the 1,010 test 3s), then
the bias of class 3 raised by 3.5 (109 errors, 14 on 3s). Ours picks that bias on the held-out
validation images rather than on the test set. We have a 2-core CPU, not the paper's budget: fewer
epochs (printed), AdamW with a cosine schedule, and 5,000 of the 60,000 training images held out to
pick each model's best epoch. The result must hold its shape: the distilled student's error count
lies much closer to the teacher's than to the undistilled student's. Run from the repository root:

    python -m benchmarks.run hinton2015_mnist [--teacher-epochs 150] [--epochs 60] [--quick]
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

import edgekd as ek
from benchmarks.results_io import save
from benchmarks.study_args import parse, study_parser
from edgekd.data import first_samples
from edgekd.utils.modes import inference

PAPER = {"teacher": 67, "student": 146, "distilled": 74, "no_threes": 206, "no_threes_biased": 109}
PAPER_ON_THREES = {"no_threes": 133, "no_threes_biased": 14}
OMITTED = 3
BIAS_GRID = np.arange(0.0, 10.01, 0.25)
TEMPERATURE = 20.0
ALPHA = 0.1  # weight of the hard-label term; the soft term gets 1 - ALPHA (times T^2)


def errors(model, data) -> int:
    accuracy = ek.evaluate(model, data.test)
    return round((1 - accuracy) * ek.data.dataset_size(data.test))


def errors_on(model, loader, label: int) -> int:
    logits, y = _logits(model, loader)
    return int(((logits.argmax(1) != y) & (y == label)).sum())


def _logits(model, loader) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = first_samples(loader)
    with inference(model):
        return model(x), y


def without_class(data, label: int):
    """The bundle with every training image of ``label`` removed (validation and test keep them)."""
    keep = data.train.y != label
    train = ek.data.ArrayLoader(data.train.x[keep], data.train.y[keep], data.train.batch_size, shuffle=True,
                                seed=data.train.seed)  # fmt: skip
    return dataclasses.replace(data, train=train, name=f"{data.name} without {label}s")


def raise_bias(model, data, label: int) -> float:
    """Add to ``label``'s output bias the amount that maximizes validation accuracy; returns it."""
    logits, y = _logits(model, data.val)
    shift = torch.zeros(logits.shape[1])
    accuracies = []
    for value in BIAS_GRID:
        shift[label] = float(value)
        accuracies.append(float(((logits + shift).argmax(1) == y).float().mean()))
    best = float(BIAS_GRID[int(np.argmax(accuracies))])
    with torch.no_grad():
        model.classifier.bias[label] += best
    return best


def run(teacher_epochs: int, epochs: int, quick: bool) -> dict:
    limits = {"limit_train": 3000, "limit_test": 500, "val_size": 500} if quick else {}
    jittered = ek.data.mnist(batch_size=128, shift_pixels=2, **limits)
    plain = ek.data.mnist(batch_size=128, **limits)
    config = ek.TrainConfig(epochs=epochs, lr=1e-3, optimizer="adamw", weight_decay=0.0, schedule="cosine")
    rows, started = {}, time.perf_counter()

    ek.seed_everything(0)
    teacher = ek.models.get("hinton-teacher")
    teacher_config = ek.TrainConfig(**{**vars(config), "epochs": teacher_epochs})
    result = ek.pretrain(teacher, jittered, teacher_config, seed=0, use_cache=not quick, quiet=True)
    rows["teacher"] = {"errors": errors(teacher, plain), "seconds": result.wall_s, "note": result.note}

    ek.seed_everything(0)
    student = ek.models.get("hinton-student")
    start = time.perf_counter()
    ek.Trainer(config, quiet=True, desc="student").fit(student, plain)
    rows["student"] = {"errors": errors(student, plain), "seconds": time.perf_counter() - start}

    ek.seed_everything(0)
    distilled = ek.models.get("hinton-student")
    start = time.perf_counter()
    stage = ek.Distill(epochs=epochs, lr=1e-3, weight_decay=0.0, temperature=TEMPERATURE, alpha=ALPHA)
    ek.Pipeline(teacher, distilled, plain, [stage], out_dir=_scratch(), quiet=True).run()
    rows["distilled"] = {"errors": errors(distilled, plain), "seconds": time.perf_counter() - start}

    ek.seed_everything(0)
    no_threes = ek.models.get("hinton-student")
    start = time.perf_counter()
    ek.Pipeline(teacher, no_threes, without_class(plain, OMITTED), [stage], out_dir=_scratch(), quiet=True).run()
    seconds = time.perf_counter() - start
    rows["no_threes"] = {"errors": errors(no_threes, plain), "on_threes": errors_on(no_threes, plain.test, OMITTED),
                         "seconds": seconds}  # fmt: skip
    bias = raise_bias(no_threes, plain, OMITTED)
    rows["no_threes_biased"] = {"errors": errors(no_threes, plain), "bias": bias, "seconds": 0.0,
                                "on_threes": errors_on(no_threes, plain.test, OMITTED)}  # fmt: skip
    rows["wall_s"] = time.perf_counter() - started
    return rows


def gap_closed_by(student: int, distilled: int, teacher: int) -> float:
    """The share of the student's excess errors over the teacher that distillation removed."""
    return (student - distilled) / (student - teacher) if student != teacher else float("nan")


def _scratch() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="edgekd-hinton-")


def main(argv: list[str] | None = None) -> dict:
    parser = study_parser(__doc__)
    parser.add_argument("--teacher-epochs", type=int, default=150, help="epochs for the teacher (jittered data)")
    parser.add_argument("--epochs", type=int, default=60, help="epochs for each student")
    args = parse(parser, argv, {"epochs": 1, "teacher_epochs": 1})
    started = time.perf_counter()
    epochs, teacher_epochs = args.epochs, args.teacher_epochs
    rows = run(teacher_epochs, epochs, args.quick)
    teacher, student, distilled = (rows[k]["errors"] for k in ("teacher", "student", "distilled"))
    shape_holds = abs(distilled - teacher) < abs(student - distilled)
    gap_closed = gap_closed_by(student, distilled, teacher)
    paper_gap_closed = gap_closed_by(PAPER["student"], PAPER["distilled"], PAPER["teacher"])
    table = "| net | test errors (ours) | test errors (paper) | training time |\n|---|---:|---:|---:|\n"
    labels = {
        "teacher": "784-1200-1200 teacher, dropout + 2 px jitter",
        "student": "784-800-800 student, labels only",
        "distilled": f"784-800-800 student distilled at T={TEMPERATURE:g}",
        "no_threes": "the same, no 3 in the transfer set (errors on 3s)",
        "no_threes_biased": f"then class-3 bias raised by {rows['no_threes_biased']['bias']:g} (paper: 3.5)",
    }
    for key, label in labels.items():
        ours, paper = rows[key]["errors"], PAPER[key]
        if key in PAPER_ON_THREES:
            ours, paper = f"{ours} ({rows[key]['on_threes']})", f"{paper} ({PAPER_ON_THREES[key]})"
        table += f"| {label} | {ours} | {paper} | {rows[key]['seconds']:.0f} s |\n"
    table += (
        f"\nTeacher {teacher_epochs} epochs, each student {epochs} (AdamW, lr 1e-3, cosine; the best epoch on 5,000 "
        "held-out training images), "
        f"soft-target weight {1 - ALPHA:g}. Distilled student closer to the teacher than to the undistilled "
        f"student: {'yes' if shape_holds else 'NO'}; distillation closed {100 * gap_closed:.0f}% of the "
        f"student-teacher gap (paper: {100 * paper_gap_closed:.0f}%). Study wall time {rows['wall_s']:.0f} s.\n"
    )
    results = {
        "rows": rows, "paper": PAPER, "epochs": epochs, "teacher_epochs": teacher_epochs,
        "shape_holds": shape_holds, "gap_closed": gap_closed, "paper_gap_closed": paper_gap_closed,
        "paper_on_threes": PAPER_ON_THREES, "quick": args.quick,
    }  # fmt: skip
    save("hinton2015_mnist", results, table, started, quick=args.quick)
    print(table)
    return results


if __name__ == "__main__":
    main()
