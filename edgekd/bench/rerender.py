"""``edgekd report DIR``: the reports of a run or a benchmark written again from its ``report.json``,
so a report made by an earlier edgekd (or one deleted by hand) gets today's page without rerunning."""

from __future__ import annotations

from pathlib import Path

from edgekd.bench.report import read_report, write
from edgekd.errors import ConfigError


def rerender(folder: str | Path) -> list[Path]:
    """Rewrite ``report.md`` / ``report.html`` of a pipeline run folder (and its ``bench/``) or of a
    benchmark folder; returns the files written."""
    folder = Path(folder)
    source = folder / "report.json"
    report = read_report(source, folder)
    if report.get("kind") == "edgekd-bench":
        return list(write(report, folder).values())
    if not isinstance(report.get("ledger"), list):
        raise ConfigError(f"{source}: neither a run report (no ledger) nor a benchmark report")
    from edgekd.ledger import Ledger, LedgerRow, write_reports

    ledger = Ledger()
    try:
        for row in report["ledger"]:
            ledger.add(LedgerRow(**row))
        write_reports(folder, report, ledger)
    except (TypeError, KeyError) as exc:
        raise ConfigError(f"{source}: a run report this edgekd cannot read ({exc})") from exc
    written = [folder / "report.json", folder / "report.md"]
    if isinstance(report.get("bench"), dict):
        written += list(write(report["bench"], folder / "bench", ledger=report["ledger"]).values())
    return written
