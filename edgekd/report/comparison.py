"""Two benchmark runs side by side: same artifact, target, runtime and batch matched up."""

from __future__ import annotations

from pathlib import Path

from edgekd.report.rows import check_bench_report, file_score, read_report


def load_report(path: str | Path) -> dict:
    """A bench report from a ``report.json``, a bench folder, or a pipeline run folder with a bench."""
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    bench_dir = path / "bench" / "report.json" if path.is_dir() else None
    if bench_dir is not None and bench_dir.is_file():
        file = bench_dir
    report = read_report(file, path)
    if isinstance(report.get("bench"), dict):
        report = report["bench"]
    return check_bench_report(report, str(file))


def _key(row: dict) -> tuple:
    return (row["artifact"], row["target"], row["runtime"], row.get("batch"))


def matched_rows(a: dict, b: dict) -> list[tuple[tuple, dict | None, dict | None]]:
    """(artifact, target, runtime, batch) with the row each report measured for it (or None)."""
    rows_a = {_key(r): r for r in a["results"] if r.get("status") == "ok"}
    rows_b = {_key(r): r for r in b["results"] if r.get("status") == "ok"}
    return [(key, rows_a.get(key), rows_b.get(key)) for key in sorted(set(rows_a) | set(rows_b), key=str)]


def compare(a: dict, b: dict, names: tuple[str, str] = ("A", "B")) -> str:
    """A Markdown table of the rows two reports share or not, with B's latency over A's."""
    left, right = names
    check_bench_report(a, f"report {left}")
    check_bench_report(b, f"report {right}")
    lines = [
        f"| artifact | target | runtime | batch | p50 {left} | p50 {right} | {right}/{left} | "
        f"accuracy {left} | accuracy {right} | memory {left} | memory {right} |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, ra, rb in matched_rows(a, b):
        p50a = ra["latency"]["p50_ms"] if ra else None
        p50b = rb["latency"]["p50_ms"] if rb else None
        ratio = f"{p50b / p50a:.2f}x" if p50a and p50b else "-"
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {_ms(p50a)} | {_ms(p50b)} | {ratio} | "
            f"{_acc(ra)} | {_acc(rb)} | {_mem(ra)} | {_mem(rb)} |"
        )
    machines = f"\n{left}: {a['machine']['cpu']} ({a['created']}); {right}: {b['machine']['cpu']} ({b['created']})"
    return "\n".join(lines) + machines + "\n"


def _ms(value: float | None) -> str:
    return f"{value:.3f} ms" if value is not None else "-"


def _acc(row: dict | None) -> str:
    return file_score(row)


def _mem(row: dict | None) -> str:
    return f"{row['peak_memory_bytes'] / 2**20:.1f} MiB" if row else "-"
