"""Benchmark reports people read: ``report.json`` (versioned), ``report.md`` and a self-contained
``report.html`` (:mod:`edgekd.report.html`: tables, inline SVG charts, no network), so the file
can be mailed or attached to a ticket as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekd.formats import FORMATS
from edgekd.report.html import to_html as page
from edgekd.report.rows import check_bench_report, file_score, label, ok_rows
from edgekd.utils.fileio import atomic_write_text


def to_markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [
        "# edgekd benchmark",
        "",
        f"- machine: {machine['cpu']} ({machine['cores']} cores; flags: {_flags(machine)})",
        f"- created {report['created']}, edgekd {report['edgekd_version']}, wall {report['wall_s']:.0f} s",
        f"- data: {report['data']['name'] if report.get('data') else 'none (random inputs, no accuracy)'}",
        "",
        "| artifact | target | runtime | batch | p50 | p90 | p99 | mean ± std | cv | init | first | peak mem "
        "| accuracy / metric |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in ok_rows(report):
        lat = row["latency"]
        accuracy = file_score(row)
        lines.append(
            f"| {row['artifact']} | {row['target']} | {row['runtime']} | {row['batch']} | {lat['p50_ms']:.3f} ms | "
            f"{lat['p90_ms']:.3f} ms | {lat['p99_ms']:.3f} ms | {lat['mean_ms']:.3f} ± {lat['std_ms']:.3f} | "
            f"{100 * lat['cv']:.1f}% | {row['init_s'] * 1e3:.0f} ms | {row['first_inference_ms']:.1f} ms | "
            f"{row['peak_memory_bytes'] / 2**20:.1f} MiB | {accuracy} |"
        )
    problems = [r for r in report["results"] if r.get("status") != "ok"]
    warnings = [(label(r), w) for r in ok_rows(report) for w in r.get("warnings", [])]
    if problems or warnings:
        lines += ["", "## Not measured / warnings", ""]
        lines += [
            f"- {r['artifact']} @ {r['target']}: {r['status']}: {r.get('error') or r.get('reason')}" for r in problems
        ]
        lines += [f"- {name}: {warning}" for name, warning in warnings]
    if report.get("estimates"):
        lines += ["", "## Reference phones (roofline ESTIMATES, not measurements)", ""]
        lines += [
            "| artifact | phone | precision | MACs | bytes | estimate | bound |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        for e in report["estimates"]:
            if "error" in e:
                lines.append(f"| {e['artifact']} | - | - | - | - | {e['error']} | - |")
                continue
            lines.append(
                f"| {e['artifact']} | {e['phone']} | {e['precision']} | {e['macs']:,} | {e['bytes']:,} | "
                f"~{e['estimate_ms']:.3f} ms (estimate) | {e['bound']} |"
            )
    lines += ["", "## Targets", ""]
    for target in report["targets"]:
        lines.append(
            f"- {target['name']}: {target['description']} (threads {target['threads_used']}, pinned cores "
            f"{target['pin_cores'] or 'no'}, memory cap {target['memory_limit_mb'] or 'none'} MiB, "
            f"batches {target['batch_sizes']}, {target['runs']}+ runs and {target['min_s']}+ s after "
            f"{target['warmup_runs']}+ warm-up runs and {target['warmup_s']}+ s)"
        )
    return "\n".join(lines) + "\n"


def summary_table(bench: dict) -> str:
    """The short table a run's report.md shows: p50, p99, memory and accuracy, problems inline."""
    rows = ["| artifact | target | batch | p50 | p99 | peak memory | accuracy |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in bench["results"]:
        if r.get("status") != "ok":
            rows.append(f"| {r['artifact']} | {r['target']} | {r.get('batch', '-')} | {r['status']}: "
                        f"{r.get('error') or r.get('reason')} | | | |")  # fmt: skip
            continue
        accuracy = file_score(r)
        rows.append(
            f"| {r['artifact']} | {r['target']} | {r['batch']} | {r['latency']['p50_ms']:.3f} ms | "
            f"{r['latency']['p99_ms']:.3f} ms | {r['peak_memory_bytes'] / 2**20:.1f} MiB | {accuracy} |"
        )
    return "\n".join(rows) + "\n"


def _flags(machine: dict) -> str:
    return ", ".join(machine.get("cpu_flags", [])) or "-"


def teacher_against_shipped(report: dict, target: str = "mobile-like") -> list[str]:
    """One line per format: the teacher's FP32 file against the shipped file on ``target``, from a run report
    whose Pipeline had ``bench_teacher`` (empty otherwise)."""
    rows = {(r["artifact"], r["target"]): r for r in report.get("bench", {}).get("results", []) if r["status"] == "ok"}
    sizes = {a["name"]: a.get("size_bytes", 0) for a in report.get("bench", {}).get("artifacts", [])}
    teachers = [name for name in sizes if Path(name).stem == "teacher"]  # a teacher file may be of one format only
    lines = []
    for fmt in [name for name in ("tflite", "onnx", "executorch") if name in FORMATS]:
        shipped, teacher = f"model{FORMATS[fmt].suffix}", f"teacher{FORMATS[fmt].suffix}"  # the Pipeline's names
        if teacher not in sizes and teachers:
            teacher = teachers[0]
        a, b = rows.get((teacher, target)), rows.get((shipped, target))
        if not a or not b:
            continue

        def facts(row: dict, name: str) -> str:
            accuracy = f", {file_score(row)}" if row.get("accuracy") or row.get("metrics") else ""
            return f"{name} {sizes.get(name, 0) / 1024:.0f} KiB, p50 {row['latency']['p50_ms']:.3f} ms{accuracy}"

        smaller = sizes.get(teacher, 0) / max(sizes.get(shipped, 1), 1)
        faster = a["latency"]["p50_ms"] / max(b["latency"]["p50_ms"], 1e-9)
        lines.append(f"{target}: teacher {facts(a, teacher)} -> shipped {facts(b, shipped)}: "
                     f"{smaller:.1f}x smaller, {faster:.1f}x faster")  # fmt: skip
    return lines


def to_html(report: dict, ledger: list[dict] | None = None) -> str:

    return page(report, ledger)


def write(report: dict, folder: str | Path, ledger: list[dict] | None = None) -> dict[str, Path]:
    """``report.json``, ``report.md`` and ``report.html`` in ``folder``; ``ledger``: a pipeline run's rows,
    which the HTML page shows beside the benchmark. A report that is not a benchmark's writes nothing."""
    check_bench_report(report)
    folder = Path(folder)
    paths = {"json": folder / "report.json", "md": folder / "report.md", "html": folder / "report.html"}
    atomic_write_text(paths["json"], json.dumps(report, indent=2) + "\n")
    atomic_write_text(paths["md"], to_markdown(report))
    atomic_write_text(paths["html"], to_html(report, ledger))
    return paths
