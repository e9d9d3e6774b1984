"""Every distillation family edgekd has, on Fashion-MNIST: the same student and teachers, several seeds.

Fashion-MNIST, unlike MNIST, leaves a gap between the 26k-parameter student (``mnist-mobilenet``)
trained on labels and its ResNet teacher (``mnist-resnet``), so the families can be told apart.
Rows: label-only (the baseline), logit KD (Hinton 2015), FitNets hints, attention transfer (both on
a mid-network feature map), RKD and similarity preserving (on the penultimate embeddings),
multi-teacher (ResNet + ViT soft targets averaged), deep mutual learning (a peer, no teacher), Be
Your Own Teacher (auxiliary heads, no teacher), born-again generations (label-only generation 0,
then a generation taught by it), adversarial KD, and a ViT teacher into the CNN student (logit +
patch-grid feature KD). Every row trains the student for the
same number of epochs per network trained; test accuracy is mean +- std over seeds; wall time is the
mean per seed. Teachers are trained once (seed 0, cached). To fit the study budget on 2 cores, the
students train on a seeded subset of the training images for a few epochs (``--train``,
``--epochs``); the teachers see the whole training set. Run from the repository root:

    python -m benchmarks.run kd_methods [--seeds 3] [--epochs 5] [--train 20000] [--quick]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import edgekd as ek
from benchmarks.results_io import markdown_table, mean_std, save
from benchmarks.study_args import parse, study_parser
from edgekd.models.cost import count_params
from edgekd.train.pretrain import noted_from_cache

STUDENT = "mnist-mobilenet"
TEACHERS = {"resnet": ("mnist-resnet", {"epochs": 4, "lr": 0.003}), "vit": ("mnist-vit", {"epochs": 8, "lr": 0.002})}
LR = 0.005
KD = {"temperature": 4.0, "alpha": 0.5}
HINT = {"blocks.3": "layer2"}  # student 48x4x4 against teacher 64x7x7 (pooled to 4x4)
EMBEDDING = {"pool": "pool"}  # relation-based losses compare the batch's penultimate embeddings (128 each)
VIT_HINT = {"blocks.3": "blocks"}  # student 48x4x4 against the ViT's 16 patch tokens as a 4x4 grid


def methods(epochs: int) -> dict[str, tuple[str, str, Callable[[], list]]]:
    """Row label -> (family, teachers used, the stages that train the student)."""
    train = {"epochs": epochs, "lr": LR}
    return {
        "labels only": ("baseline", "none", lambda: [ek.Train(**train)]),
        "logit KD": ("response", "resnet", lambda: [ek.Distill(**train, **KD)]),
        "FitNets hint (mse)": ("feature", "resnet", lambda: [ek.Distill(**train, **KD, features=HINT)]),
        "attention transfer": ("feature", "resnet",
                               lambda: [ek.Distill(**train, **KD, features=HINT, feature_loss="attention")]),
        "RKD (distance + angle)": ("relation", "resnet",
                                   lambda: [ek.Distill(**train, **KD, features=EMBEDDING, feature_loss="rkd")]),
        "similarity preserving": ("relation", "resnet",
                                  lambda: [ek.Distill(**train, **KD, features=EMBEDDING, feature_loss="sp")]),
        "multi-teacher (ResNet + ViT)": ("ensemble", "resnet+vit", lambda: [ek.Distill(**train, **KD)]),
        "deep mutual learning (1 peer)": ("online", "none", lambda: [ek.MutualDistill(**train, alpha=1.0, peers=1)]),
        "be your own teacher (2 heads)": ("self", "none",
                                          lambda: [ek.SelfDistill(**train, alpha=1.0, heads=["blocks.1", "blocks.2"])]),
        "born-again (1 generation)": ("self", "none",
                                      lambda: [ek.Train(**train), ek.BornAgain(**train, generations=1, alpha=0.5)]),
        "adversarial KD": ("adversarial", "resnet", lambda: [ek.AdversarialDistill(**train, **KD)]),
        "ViT teacher -> CNN (logit + grid hint)": ("cross-architecture", "vit",
                                                   lambda: [ek.Distill(**train, **KD, features=VIT_HINT)]),
    }  # fmt: skip


def teachers(full, quick: bool) -> dict[str, dict]:
    """Both teachers, trained once on the whole training set (cached between runs)."""
    made = {}
    for key, (name, config) in TEACHERS.items():
        ek.seed_everything(0)
        model = ek.models.get(name)
        config = {**config, "epochs": 1} if quick else config
        pretrained = ek.pretrain(model, full, ek.TrainConfig(**config), seed=0, device="cpu", use_cache=not quick,
                                 quiet=True)  # fmt: skip
        made[key] = {"model": model.eval(), "name": name, "test_accuracy": ek.evaluate(model, full.test),
                     "params": count_params(model), "note": pretrained.note}  # fmt: skip
    return made


def run(seeds: int, epochs: int, train: int | None, quick: bool, only: list[str] | None) -> dict:
    limits = {"limit_train": 1000, "limit_test": 300, "val_size": 300} if quick else {}
    full = ek.data.fashion_mnist(batch_size=128, **limits)
    made = teachers(full, quick)
    subset = ek.data.fashion_mnist(batch_size=128, limit_train=train, **{k: v for k, v in limits.items()
                                                                         if k != "limit_train"})  # fmt: skip
    rows = {}
    table = methods(epochs)
    with tempfile.TemporaryDirectory(prefix="edgekd-kd-methods-") as scratch:
        for label, (family, used, stages) in table.items():
            if only and label not in only:
                continue
            chosen = [made[k]["model"] for k in used.split("+")] if used != "none" else [made["resnet"]["model"]]
            accuracy, walls = [], []
            for seed in range(seeds):
                ek.seed_everything(seed)
                started = time.perf_counter()
                result = ek.Pipeline(chosen, ek.models.get(STUDENT), subset, stages(), seed=seed, quiet=True,
                                     device="cpu", out_dir=Path(scratch) / f"{len(rows)}-{seed}").run()  # fmt: skip
                walls.append(time.perf_counter() - started)
                accuracy.append(result.report["ledger"][-1]["test_accuracy"])
            rows[label] = {"family": family, "teachers": used, "per_seed": accuracy, "wall_s": walls}
            print(f"[kd_methods] {label}: {100 * statistics.fmean(accuracy):.2f}% ({statistics.fmean(walls):.0f} s)")
    return {
        "teachers": {k: {key: v for key, v in t.items() if key != "model"} for k, t in made.items()},
        "student": {"name": STUDENT, "params": count_params(ek.models.get(STUDENT))},
        "train_images": subset.train.dataset_size,
        "epochs": epochs,
        "seeds": seeds,
        "rows": rows,
    }


def checks(results: dict) -> dict[str, tuple[float, bool]]:
    """Logit KD against labels only: the gain, and whether it exceeds twice the larger seed std."""
    rows = results["rows"]
    if "labels only" not in rows or "logit KD" not in rows:
        return {}
    (kd, kd_std), (labels, labels_std) = (
        mean_std(rows["logit KD"]["per_seed"]),
        mean_std(rows["labels only"]["per_seed"]),
    )
    gain, twice_std = 100 * (kd - labels), 200 * max(kd_std, labels_std)
    return {
        "logit_kd_gain_points (>= 0.5)": (round(gain, 2), gain >= 0.5),
        "twice_the_larger_seed_std_points (< gain)": (round(twice_std, 2), gain > twice_std),
    }  # fmt: skip


def teacher_cost(note: str) -> str:
    """The teacher's wall-time cell: a cached teacher's cost was paid by an earlier run (the cache's
    path belongs to that machine, not in a table)."""
    return "trained once (seed 0), cached" if noted_from_cache(note) else note


def markdown(results: dict, check: dict) -> str:
    rows, teacher_rows = results["rows"], results["teachers"]
    baseline = statistics.fmean(rows["labels only"]["per_seed"]) if "labels only" in rows else None
    lines = [[f"teacher {t['name']}", "-", "-", f"{100 * t['test_accuracy']:.2f}%", "-", f"{t['params']:,}",
              teacher_cost(t["note"])] for t in teacher_rows.values()]  # fmt: skip
    for label, row in rows.items():
        mean, std = mean_std(row["per_seed"])
        delta = "-" if baseline is None or label == "labels only" else f"{100 * (mean - baseline):+.2f}"
        lines.append([label, row["family"], row["teachers"], f"{100 * mean:.2f}% ± {100 * std:.2f}", delta,
                      f"{results['student']['params']:,}", f"{statistics.fmean(row['wall_s']):.0f} s"])  # fmt: skip
    header = ["method", "family", "teachers", "test accuracy", "vs labels (pts)", "params", "wall time / seed"]
    text = markdown_table(header, lines)
    if check:
        bars = [[key, str(value), "yes" if ok else "NO"] for key, (value, ok) in check.items()]
        text += "\n" + markdown_table(["bar", "measured", "met"], bars)
    ranked = sorted((r for r in rows if r != "labels only"), key=lambda r: -statistics.fmean(rows[r]["per_seed"]))
    if baseline is not None and ranked:
        above = [r for r in ranked if statistics.fmean(rows[r]["per_seed"]) > baseline]
        text += (f"\nOrder, best first: {', '.join(ranked)}. {len(above)} of {len(ranked)} methods beat labels only "
                 f"on the mean.\n")  # fmt: skip
    return text


def main(argv: list[str] | None = None) -> dict:
    parser = study_parser(__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5, help="student epochs per network trained")
    parser.add_argument("--train", type=int, default=20000, help="training images the students see (seeded subset)")
    parser.add_argument("--only", nargs="*", help="run these rows only (labels as in the table)")
    args = parse(parser, argv, {"seeds": 1, "epochs": 1, "train": 600})
    started = time.perf_counter()
    results = run(args.seeds, args.epochs, args.train, args.quick, args.only)
    check = checks(results)
    table = markdown(results, check)
    table += (
        f"\nStudents: {results['train_images']:,} training images, {args.epochs} epochs per network, AdamW lr {LR}, "
        f"KD T={KD['temperature']:g} alpha={KD['alpha']:g} (alpha weighs the labels); {args.seeds} seeds. Teachers on "
        f"the whole training set, seed 0. Study wall time {time.perf_counter() - started:.0f} s.\n"
    )
    save("kd_methods", {**results, "checks": check, "quick": args.quick}, table, started, quick=args.quick)
    print(table)
    return results


if __name__ == "__main__":
    main()
