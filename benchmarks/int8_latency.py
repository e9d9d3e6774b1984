"""Is our INT8 fast? edgekd's INT8 ONNX / TFLite next to FP32 and to ONNX Runtime's own quantizer.

MobileNetV2 at 224x224 (random weights: latency does not depend on them) is calibrated once on the
same seeded inputs for every INT8 variant:

- edgekd: PT2E post-training quantization -> ``ek.export.to_onnx`` / ``ek.export.to_tflite``
  (QDQ graph with int8 weights; full-INT8 TFLite with a float interface), parity-gated as always;
- ONNX Runtime: ``quant_pre_process`` then ``quantize_static`` (QDQ, per-channel int8 weights, int8
  activations, MinMax) on the FP32 ONNX export of the same model.

All files run on the CPU with one thread (ONNX Runtime with all graph optimizations, LiteRT with
XNNPACK), in rounds that alternate between them so drift on a shared machine hits all alike; each
figure is the median over rounds of the per-round p50. Run from the repository root:

    python -m benchmarks.run int8_latency [--quick] [--runs 100] [--rounds 5]

``--quick`` (a smoke test) measures the MNIST student at 28x28 instead, with 5 runs in one round.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

import edgekd as ek
from benchmarks.results_io import save
from benchmarks.study_args import parse, study_parser
from edgekd.runtimes import LiteRTRunner

MODELS = {"mobilenetv2": (3, 224, 224), "mnist-mobilenet": (1, 28, 28)}  # the second: --quick
CALIBRATION_BATCHES = 8
BAR = {"tflite_int8_over_fp32": 0.55, "onnx_int8_over_quantize_static": 1.0}


def calibration_inputs(shape: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, *shape)).astype(np.float32) for _ in range(CALIBRATION_BATCHES)]


class Batches(CalibrationDataReader):
    def __init__(self, name: str, arrays: list[np.ndarray]) -> None:
        self._feeds = iter([{name: a} for a in arrays])

    def get_next(self):
        return next(self._feeds, None)


def edgekd_int8(model: torch.nn.Module, arrays: list[np.ndarray]):
    from edgekd.quantize import QuantizationScheme, calibrate, convert, prepare

    example = torch.from_numpy(np.concatenate(arrays[:2]))
    observed = prepare(model, example, qat=False)
    calibrate(observed, [(torch.from_numpy(a),) for a in arrays], len(arrays), torch.device("cpu"))
    return convert(observed, example, QuantizationScheme("ptq"))


def ort_quantize_static(fp32: Path, folder: Path, arrays: list[np.ndarray]) -> Path:
    prepared, output = folder / "preprocessed.onnx", folder / "quantize_static.onnx"
    quant_pre_process(str(fp32), str(prepared))
    name = ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    quantize_static(
        str(prepared),
        str(output),
        Batches(name, arrays),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QInt8,
    )
    return output


def onnx_timer(path: Path, x: np.ndarray):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)


def tflite_timer(path: Path, x: np.ndarray):
    runner = LiteRTRunner(path, threads=1)
    interpreter, index = runner.interpreter, runner.interpreter.get_input_details()[0]["index"]
    interpreter.set_tensor(index, x)
    return interpreter.invoke


def p50_ms(call, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--runs", type=int, default=100, help="timed runs per file per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="mobilenetv2", choices=sorted(MODELS))
    args = parse(parser, argv, {"runs": 5, "rounds": 1, "model": "mnist-mobilenet"})
    started = time.perf_counter()
    torch.manual_seed(0)
    model = ek.models.get(args.model).eval()
    arrays = calibration_inputs(MODELS[args.model])
    example = torch.from_numpy(np.concatenate(arrays[:2]))
    quantized = edgekd_int8(model, arrays)
    x = arrays[0]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        files = {
            "onnx fp32": ek.export.to_onnx(model, example, folder / "fp32.onnx").path,
            "onnx int8 (edgekd)": ek.export.to_onnx(quantized, example, folder / "int8.onnx").path,
            "tflite fp32": ek.export.to_tflite(model, example, folder / "fp32.tflite").path,
            "tflite int8 (edgekd)": ek.export.to_tflite(quantized, example, folder / "int8.tflite").path,
        }
        files["onnx int8 (quantize_static)"] = ort_quantize_static(files["onnx fp32"], folder, arrays)
        timers = {
            name: (onnx_timer if path.suffix == ".onnx" else tflite_timer)(path, x) for name, path in files.items()
        }
        sizes = {name: path.stat().st_size for name, path in files.items()}
        for call in timers.values():
            for _ in range(20):  # warm-up
                call()
        rounds: dict[str, list[float]] = {name: [] for name in timers}
        for _ in range(args.rounds):
            for name, call in timers.items():
                rounds[name].append(p50_ms(call, args.runs))
    p50 = {name: statistics.median(values) for name, values in rounds.items()}
    ratios = {
        "tflite_int8_over_fp32": p50["tflite int8 (edgekd)"] / p50["tflite fp32"],
        "onnx_int8_over_quantize_static": p50["onnx int8 (edgekd)"] / p50["onnx int8 (quantize_static)"],
        "onnx_int8_over_fp32": p50["onnx int8 (edgekd)"] / p50["onnx fp32"],
    }
    checks = {key: (round(ratios[key], 3), ratios[key] <= bar) for key, bar in BAR.items()}
    table = "| file | p50 latency, 1 thread | size | per-round p50s |\n|---|---:|---:|---|\n"
    for name in timers:
        per_round = ", ".join(f"{v:.2f}" for v in rounds[name])
        table += f"| {name} | {p50[name]:.2f} ms | {sizes[name] / 1e6:.2f} MB | {per_round} |\n"
    table += "\n| ratio | measured | bar | met |\n|---|---:|---:|---|\n"
    table += "".join(f"| {k} | {v:.3f} | <= {BAR[k]} | {'yes' if ok else 'NO'} |\n" for k, (v, ok) in checks.items())
    table += f"\nONNX INT8 over FP32: {ratios['onnx_int8_over_fp32']:.2f}x the time.\n"
    results = {"p50_ms": p50, "rounds_ms": rounds, "size_bytes": sizes, "ratios": ratios, "checks": checks}
    save(
        "int8_latency",
        {**results, "bar": BAR, "runs": args.runs, "rounds": args.rounds, "model": args.model},
        table,
        started,
        quick=args.quick,
    )
    print(table)


if __name__ == "__main__":
    main()
