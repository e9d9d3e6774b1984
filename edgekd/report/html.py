"""``report.html``: the benchmark (and, for a pipeline run, its ledger) as a page people would rather
look at than read.

A summary first (what went in, what came out, the ratios), then the results as sortable HTML tables,
one chart per question users ask (accuracy against latency with the Pareto front, the latency
distribution of every measurement, memory, file size, what each stage did), each artifact's manifest
and the machine. Self-contained: inline SVG and a few lines of script, no network. A chart without
data is left out with a line saying why.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from edgekd.report import svg
from edgekd.report.rows import (
    PERCENT_METRICS,
    count_text,
    file_score,
    label,
    ledger_metric,
    ledger_score,
    ok_rows,
    pareto_front,
)

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.meta{color:#555}.cards{display:flex;flex-wrap:wrap;gap:.8em}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em .9em;min-width:12em}
.card b{display:block;font-size:1.3em}.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}th,td{padding:.3em .6em;border-bottom:1px solid #eee}
th{background:#f5f5f5;cursor:pointer;text-align:left;white-space:nowrap}td.num{text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}svg.chart{width:100%;height:auto;max-width:720px}
figure{margin:1em 0}figcaption{color:#555;font-size:13px}.missing{color:#777;font-style:italic}
details pre{font-size:12px;white-space:pre-wrap;background:#fafafa;padding:.5em}
"""
SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((th,col)=>th.addEventListener('click',()=>{
 const body=th.closest('table').tBodies[0],rows=[...body.rows],up=th.dataset.dir!=='up';th.dataset.dir=up?'up':'down';
 const key=r=>{const c=r.cells[col];const v=c.dataset.value;return v===undefined?c.textContent:parseFloat(v)};
 rows.sort((a,b)=>{const x=key(a),y=key(b);return (x>y?1:x<y?-1:0)*(up?1:-1)});rows.forEach(r=>body.appendChild(r));}));
window.addEventListener('load',()=>{document.body.dataset.charts=document.querySelectorAll('svg.chart').length;
 document.body.dataset.resultRows=document.querySelectorAll('#results tbody tr').length;});
