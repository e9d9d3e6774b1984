"""One entry point for the studies: ``python -m benchmarks.run STUDY [--quick] [study options]``.

``--quick`` runs any study at toy size in seconds and writes its results to ``$EDGEKD_RESULTS`` or a
scratch folder, never over the committed ones; the test suite runs every study that way so the
scripts cannot rot.
"""

from __future__ import annotations

import importlib
import shlex
import sys

from benchmarks import results_io

STUDIES = {
    "hinton2015_mnist": "the paper's MNIST table: teacher, student, distilled student",
    "pipeline_ablation": "every stage on Fashion-MNIST (or --dataset mnist), 3 seeds, against quantizing the teacher",
    "demo_mnist": "the demo from a cold cache against its bars",
    "distill_epoch_cost": "a distillation epoch against a label-only epoch",
    "prune_latency": "pruned MobileNetV2: MACs next to ONNX Runtime latency",
    "prune_mnist": "recovered accuracy after pruning the MNIST student",
    "int8_latency": "INT8 ONNX / TFLite against FP32 and quantize_static",
    "bench_fidelity": "the benchmark harness against a bare runtime loop",
    "kd_methods": "every distillation family on Fashion-MNIST, 3 seeds",
    "distil_text": "MiniLM-L6 teacher, a student cut from it, pruned, INT8: the DistilBERT ratios on the files",
    "distributed_epoch": "epoch time in 1 process and in N processes under torchrun (gloo, this CPU)",
    "latency_budget": "pruning to a latency budget: the search against uniform pruning, MobileNetV2 and the FM student",
    "zoo": "EfficientNet-Lite0, HF MobileNetV2, a ViT-Small: PTQ and QAT into both INT8 files",
    "tabular": "an imbalanced fraud-like scorer: macro-F1 and PR-AUC from the teacher into the INT8 files",
    "detect_digits": "a two-output detector on digit canvases: mAP@0.5 from the teacher into both INT8 files",
    "segment_digits": "a U-Net segmenter on digit canvases: mIoU from the teacher into both INT8 files",
    "query_teacher": "distilling from the teacher's INT8 ONNX file and its top-5 soft labels against the module",
}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in STUDIES:
        listing = "\n".join(f"  {name:20s} {text}" for name, text in STUDIES.items())
        raise SystemExit(f"usage: python -m benchmarks.run STUDY [--quick] [options]\nstudies:\n{listing}")
    study, rest = argv[0], argv[1:]
    module = importlib.import_module(f"benchmarks.{study}")
    results_io.COMMAND = " ".join(["python -m benchmarks.run", *map(shlex.quote, argv)])
    try:
        module.main(rest)
    finally:
        results_io.COMMAND = None


if __name__ == "__main__":
    main()
