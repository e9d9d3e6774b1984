"""Is our INT8 fast? edgekd's INT8 ONNX / TFLite next to FP32 and to ONNX Runtime's own quantizer at its best.

MobileNetV2 at 224x224 (random weights: latency does not depend on them) is calibrated once on the
same seeded inputs for every INT8 variant:

- edgekd: PT2E post-training quantization -> ``ek.export.to_onnx`` / ``ek.export.to_tflite``
  (QDQ graph with int8 weights, activations in uint8 -- the default on x86 -- and, for reference,
  in int8; full-INT8 TFLite with a float interface), parity-gated as always;
- ONNX Runtime: ``quant_pre_process`` then ``quantize_static`` (per-channel int8 weights, MinMax) in
  all four of its configurations: QDQ or QOperator format, int8 or uint8 activations. edgekd is
  judged against the fastest of the four.

All files run on the CPU with one thread (ONNX Runtime with all graph optimizations, LiteRT with
XNNPACK), in rounds that alternate between them so drift on a shared machine hits all alike; each
figure is the median over rounds of the per-round p50. For every ONNX file the ops ONNX Runtime
actually runs after its graph optimizations are counted: a conv or add left in float is a fusion
that failed. Run from the repository root:

    python -m benchmarks.run int8_latency [--quick] [--runs 100] [--rounds 5]

``--quick`` (a smoke test) measures the MNIST student at 28x28 instead, with 5 runs in one round.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

import edgekd as ek
from benchmarks.results_io import markdown_table, save
from benchmarks.study_args import parse, study_parser
from edgekd.formats.tflite.runner import LiteRTRunner

MODELS = {"mobilenetv2": (3, 224, 224), "mnist-mobilenet": (1, 28, 28)}  # the second: --quick
CALIBRATION_BATCHES = 8
BAR = {"tflite_int8_over_fp32": 0.55, "onnx_int8_over_best_quantize_static": 1.0, "onnx_int8_over_fp32": 0.5}
# label -> (format, activation type) of ONNX Runtime's quantize_static; weights are per-channel int8 in all
QUANTIZE_STATIC = {
    "QDQ, int8 act.": ("QDQ", "QInt8"),
    "QDQ, uint8 act.": ("QDQ", "QUInt8"),
    "QOperator, int8 act.": ("QOperator", "QInt8"),
    "QOperator, uint8 act.": ("QOperator", "QUInt8"),
}
FLOAT_COMPUTE = {"Conv", "Add", "Mul", "Gemm", "MatMul", "ReduceMean", "GlobalAveragePool", "AveragePool", "Concat"}
EDGEKD_ONNX = "onnx int8 (edgekd)"


def calibration_inputs(shape: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, *shape)).astype(np.float32) for _ in range(CALIBRATION_BATCHES)]


class Batches(CalibrationDataReader):
    """Calibration batches: arrays for the single input ``name``, or ready feeds of named inputs."""

    def __init__(self, name: str, arrays: list[np.ndarray] | list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter([a if isinstance(a, dict) else {name: a} for a in arrays])

    def get_next(self):
        return next(self._feeds, None)


def edgekd_int8(model: torch.nn.Module, arrays: list[np.ndarray]):
    from edgekd.quantize import QuantizationScheme, calibrate, convert, prepare

    example = torch.from_numpy(np.concatenate(arrays[:2]))
    observed = prepare(model, example, qat=False)
    calibrate(observed, [(torch.from_numpy(a),) for a in arrays], len(arrays), torch.device("cpu"))
    return convert(observed, example, QuantizationScheme("ptq"))


def ort_quantize_static(fp32: Path, folder: Path, arrays: list[np.ndarray], config: str) -> Path:
    """``fp32`` quantized by ONNX Runtime in one of the ``QUANTIZE_STATIC`` configurations."""
    quant_format, activations = QUANTIZE_STATIC[config]
    prepared = folder / f"{fp32.stem}.preprocessed.onnx"
    output = folder / f"{fp32.stem}.quantize_static-{quant_format}-{activations}.onnx"
    if not prepared.exists():
        quant_pre_process(str(fp32), str(prepared))
    name = ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    quantize_static(
        str(prepared),
        str(output),
        Batches(name, arrays),
        quant_format=getattr(QuantFormat, quant_format),
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=getattr(QuantType, activations),
    )
    return output


def all_quantize_static(fp32: Path, folder: Path, arrays: list[np.ndarray]) -> dict[str, Path]:
    """``fp32`` through every ``quantize_static`` configuration, keyed ``quantize_static <config>``."""
    return {f"quantize_static {c}": ort_quantize_static(fp32, folder, arrays, c) for c in QUANTIZE_STATIC}


def ops_ort_runs(path: Path, folder: Path) -> dict[str, int]:
    """Op counts of the graph ONNX Runtime runs after its optimizations (1 thread, CPU)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    options.optimized_model_filepath = str(folder / f"{path.stem}.optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    counts: dict[str, int] = {}
    for node in onnx.load(options.optimized_model_filepath).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def float_ops(counts: dict[str, int]) -> int:
    """Compute ops left in float: with integer kernels everywhere, zero."""
    return sum(n for op, n in counts.items() if op in FLOAT_COMPUTE)


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
            EDGEKD_ONNX: ek.export.to_onnx(quantized, example, folder / "int8.onnx", activations="uint8").path,
            "onnx int8 (edgekd, int8 act.)": ek.export.to_onnx(
                quantized, example, folder / "int8-s8.onnx", activations="int8"
            ).path,
            "tflite fp32": ek.export.to_tflite(model, example, folder / "fp32.tflite").path,
            "tflite int8 (edgekd)": ek.export.to_tflite(quantized, example, folder / "int8.tflite").path,
        }
        files |= all_quantize_static(files["onnx fp32"], folder, arrays)
        ops = {name: ops_ort_runs(path, folder) for name, path in files.items() if path.suffix == ".onnx"}
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
    best = min((name for name in p50 if name.startswith("quantize_static")), key=p50.__getitem__)
    ratios = {
        "tflite_int8_over_fp32": p50["tflite int8 (edgekd)"] / p50["tflite fp32"],
        "onnx_int8_over_best_quantize_static": p50[EDGEKD_ONNX] / p50[best],
        "onnx_int8_over_fp32": p50[EDGEKD_ONNX] / p50["onnx fp32"],
    }
    checks = {key: (round(ratios[key], 3), ratios[key] <= bar) for key, bar in BAR.items()}
    rows = [
        [name, _ms(p50[name]), f"{sizes[name] / 1e6:.2f} MB", _census(ops.get(name)),
         ", ".join(_ms(v) for v in rounds[name])]
        for name in timers
    ]  # fmt: skip
    table = markdown_table(["file", "p50 latency, 1 thread", "size", "ops ONNX Runtime runs", "per-round p50s"], rows)
    bars = [[k, f"{v:.3f}", f"<= {BAR[k]}", "yes" if ok else "NO"] for k, (v, ok) in checks.items()]
    table += "\n" + markdown_table(["ratio", "measured", "bar", "met"], bars)
    table += f"\nThe fastest quantize_static configuration here: '{best.removeprefix('quantize_static ')}'.\n"
    results = {
        "p50_ms": p50, "rounds_ms": rounds, "size_bytes": sizes, "ratios": ratios, "checks": checks,
        "best_quantize_static": best, "ort_ops": ops,
    }  # fmt: skip
    save(
        "int8_latency",
        {**results, "bar": BAR, "runs": args.runs, "rounds": args.rounds, "model": args.model},
        table,
        started,
        quick=args.quick,
    )
    print(table)


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value >= 0.1 else f"{value:.3f} ms"


def _census(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "-"
    integer = sum(n for op, n in counts.items() if op.startswith("QLinear") or op == "QGemm")
    return f"{integer} integer, {float_ops(counts)} float, {counts.get('Transpose', 0)} Transpose"


if __name__ == "__main__":
    main()