"""


def _cell(value: object, number: float | None = None) -> str:
    """A table cell; numbers carry their raw value for sorting and align right."""
    if number is None:
        return f"<td>{escape(str(value))}</td>"
    return f'<td class="num" data-value="{number:.6g}">{escape(str(value))}</td>'


def _table(table_id: str, header: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return (f'<div class="scroll"><table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")  # fmt: skip


def _results_table(report: dict) -> str:
    rows = []
    for r in ok_rows(report):
        lat, acc = r["latency"], r.get("accuracy")
        rows.append("<tr>" + "".join([
            _cell(r["artifact"]), _cell(r["target"]), _cell(r["runtime"]), _cell(r["batch"], r["batch"]),
            _cell(f"{lat['p50_ms']:.3f} ms", lat["p50_ms"]), _cell(f"{lat['p90_ms']:.3f} ms", lat["p90_ms"]),
            _cell(f"{lat['p99_ms']:.3f} ms", lat["p99_ms"]),
            _cell(f"{lat['mean_ms']:.3f} ± {lat['std_ms']:.3f}", lat["mean_ms"]),
            _cell(f"{100 * lat['cv']:.1f}%", lat["cv"]), _cell(f"{r['init_s'] * 1e3:.0f} ms", r["init_s"]),
            _cell(f"{r['first_inference_ms']:.1f} ms", r["first_inference_ms"]),
            _cell(f"{r['peak_memory_bytes'] / 2**20:.1f} MiB", r["peak_memory_bytes"]),
            _cell(file_score(r), acc["top1"] if acc else (r.get("metrics") or {}).get("value", -1.0)),
        ]) + "</tr>")  # fmt: skip
    header = ["artifact", "target", "runtime", "batch", "p50", "p90", "p99", "mean ± std", "cv", "init",
              "first run", "peak memory", "accuracy / metric"]  # fmt: skip
    return _table("results", header, rows)


def _or(value: float | None, missing: float = -1.0) -> float:
    """A count a row may lack (a teacher known only by its file has no parameter count) as a number to sort."""
    return missing if value is None else value


def _ledger_table(ledger: list[dict]) -> str:
    rows = []
    for r in ledger:
        (test, test_value), (val, val_value) = ledger_score(r, "test"), ledger_score(r, "val")
        rows.append("<tr>" + "".join([
            _cell(r["stage"]), _cell(r["kind"]), _cell(test, test_value if test_value is not None else -1.0),
            _cell(val, val_value if val_value is not None else -1.0),
            _cell(count_text(r["params"]), _or(r["params"])), _cell(count_text(r["macs"]), _or(r["macs"])),
            _cell(f"{r['size_bytes'] / 1024:.1f} KiB", r["size_bytes"]), _cell(f"{r['wall_s']:.1f} s", r["wall_s"]),
            _cell(r.get("notes", "")),
        ]) + "</tr>")  # fmt: skip
    shown = "acc" if ledger_metric(ledger) == "accuracy" else ledger_metric(ledger)
    header = ["stage", "kind", f"test {shown}", f"val {shown}", "params", "MACs", "size", "wall time", "notes"]
    return _table("ledger", header, rows)


def _figure(chart: str, caption: str, missing: str) -> str:
    if not chart:
        return f'<p class="missing">{escape(caption)}: not drawn, {escape(missing)}.</p>'
    return f"<figure>{chart}<figcaption>{escape(caption)}</figcaption></figure>"


def _charts(report: dict, ledger: list[dict] | None) -> str:
    rows = ok_rows(report)
    scored = [r for r in rows if r.get("accuracy")]
    points = [(r["latency"]["p50_ms"], 100 * r["accuracy"]["top1"]) for r in scored]
    parts = [
        _figure(
            svg.scatter(
                points,
                [label(r) for r in scored],
                pareto_front(points),
                ("p50 latency (ms)", "test accuracy (%)"),
                "accuracy against latency",
            ),
            "Accuracy against p50 latency; the orange line is the Pareto front",
            "no accuracy was measured (run the benchmark with --data)",
        ),  # fmt: skip
        _figure(
            svg.histograms([(label(r), r.get("latency_histogram")) for r in rows], "ms", "latency distribution"),
            "Latency of every timed run, per file and target",
            "the report holds no per-run timings (measured by an earlier edgekd)",
        ),  # fmt: skip
        _figure(
            svg.bars([label(r) for r in rows], [r["peak_memory_bytes"] / 2**20 for r in rows], "MiB", "peak memory"),
            "Peak memory over the process baseline",
            "no measurement succeeded",
        ),  # fmt: skip
        _figure(
            svg.bars(
                [a["name"] for a in report["artifacts"]],
                [a.get("size_bytes", 0) / 1024 for a in report["artifacts"]],
                "KiB",
                "file size",
            ),
            "File size as shipped (ONNX external data included)",
            "no file could be read",
        ),  # fmt: skip
    ]
    if ledger:
        groups = [f"{r['stage']} ({r['kind']})" for r in ledger]
        metric = ledger_metric(ledger)
        scale = 100 if metric in PERCENT_METRICS else 1
        scores = [scale * (ledger_score(r)[1] or 0.0) for r in ledger]
        series = {f"test {metric}" + (" (%)" if scale == 100 else ""): scores,
                  "size (KiB)": [r["size_bytes"] / 1024 for r in ledger],
                  "MACs (M)": [_or(r["macs"], 0) / 1e6 for r in ledger]}  # fmt: skip
        parts.insert(0, _figure(svg.grouped_bars(groups, series, "what each stage did"),
                                f"What each stage did to {metric}, size and MACs (each bar scaled to its own maximum)",
                                "the ledger is empty"))  # fmt: skip
        searches = [(r["stage"], (r.get("details") or {}).get("budget_search")) for r in ledger]
        parts[1:1] = [_search_path(stage, search) for stage, search in searches if search]
    return "".join(parts)


def _search_path(stage: str, search: dict) -> str:
    """A budget search step by step: the cost measured on each step's file against the budget."""
    steps = search["steps"]
    names = ["start"] + [f"{s['step']}: {s['group']}" + ("" if s["share"] is None else f" -{s['share']:.0%}")
                         for s in steps]  # fmt: skip
    series = {f"measured ({search['unit']})": [search["start"]] + [s["measured"] for s in steps],
              f"predicted ({search['unit']})": [None] + [s["predicted"] for s in steps]}  # fmt: skip
    chart = svg.path_to_limit(names, series, search["limit"], search["unit"], f"budget search ({stage})")
    outcome = "met" if search["met"] else "NOT met"
    caption = (f"Budget search ({stage}): {search['budget']}; each step's cut, its predicted cost and the cost "
               f"measured on its file; final {search['final']:.4g} {search['unit']}, {outcome} "
               f"(margin {search['margin']:.4g})")  # fmt: skip
    return _figure(chart, caption, "the budget was met before any cut")


