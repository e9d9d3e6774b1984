"""``edgekd report DIR``: the reports of a run or a benchmark written again from its ``report.json``,
so a report made by an earlier edgekd (or one deleted by hand) gets today's page without rerunning.
``report.json`` itself is only read."""

from __future__ import annotations

from pathlib import Path

from edgekd.errors import ConfigError
from edgekd.report.document import to_html, to_markdown
from edgekd.report.rows import read_report
from edgekd.utils.fileio import atomic_write_text


def rerender(folder: str | Path) -> list[Path]:
    """Rewrite ``report.md`` / ``report.html`` of a pipeline run folder (and its ``bench/``) or of a
    benchmark folder; returns the files written."""
    folder = Path(folder)
    source = folder / "report.json"
    report = read_report(source, folder)
    if report.get("kind") == "edgekd-bench":
        return _bench_pages(report, folder, None)
    if not isinstance(report.get("ledger"), list):
        raise ConfigError(f"{source}: neither a run report (no ledger) nor a benchmark report")
    from edgekd.run.ledger import Ledger, LedgerRow, render_markdown

    ledger = Ledger()
    try:
        for row in report["ledger"]:
            ledger.add(LedgerRow(**row))
        text = render_markdown(report, ledger)
    except (TypeError, KeyError) as exc:
        raise ConfigError(f"{source}: a run report this edgekd cannot read ({exc})") from exc
    atomic_write_text(folder / "report.md", text)
    written = [folder / "report.md"]
    if isinstance(report.get("bench"), dict):
        written += _bench_pages(report["bench"], folder / "bench", report["ledger"])
    return written


def _bench_pages(report: dict, folder: Path, ledger: list[dict] | None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "report.md", to_markdown(report))
    atomic_write_text(folder / "report.html", to_html(report, ledger))
    return [folder / "report.md", folder / "report.html"]
