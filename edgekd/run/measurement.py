"""The budget search's measurements (:class:`edgekd.search.measurement.Measurement`), made of export,
quantization and the benchmark: the Pipeline puts one on every run context."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
from torch import nn

from edgekd.bench.estimate import estimates_for, roofline_ms
from edgekd.export.artifact import Gate
from edgekd.export.convert import export_file
from edgekd.quantize.model import QuantizationScheme
from edgekd.quantize.pt2e import calibrate, convert, prepare
from edgekd.search.budget import Budget
from edgekd.search.measurement import Measurement
from edgekd.stage import RunContext
from edgekd.targets import Target

PTQ_BATCHES = 8
# a search step's file is timed, not shipped: a mid-search PTQ file of a still-recovering model may
# disagree with its float self on a few samples; the shipped file meets the full gate at export
TIMING_GATE = Gate(rtol=math.inf, min_agreement=0.0, samples=16)


def shipped_file(model: nn.Module, ctx: RunContext, budget: Budget, folder: Path) -> Path:
    """``model`` as the file the run will ship: post-training INT8 (calibrated on a few training batches)
    or FP32, in the budget's format, converted and run in its runtime (a timing gate: no accuracy bar)."""
    example, shipped = ctx.example, copy.deepcopy(model).eval()
    if budget.precision == "int8":
        observed = prepare(shipped, example, qat=False, free=ctx.data.signature.free_axes, int8_embeddings=True)
        calibrate(observed, ctx.data.train, PTQ_BATCHES, ctx.device)
        shipped = convert(observed, example, QuantizationScheme("ptq", []), ctx.data.signature.free_axes)
    return export_file(budget.format, shipped.cpu(), example, folder / f"model.{budget.format}", gate=TIMING_GATE).path


def bench_p50(path: Path, target: Target) -> float:
    """``edgekd bench`` of the file on the target: p50 latency at batch 1, ms."""
    from edgekd import bench

    report = bench.run([path], [target], quiet=True)
    row = next(r for r in report["results"] if r.get("status") != "error" and r.get("batch") == 1)
    return float(row["latency"]["p50_ms"])


def estimate(path: Path, target: Target) -> float:
    """The file's latency estimated on the target's first reference phone, ms."""
    return float(estimates_for([path], [target])[0]["estimate_ms"])


def roofline(macs: float, nbytes: float, phone, int8: bool) -> float:
    return roofline_ms(macs, nbytes, phone, int8)[0]


def time_file(path: Path, x: np.ndarray, threads: int, runs: int, min_s: float) -> list[float]:
    """Per-call times (ms) of a one-input file in its runtime, after a short warm-up."""
    from edgekd.bench.worker import timed_loop
    from edgekd.formats.runner import open_runner

    runner = open_runner(path, threads)
    call = runner.prepare({runner.inputs[0].name: x})
    timed_loop(call, 5, 0.0)
    return runner.time_calls(call, runs, min_s, timed_loop)


def file_measurement() -> Measurement:
    return Measurement(
        ship=shipped_file, bench_p50=bench_p50, estimate=estimate, roofline=roofline, time_file=time_file
    )