def _summary(report: dict, ledger: list[dict] | None) -> str:
    cards = []
    if ledger:
        first, last = ledger[0], ledger[-1]
        ratio = first["size_bytes"] / max(last["size_bytes"], 1)
        cards.append(("went in", f"{first['stage']}: {ledger_score(first)[0]}",
                      f"{first['size_bytes'] / 1024:.0f} KiB, {count_text(first['macs'])} MACs"))  # fmt: skip
        shrunk = f"{last['size_bytes'] / 1024:.0f} KiB ({ratio:.1f}x smaller), {count_text(last['macs'])} MACs"
        cards.append(("came out", f"{last['stage']}: {ledger_score(last)[0]}", shrunk))
    measured = ok_rows(report)
    for target in sorted({r["target"] for r in measured}):
        on_target = [r for r in measured if r["target"] == target]
        fastest = min(on_target, key=lambda r: r["latency"]["p50_ms"])
        slowest = max(on_target, key=lambda r: r["latency"]["p50_ms"])
        speedup = slowest["latency"]["p50_ms"] / max(fastest["latency"]["p50_ms"], 1e-9)
        cards.append((f"fastest on {target}", f"{fastest['latency']['p50_ms']:.3f} ms p50",
                      f"{fastest['artifact']} (batch {fastest['batch']}), {speedup:.1f}x the slowest"))  # fmt: skip
    scored = [r for r in measured if r.get("accuracy")]
    if scored:
        best = max(scored, key=lambda r: r["accuracy"]["top1"])
        cards.append(("most accurate file", f"{100 * best['accuracy']['top1']:.2f}%", label(best)))
    problems = [r for r in report["results"] if r.get("status") != "ok"]
    if problems:
        cards.append(("not measured", str(len(problems)), "see the list below the results"))
    return '<div class="cards">' + "".join(
        f'<div class="card">{escape(title)}<b>{escape(value)}</b>{escape(detail)}</div>'
        for title, value, detail in cards
    ) + "</div>"  # fmt: skip


def _manifests(report: dict) -> str:
    parts = []
    for artifact in report["artifacts"]:
        path = Path(artifact.get("path", ""))
        manifest = path.with_name(path.name + ".json")
        if not manifest.is_file():
            continue
        try:
            content = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        parts.append(f"<details><summary>{escape(artifact['name'])}: {escape(str(content.get('precision', '')))}"
                     f"</summary><pre>{escape(json.dumps(content, indent=2))}</pre></details>")  # fmt: skip
    return "".join(parts) or '<p class="missing">No manifest beside the files (they were not written by edgekd).</p>'


def _problems(report: dict) -> str:
    items = [f"{r['artifact']} @ {r['target']}: {r['status']}: {r.get('error') or r.get('reason')}"
             for r in report["results"] if r.get("status") != "ok"]  # fmt: skip
    items += [f"{label(r)}: {w}" for r in ok_rows(report) for w in r.get("warnings", [])]
    if not items:
        return ""
    return "<h2>Not measured / warnings</h2><ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def _estimates(report: dict) -> str:
    rows = []
    for e in report.get("estimates") or []:
        if "error" in e:
            rows.append("<tr>" + _cell(e["artifact"]) + _cell(e["error"]) + "<td></td>" * 5 + "</tr>")
            continue
        rows.append("<tr>" + "".join([
            _cell(e["artifact"]), _cell(e["phone"]), _cell(e["precision"]), _cell(f"{e['macs']:,}", e["macs"]),
            _cell(f"{e['bytes']:,}", e["bytes"]), _cell(f"~{e['estimate_ms']:.3f} ms", e["estimate_ms"]),
            _cell(e["bound"]),
        ]) + "</tr>")  # fmt: skip
    if not rows:
        return ""
    header = ["artifact", "phone", "precision", "MACs", "bytes", "estimate", "bound"]
    return "<h2>Reference phones (roofline ESTIMATES, not measurements)</h2>" + _table("estimates", header, rows)


def _cap(megabytes: int | None) -> str:
    return f"{megabytes} MiB" if megabytes else "none"


