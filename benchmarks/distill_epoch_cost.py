"""What a distillation epoch costs next to a plain cross-entropy epoch of the same student.

The teacher runs once per sample (first epoch) and its outputs are reused afterwards, so a steady
distillation epoch should cost about what a label-only epoch costs. Run from the repository root:

    python -m benchmarks.distill_epoch_cost [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import edgekd as ek
from benchmarks.results_io import save
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    data = ek.data.mnist()
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
    results = {name: epoch_times(data, factory, args.epochs) for name, factory in runs.items()}
    baseline = statistics.median(results["cross-entropy (labels only)"][1:])
    rows = []
    for name, times in results.items():
        steady = statistics.median(times[1:])
        rows.append(
            {
                "run": name,
                "epoch_seconds": times,
                "first_epoch_s": times[0],
                "steady_epoch_s": steady,
                "steady_ratio_to_ce": round(steady / baseline, 3),
            }
        )
    table = "| run | first epoch | steady epoch (median of later epochs) | steady / cross-entropy |\n"
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
    path = save("distill_epoch_cost", {"epochs": args.epochs, "rows": rows}, table, started)
    print(table)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
