"""The ledger: one row per model state the run produced, and the reports written from it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekd.report.document import summary_table
from edgekd.report.rows import count_text, ledger_score
from edgekd.utils.fileio import atomic_write_text

REPORT_SCHEMA_VERSION = 1


@dataclass
class LedgerRow:
    """What one stage (or an input model) measured: the task's metrics and the cost of the model it left.

    ``metric`` is the task's monitored metric (accuracy for a classifier, mIoU, RMSE, mAP...), and
    ``test_score``/``val_score`` its values; ``test_accuracy``/``val_accuracy`` are set for classifiers only."""

    stage: str
    kind: str
    test_accuracy: float | None
    params: int | None  # None: not known (a teacher seen only through a file or a function)
    macs: int | None
    size_bytes: int
    wall_s: float
    val_accuracy: float | None = None
    notes: str = ""
    details: dict = field(default_factory=dict)
    test_metrics: dict = field(default_factory=dict)  # every metric of the task on the test split (edgekd.tasks)
    metric: str = "accuracy"
    test_score: float | None = None
    val_score: float | None = None

    def __post_init__(self) -> None:
        if self.metric == "accuracy":  # a classifier's score is its accuracy, whichever the caller set
            self.test_score = self.test_accuracy if self.test_score is None else self.test_score
            self.val_score = self.val_accuracy if self.val_score is None else self.val_score


def joined_notes(*notes: str | None) -> str:
    """A row's notes from its parts, the empty ones left out."""
    return "; ".join(note for note in notes if note)


class Ledger:
    def __init__(self) -> None:
        self.rows: list[LedgerRow] = []

    def add(self, row: LedgerRow) -> LedgerRow:
        self.rows.append(row)
        return row

    def as_dicts(self) -> list[dict]:
        return [asdict(row) for row in self.rows]

    def to_markdown(self) -> str:
        metric = self.rows[0].metric if self.rows else "accuracy"
        shown = "acc" if metric == "accuracy" else metric
        header = f"| stage | kind | test {shown} | val {shown} | params | MACs | size | wall time | notes |\n"
        header += "|---|---|---:|---:|---:|---:|---:|---:|---|\n"
        lines = []
        for r in self.rows:
            test, val = score_text(r.metric, r.test_score), score_text(r.metric, r.val_score)
            lines.append(
                f"| {r.stage} | {r.kind} | {test} | {val} | "
                f"{count_text(r.params)} | {count_text(r.macs)} | {human_bytes(r.size_bytes)} | "
                f"{r.wall_s:.1f} s | {r.notes} |"
            )
        return header + "\n".join(lines) + "\n"


def score_text(metric: str, value: float | None) -> str:
    """``97.12%`` for an accuracy, ``0.1234`` for another metric, ``-`` for none."""
    return ledger_score({"metric": metric, "test_score": value})[0]


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def write_reports(run_dir: Path, report: dict, ledger: Ledger) -> None:
    """``report.json`` (machine-readable, versioned) and ``report.md`` (for people)."""
    atomic_write_text(run_dir / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(run_dir / "report.md", render_markdown(report, ledger))


def render_markdown(report: dict, ledger: Ledger) -> str:
    data, env = report["data"], report["environment"]
    lines = [
        f"# edgekd run: {report['run_name']}",
        "",
        f"- status: {report['status']}",
        f"- data: {data['name']} ({data['train_size']:,} train / {data['val_size']:,} val / "
        f"{data['test_size']:,} test), input {_inputs_text(data)}",
        f"- stages: {', '.join(s['name'] for s in report['stages']) or 'none'}",
        f"- total wall time: {report['wall_s']:.1f} s (teacher pretraining {report['teacher_pretrain_s']:.1f} s) "
        f"on {env['cpu']} ({env['cores']} cores)",
        f"- torch {env['libraries']['torch']}, {env['torch_threads']} threads, device {env['device']}"
        + _processes_text(report.get("processes")),
        "",
        "## Ledger",
        "",
        f"{_metric_sentence(data, ledger)} MACs for one sample; size is the weights as stored (FP32, int8 "
        "once quantized); artifact rows are measured on the exported file in its own runtime.",
        "",
        ledger.to_markdown(),
    ]
    for row in ledger.rows:
        if row.details.get("budget_search"):
            lines += ["", budget_search_markdown(row.stage, row.details["budget_search"])]
    if report.get("bench"):
        lines += ["## Benchmark", "", "Measured on the exported files: bench/report.md, bench/report.html.", ""]
        lines += [summary_table(report["bench"])]
    return "\n".join(lines)


def _metric_sentence(data: dict, ledger: Ledger) -> str:
    """What the ledger's score columns hold, for the run's task and monitored metric."""
    task = data.get("task", "classification")
    metric = ledger.rows[0].metric if ledger.rows else "accuracy"
    if task == "classification" and metric == "accuracy":
        return "Accuracy is top-1 on the test set;"
    return f"Task: {task}; the score columns hold its monitored metric, {metric} (every metric is in report.json);"


def budget_search_markdown(stage: str, search: dict) -> str:
    """The path a budget-driven Prune took: every step's cut and its predicted and measured cost."""
    unit = search["unit"]
    lines = [
        f"## Budget search ({stage})",
        "",
        f"{search['budget']}: start {search['start']:.4g} {unit}"
        + (f", floor {search['floor']:.4g} {unit}" if "floor" in search else "")
        + f", final {search['final']:.4g} {unit} (margin {search['margin']:.4g}, "
        + ("met" if search["met"] else "NOT met")
        + ").",
        "",
        f"| step | group cut | share | predicted ({unit}) | measured ({unit}) | val acc (short) | params | MACs |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {s['step']} | {s['group']} | {_share(s['share'])} | {s['predicted']:.4g} | {s['measured']:.4g} | "
        f"{100 * s['val_accuracy']:.2f}% | {s['params']:,} | {s['macs']:,} |"
        for s in search["steps"]
    ]
    return "\n".join(lines) + "\n"


def _share(share: float | None) -> str:
    """A step's cut as a share of its group's channels; a step that combined groups names each in the group cell."""
    return "in the group cell" if share is None else f"{share:.0%}"


def _processes_text(processes: dict | None) -> str:
    """``, 2 processes (gloo, torchrun)`` for a data-parallel run; nothing for one process."""
    if not processes or processes.get("world_size", 1) == 1:
        return ""
    return f", {processes['world_size']} processes ({processes.get('backend')}, {processes.get('launcher')})"


def _inputs_text(data: dict) -> str:
    """``(1, 28, 28)``, or ``input_ids [batch, 16] int64, ...`` for named inputs."""
    if data.get("inputs"):
        return ", ".join(f"{i['name']} {i['shape']} {i['dtype']}" for i in data["inputs"])
    return str(tuple(data["input_shape"]))
