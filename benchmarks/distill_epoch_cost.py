"""What a distillation epoch costs next to a plain cross-entropy epoch of the same student.

The teacher runs once per sample (first epoch) and its outputs are reused afterwards, so a steady
distillation epoch should cost about what a label-only epoch costs. Run from the repository root:

    python -m benchmarks.run distill_epoch_cost [--quick] [--epochs 3] [--repeats 2]

Epoch times on a shared 2-core machine wander by 10-20% from run to run, so each training run is
repeated (the runs interleaved) and a steady epoch is the fastest later epoch across repeats, the
usual estimate of what the code costs when nothing else interferes. All raw times are recorded.
"""

from __future__ import annotations

import statistics
import time

import torch

import edgekd as ek
from benchmarks.results_io import save
from benchmarks.study_args import parse, study_parser
from edgekd.distill import DistillObjective
from edgekd.distill.teacher_cache import TeacherCache
from edgekd.train import CrossEntropy


def epoch_times(data, objective_factory, epochs: int) -> list[float]:
    torch.manual_seed(0)
    student = ek.models.get("mnist-mobilenet")
    objective = objective_factory(student)
    history = ek.Trainer(ek.TrainConfig(epochs=epochs), quiet=True).fit(student, data, objective)
    if hasattr(objective, "close"):
        objective.close()
    return [round(record.seconds, 2) for record in history.epochs]


def main(argv: list[str] | None = None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parse(parser, argv, {"epochs": 2, "repeats": 1})
    started = time.perf_counter()
    data = ek.data.mnist(**({"limit_train": 2000, "limit_test": 200} if args.quick else {}))
    teacher = ek.models.get("mnist-resnet").eval()  # random weights: the cost does not depend on them
    sample = next(iter(data.val))[0][:2]

    def distill(features: dict[str, str], cache: bool):
        return lambda student: DistillObjective(
            [teacher],
            student,
            sample,
            features=features,
            cache=TeacherCache(data.train.dataset_size) if cache else None,
        )

    runs = {
        "cross-entropy (labels only)": lambda student: CrossEntropy(),
        "KD, teacher cached": distill({}, True),
        "KD + feature hint, teacher cached": distill({"blocks.3": "layer2"}, True),
        "KD, teacher recomputed every epoch": distill({}, False),
    }
    results: dict[str, list[list[float]]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, factory in runs.items():
            results[name].append(epoch_times(data, factory, args.epochs))

    def steady(repeats: list[list[float]]) -> float:
        return min(t for times in repeats for t in times[1:])

    baseline = steady(results["cross-entropy (labels only)"])
    rows = [
        {
            "run": name,
            "epoch_seconds": repeats,
            "first_epoch_s": statistics.median(times[0] for times in repeats),
            "steady_epoch_s": steady(repeats),
            "steady_ratio_to_ce": round(steady(repeats) / baseline, 3),
        }
        for name, repeats in results.items()
    ]
    table = "| run | first epoch (median) | steady epoch (fastest later epoch) | steady / cross-entropy |\n"
    table += "|---|---:|---:|---:|\n"
    table += "".join(
        f"| {r['run']} | {r['first_epoch_s']:.1f} s | {r['steady_epoch_s']:.1f} s | {r['steady_ratio_to_ce']:.2f}x |\n"
        for r in rows
    )
    table += (
        "\nStudent mnist-mobilenet, teacher mnist-resnet, MNIST 55,000 training images, batch 128, "
        "AdamW; each epoch includes its validation pass. The first distillation epoch runs the teacher "
        "and fills the cache; later epochs reuse it.\n"
    )
    path = save(
        "distill_epoch_cost",
        {"epochs": args.epochs, "repeats": args.repeats, "rows": rows},
        table,
        started,
        quick=args.quick,
    )
    print(table)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