def _machine(report: dict) -> str:
    machine = report["machine"]
    libraries = ", ".join(f"{k} {v}" for k, v in machine.get("libraries", {}).items())
    targets = "".join(
        f"<li>{escape(t['name'])}: {escape(t['description'])} (threads {t['threads_used']}, pinned cores "
        f"{escape(str(t['pin_cores'] or 'no'))}, memory cap {_cap(t['memory_limit_mb'])})</li>"
        for t in report["targets"]
    )
    return (f"<h2>Targets and machine</h2><ul>{targets}</ul><p>{escape(machine['cpu'])}, {machine['cores']} cores, "
            f"flags {escape(', '.join(machine.get('cpu_flags', [])) or 'none')}; {escape(libraries)}</p>")  # fmt: skip


def to_html(report: dict, ledger: list[dict] | None = None) -> str:
    """The page for a benchmark report; ``ledger`` (a pipeline run's rows) adds the run's story."""
    title = "edgekd run" if ledger else "edgekd benchmark"
    data = report["data"]["name"] if report.get("data") else "none (random inputs, no accuracy)"
    meta = (f"created {report['created']}, edgekd {report['edgekd_version']}, benchmark wall time "
            f"{report['wall_s']:.0f} s; accuracy data: {data}")  # fmt: skip
    ledger_part = f"<h2>Ledger</h2>{_ledger_table(ledger)}" if ledger else ""
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head>"
        f"<body><h1>{title}</h1><p class='meta'>{escape(meta)}</p><h2>Summary</h2>{_summary(report, ledger)}"
        f"<h2>Results</h2>{_results_table(report)}{_problems(report)}<h2>Charts</h2>{_charts(report, ledger)}"
        f"{ledger_part}{_estimates(report)}<h2>Artifacts and their manifests</h2>{_manifests(report)}"
        f"{_machine(report)}<script>{SCRIPT}</script></body></html>\n"
    )


def comparison_html(a: dict, b: dict, names: tuple[str, str]) -> str:
    """Two benchmark reports side by side: the rows both measured, their p50 ratio, and both on one chart."""
    from edgekd.report.comparison import matched_rows

    left, right = names
    pairs = matched_rows(a, b)
    rows, groups, p50 = [], [], {f"p50 {left} (ms)": [], f"p50 {right} (ms)": []}
    for key, ra, rb in pairs:
        pa = ra["latency"]["p50_ms"] if ra else None
        pb = rb["latency"]["p50_ms"] if rb else None
        ratio = pb / pa if pa and pb else None
        rows.append("<tr>" + "".join([
            _cell(key[0]), _cell(key[1]), _cell(key[2]), _cell(key[3], key[3] or 0),
            _cell(f"{pa:.3f} ms" if pa else "-", pa or -1.0), _cell(f"{pb:.3f} ms" if pb else "-", pb or -1.0),
            _cell(f"{ratio:.2f}x" if ratio else "-", ratio or -1.0),
            _cell(f"{100 * ra['accuracy']['top1']:.2f}%" if ra and ra.get("accuracy") else "-"),
            _cell(f"{100 * rb['accuracy']['top1']:.2f}%" if rb and rb.get("accuracy") else "-"),
        ]) + "</tr>")  # fmt: skip
        if pa and pb:
            groups.append(f"{key[0]} @ {key[1]} b{key[3]}")
            p50[f"p50 {left} (ms)"].append(pa)
            p50[f"p50 {right} (ms)"].append(pb)
    header = ["artifact", "target", "runtime", "batch", f"p50 {left}", f"p50 {right}", f"{right}/{left}",
              f"accuracy {left}", f"accuracy {right}"]  # fmt: skip
    chart = _figure(
        svg.grouped_bars(groups, p50, "p50 latency of both runs", shared_scale=True),
        f"p50 latency, {left} against {right} (one scale)",
        "the two runs measured no file in common",
    )
    machines = "".join(f"<li>{escape(n)}: {escape(r['machine']['cpu'])}, {r['machine']['cores']} cores, created "
                       f"{escape(r['created'])}</li>" for n, r in ((left, a), (right, b)))  # fmt: skip
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>edgekd compare</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head>"
        f"<body><h1>edgekd compare: {escape(left)} against {escape(right)}</h1>"
        f"<h2>Results</h2>{_table('results', header, rows)}<h2>Charts</h2>{chart}"
        f"<h2>Machines</h2><ul>{machines}</ul><script>{SCRIPT}</script></body></html>\n"
    )
