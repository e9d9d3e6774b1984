"""The ``edgekd`` command line: ``run``, ``demo``, ``bench``, ``compare``, ``prune-sensitivity``, ``models``.

Errors edgekd raises on purpose print one line and exit non-zero (2 for a bad recipe or argument);
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from importlib.resources import as_file, files
from pathlib import Path

from edgekd.errors import EdgekdError, first_line
from edgekd.utils.quiet import quiet_third_party

DEMO_RECIPE = "mnist.yaml"


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", help="run folder (default: the recipe's out_dir)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in the same folder")
    parser.add_argument(
        "--resume", action="store_true", help="continue a killed run in its folder from its last completed epoch"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    parser.add_argument("--quick", action="store_true", help="toy size: at most 2 epochs per stage on a data subset")
    parser.add_argument(
        "--nproc", type=int, default=1,
        help="train in N processes on this machine (torchrun, gloo on CPU, NCCL on GPUs); the same as "
        "'torchrun --standalone --nproc-per-node N -m edgekd run ...'",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekd",
        description="Distill, prune, quantize, export and benchmark PyTorch models for edge deployment.",
    )
    parser.add_argument("--debug", action="store_true", help="show the Python traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run a YAML recipe", description="Run every stage of a YAML recipe.")
    run.add_argument("recipe", help="path to the recipe file")
    _add_run_options(run)

    demo = sub.add_parser(
        "demo",
        help="distill a ResNet teacher into a MobileNet student on MNIST",
        description="Run the bundled MNIST recipe (examples/recipes/mnist.yaml) into a fresh run folder.",
    )
    _add_run_options(demo)

    sensitivity = sub.add_parser(
        "prune-sensitivity",
        help="accuracy cost of pruning each layer of a recipe's student",
        description="Prune each layer group of the recipe's student alone at a few ratios and report the "
        "validation accuracy drop (table, JSON and plot), to choose what to ignore.",
    )
    sensitivity.add_argument("recipe", help="path to the recipe file")
    sensitivity.add_argument("--checkpoint", help="trained student weights, e.g. a run's student.pt")
    sensitivity.add_argument("--ratios", default="0.25,0.5,0.75", help="comma-separated ratios (default: %(default)s)")
    sensitivity.add_argument("--importance", default="l2", help="channel importance (default: %(default)s)")
    sensitivity.add_argument("--out-dir", help="report folder (default: a fresh runs/<recipe name>-sensitivity)")

    bench = sub.add_parser(
        "bench",
        help="measure exported models (.onnx, .tflite, .pt2) on cpu, mobile-like and gpu targets",
        description="Latency (p50/p90/p99), memory, size and accuracy of each file in its own runtime, each "
        "measurement in a fresh process; writes report.json, report.md and report.html.",
    )
    bench.add_argument("artifacts", nargs="+", help="model files")
    bench.add_argument("--target", default="cpu", help="comma-separated target names or .toml files (default: cpu)")
    bench.add_argument(
        "--data",
        help="test data for accuracy: mnist, digits, an image folder, an .npz with x/y or a "
        "recipe file whose data block is used (default: random inputs, no accuracy)",
    )
    bench.add_argument("--samples", type=int, help="test samples for accuracy (default: the whole test set)")
    bench.add_argument("--runs", type=int, help="timed runs at least (default: the target's, 50)")
    bench.add_argument("--min-seconds", type=float, help="timed seconds at least (default: the target's, 1.0)")
    bench.add_argument("--threads", type=int, help="threads per runtime instead of the target's (e.g. 2 or 4)")
    bench.add_argument("--out-dir", help="report folder (default: a fresh runs/bench)")
    bench.add_argument("--overwrite", action="store_true", help="replace an earlier report in --out-dir")
    bench.add_argument("--quiet", action="store_true", help="no progress lines")

    comparison = sub.add_parser(
        "compare", help="two benchmark runs side by side", description="Compare two benchmark reports."
    )
    comparison.add_argument("run_a", help="a bench folder, its report.json, or a pipeline run folder")
    comparison.add_argument("run_b", help="the same for the other run")
    comparison.add_argument("--out-dir", help="also write compare.md and compare.html (a page like report.html)")

    report = sub.add_parser(
        "report", help="write a run's or a benchmark's reports again from its report.json",
        description="Re-render report.md and report.html (a run folder's and its bench/ ones, or a benchmark "
        "folder's) from report.json, without measuring anything.",
    )  # fmt: skip
    report.add_argument("folder", help="a run folder or a benchmark folder")

    sub.add_parser("models", help="list the reference models", description="List the registered model names.")
    return parser


def _bench(args: argparse.Namespace) -> int:
    from edgekd import bench
    from edgekd import report as report_files
    from edgekd.errors import ConfigError

    targets = [bench.load_target(t.strip()) for t in args.target.split(",") if t.strip()]
    if args.out_dir and (Path(args.out_dir) / "report.json").exists() and not args.overwrite:
        raise ConfigError(f"'{args.out_dir}' already holds a benchmark report; choose another --out-dir or --overwrite")
    data = None
    if args.data:
        from edgekd.recipe.launch import data_for

        data = data_for(args.data)
    report = bench.run(args.artifacts, targets, data, quiet=args.quiet, runs=args.runs, min_s=args.min_seconds,
                       threads=args.threads, accuracy_samples=args.samples)  # fmt: skip
    out_dir = Path(args.out_dir) if args.out_dir else _fresh_folder(Path("runs/bench"))
    paths = report_files.write_report(report, out_dir)
    print(paths["md"].read_text())
    print(f"[edgekd] written: {', '.join(str(p) for p in paths.values())}")
    failed = [r for r in report["results"] if r.get("status") == "error"]
    for row in failed:
        print(f"edgekd: error: {row['error']} (target {row['target']})", file=sys.stderr)
    return 1 if failed else 0


def _compare(args: argparse.Namespace) -> int:
    from edgekd import report as report_files

    a, b = report_files.load_report(args.run_a), report_files.load_report(args.run_b)
    names = (Path(args.run_a).name or "A", Path(args.run_b).name or "B")
    table = report_files.compare(a, b, names)
    print(table)
    if args.out_dir:
        from edgekd.report.html import comparison_html
        from edgekd.utils.fileio import atomic_write_text

        folder = Path(args.out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "compare.md", table)
        atomic_write_text(folder / "compare.html", comparison_html(a, b, names))
        print(f"[edgekd] written: {folder / 'compare.md'}, {folder / 'compare.html'}")
    return 0


def _fresh_folder(base: Path, marker: str = "report.json") -> Path:
    """``base`` or the first ``base-N`` that holds no results yet: earlier results are never replaced."""
    candidate, n = base, 1
    while (candidate / marker).exists():
        candidate, n = base.with_name(f"{base.name}-{n}"), n + 1
    return candidate


def _sensitivity(args: argparse.Namespace) -> int:
    from edgekd.prune.sensitivity import to_markdown
    from edgekd.recipe import schema as recipes
    from edgekd.recipe.launch import parse_ratios, run_sensitivity

    ratios = parse_ratios(args.ratios)
    name = recipes.load(args.recipe).name
    out_dir = (
        Path(args.out_dir) if args.out_dir else _fresh_folder(Path("runs") / f"{name}-sensitivity", "sensitivity.json")
    )
    rows, files = run_sensitivity(args.recipe, out_dir, args.checkpoint, ratios, args.importance)
    print(to_markdown(rows))
    print(f"[edgekd] written: {', '.join(str(f) for f in files.values())}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from edgekd.recipe.launch import run_recipe

    started = time.perf_counter()
    if args.command == "demo":
        with as_file(files("edgekd.recipe").joinpath(DEMO_RECIPE)) as recipe_path:
            fresh = args.overwrite or args.resume
            out_dir = args.out_dir or (None if fresh else str(_fresh_folder(Path("runs/mnist"))))
            result = run_recipe(recipe_path, out_dir, args.overwrite, args.quiet, args.quick, args.resume)
    else:
        result = run_recipe(args.recipe, args.out_dir, args.overwrite, args.quiet, args.quick, args.resume)
    from edgekd.train import distributed

    if not distributed.is_main():
        return 0  # rank 0 prints the summary
    print((result.run_dir / "report.md").read_text().split("## Ledger", 1)[-1].strip())
    from edgekd.report.document import teacher_against_shipped

    for line in teacher_against_shipped(result.report):
        print(f"[edgekd] {line}")
    if (result.run_dir / "bench" / "report.html").is_file():
        print(f"[edgekd] benchmark page: {result.run_dir / 'bench' / 'report.html'}")
    total = time.perf_counter() - started
    print(f"[edgekd] done in {total:.0f} s wall time (pipeline {result.report['wall_s']:.0f} s, the rest data loading "
          f"and teacher pretraining); report: {result.run_dir / 'report.md'}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    quiet_third_party()  # a program may set the process's logging; the library does not
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "nproc", 1) != 1:
            from edgekd.cli.torchrun import check_launchable, launch

            if args.command == "demo" and not (args.out_dir or args.overwrite or args.resume):
                argv += ["--out-dir", str(_fresh_folder(Path("runs/mnist")))]  # one folder for every rank
            check_launchable(args.nproc)
            if args.command == "run":  # a bad recipe is one line here, not one per rank and the launcher's
                from edgekd.recipe import schema as recipe

                recipe.load(args.recipe)
            return launch(args.nproc, argv)
        if args.command == "prune-sensitivity":
            return _sensitivity(args)
        if args.command == "bench":
            return _bench(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "report":
            from edgekd.run.rerender import rerender

            print("\n".join(f"[edgekd] written: {path}" for path in rerender(args.folder)))
            return 0
        if args.command == "models":
            from edgekd.models import registry as models

            print("\n".join(models.names()))
            return 0
        return _run(args)
    except EdgekdError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"edgekd: error: {_on_rank()}{exc}", file=sys.stderr)
        _record_for_launcher(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgekd: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an edgekd bug or a library failure we did not anticipate
        if args.debug:
            traceback.print_exc()
        print(f"edgekd: unexpected {_on_rank()}{type(exc).__name__}: {first_line(exc)} (run with --debug for the "
              "traceback)", file=sys.stderr)  # fmt: skip
        _record_for_launcher(exc)
        return 1


def _launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _on_rank() -> str:
    """``rank 1: `` in a process torchrun started, so a line says which rank it came from."""
    return f"rank {os.environ['RANK']}: " if _launched() and "RANK" in os.environ else ""


def _record_for_launcher(exc: BaseException) -> None:
    """The error in torchrun's per-rank error file, from which the launcher's one line is made."""
    if _launched() and os.environ.get("TORCHELASTIC_ERROR_FILE"):
        from torch.distributed.elastic.multiprocessing.errors import get_error_handler

        get_error_handler().record_exception(exc)


if __name__ == "__main__":
    sys.exit(main())
