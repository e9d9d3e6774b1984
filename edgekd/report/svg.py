"""Small inline SVG charts for the HTML report: no plotting library, no network, crisp at any width.

Each function returns one ``<svg class="chart">`` element whose ``viewBox`` scales with the page, or
``""`` when there is nothing to draw (the report then says why instead of showing an empty chart).
"""

from __future__ import annotations

from html import escape

WIDTH = 720
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def _svg(height: float, body: str, title: str) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def bars(labels: list[str], values: list[float], unit: str, title: str) -> str:
    """Horizontal bars, one per label, the value written at the end of each."""
    if not labels or not any(v > 0 for v in values):
        return ""
    row, left, right = 22, 260, 70
    top = max(values) or 1.0
    parts = []
    for i, (name, value) in enumerate(zip(labels, values)):
        y = 8 + i * row
        length = (WIDTH - left - right) * value / top
        parts.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(name[:42])}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" fill="{PALETTE[0]}"/>'
            f'<text x="{left + length + 4:.1f}" y="{y + 14}">{_fmt(value)} {escape(unit)}</text>'
        )
    return _svg(16 + len(labels) * row, "".join(parts), title)


def scatter(points: list[tuple[float, float]], labels: list[str], front: list[int], axes: tuple[str, str],
            title: str) -> str:  # fmt: skip
    """Labelled points with the indices in ``front`` joined by a line (the Pareto front)."""
    if not points:
        return ""
    left, bottom, top_pad, right = 60, 40, 16, 200
    height = 340
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = 0.0, max(xs) * 1.1 or 1.0
    y0, y1 = min(ys) - 1.0, max(ys) + 1.0

    def at(x: float, y: float) -> tuple[float, float]:
        return (left + (WIDTH - left - right) * (x - x0) / (x1 - x0),
                height - bottom - (height - bottom - top_pad) * (y - y0) / (y1 - y0))  # fmt: skip

    parts = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{WIDTH - right}" y2="{height - bottom}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{height - bottom}" stroke="#333"/>',
        f'<text x="{(WIDTH - right + left) / 2}" y="{height - 8}" text-anchor="middle">{escape(axes[0])}</text>',
        f'<text x="14" y="{(height - bottom) / 2}" transform="rotate(-90 14 {(height - bottom) / 2})" '
        f'text-anchor="middle">{escape(axes[1])}</text>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        x, y = x0 + fraction * (x1 - x0), y0 + fraction * (y1 - y0)
        px, _ = at(x, y0)
        _, py = at(x0, y)
        parts.append(f'<text x="{px:.1f}" y="{height - bottom + 14}" text-anchor="middle">{_fmt(x)}</text>')
        parts.append(f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
    if len(front) > 1:
        line = " ".join("{:.1f},{:.1f}".format(*at(*points[i])) for i in front)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{PALETTE[1]}" stroke-width="2"/>')
    for i, ((x, y), name) in enumerate(zip(points, labels)):
        px, py = at(x, y)
        colour = PALETTE[1] if i in front else PALETTE[0]
        lift = 6 + 12 * (i % 3)  # neighbours' labels are staggered, not printed over each other
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour}"/>'
                     f'<text x="{px + 6:.1f}" y="{py - lift:.1f}">{escape(name[:48])}</text>')  # fmt: skip
    return _svg(height, "".join(parts), title)


def histograms(series: list[tuple[str, dict]], unit: str, title: str) -> str:
    """One small histogram per (label, {"edges_ms", "counts"}), each on its own time axis."""
    series = [(name, h) for name, h in series if h and sum(h.get("counts", [])) > 0]
    if not series:
        return ""
    row, left, right = 54, 260, 20
    parts = []
    for i, (name, hist) in enumerate(series):
        top = 6 + i * row
        edges, counts = hist["edges_ms"], hist["counts"]
        span = (edges[-1] - edges[0]) or 1.0
        peak = max(counts)
        width = WIDTH - left - right
        parts.append(f'<text x="{left - 6}" y="{top + 22}" text-anchor="end">{escape(name[:42])}</text>')
        for count, low, high in zip(counts, edges, edges[1:]):
            x = left + width * (low - edges[0]) / span
            w = max(width * (high - low) / span - 1, 1)
            h = 30 * count / peak
            tip = f"{count} runs, {low:.3f}-{high:.3f} {unit}"
            parts.append(f'<rect x="{x:.1f}" y="{top + 34 - h:.1f}" width="{w:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[2]}"><title>{escape(tip)}</title></rect>')  # fmt: skip
        parts.append(f'<text x="{left}" y="{top + 47}">{_fmt(edges[0])} {escape(unit)}</text>'
                     f'<text x="{WIDTH - right}" y="{top + 47}" text-anchor="end">{_fmt(edges[-1])} {escape(unit)}'
                     "</text>")  # fmt: skip
    return _svg(12 + len(series) * row, "".join(parts), title)


def grouped_bars(
    groups: list[str], series: dict[str, list[float | None]], title: str, shared_scale: bool = False
) -> str:
    """Per group (a ledger row) one bar per series, each series scaled to its own maximum (the labels
    carry the values): how each stage moved accuracy, size and latency. ``shared_scale``: one scale for
    all series, for series of the same quantity (two runs' latencies)."""
    names = [n for n, values in series.items() if any(v for v in values if v is not None)]
    if not groups or not names:
        return ""
    row, left, right = 16 * len(names) + 12, 200, 90
    maxima = {name: max(v for v in series[name] if v is not None) for name in names}
    scale = {name: (max(maxima.values()) if shared_scale else maxima[name]) or 1.0 for name in names}
    parts = []
    for n, name in enumerate(names):
        parts.append(f'<rect x="{left + n * 150}" y="4" width="10" height="10" fill="{PALETTE[n]}"/>'
                     f'<text x="{left + n * 150 + 14}" y="13">{escape(name)}</text>')  # fmt: skip
    for g, group in enumerate(groups):
        top = 24 + g * row
        parts.append(f'<text x="{left - 6}" y="{top + row / 2 + 2}" text-anchor="end">{escape(group[:32])}</text>')
        for n, name in enumerate(names):
            value = series[name][g]
            if value is None:
                continue
            length = (WIDTH - left - right) * value / scale[name]
            y = top + n * 16
            parts.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="13" fill="{PALETTE[n]}"/>'
                         f'<text x="{left + length + 4:.1f}" y="{y + 11}">{_fmt(value)}</text>')  # fmt: skip
    return _svg(28 + len(groups) * row, "".join(parts), title)


def path_to_limit(steps: list[str], series: dict[str, list[float | None]], limit: float, unit: str,
                  title: str) -> str:  # fmt: skip
    """Costs step by step (one line per series, e.g. measured and predicted) falling towards ``limit``,
    drawn as a dashed line: the path a budget search took."""
    names = [n for n, values in series.items() if any(v is not None for v in values)]
    if len(steps) < 2 or not names:
        return ""
    left, bottom, top_pad, right, height = 70, 60, 28, 30, 320
    values = [v for n in names for v in series[n] if v is not None] + [limit]
    y0, y1 = 0.0, max(values) * 1.08

    def at(i: int, y: float) -> tuple[float, float]:
        return (left + (WIDTH - left - right) * i / (len(steps) - 1),
                height - bottom - (height - bottom - top_pad) * (y - y0) / (y1 - y0))  # fmt: skip

    _, limit_y = at(0, limit)
    parts = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{WIDTH - right}" y2="{height - bottom}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{height - bottom}" stroke="#333"/>',
        f'<line x1="{left}" y1="{limit_y:.1f}" x2="{WIDTH - right}" y2="{limit_y:.1f}" stroke="{PALETTE[3]}" '
        f'stroke-dasharray="6 4"/><text x="{WIDTH - right}" y="{limit_y - 5:.1f}" text-anchor="end" '
        f'fill="{PALETTE[3]}">budget {_fmt(limit)} {escape(unit)}</text>',
        f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end">{_fmt(y1)}</text>'
        f'<text x="{left - 6}" y="{height - bottom + 4}" text-anchor="end">0</text>',
        f'<text x="14" y="{(height - bottom) / 2}" transform="rotate(-90 14 {(height - bottom) / 2})" '
        f'text-anchor="middle">{escape(unit)}</text>',
    ]
    for i, name in enumerate(steps):
        x, _ = at(i, y0)
        parts.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" text-anchor="end" '
                     f'transform="rotate(-30 {x:.1f} {height - bottom + 14})">{escape(name[:28])}</text>')  # fmt: skip
    for n, name in enumerate(names):
        points = [at(i, v) for i, v in enumerate(series[name]) if v is not None]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{PALETTE[n]}" stroke-width="2"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{PALETTE[n]}"/>' for x, y in points]
        parts.append(f'<rect x="{left + 10 + n * 150}" y="6" width="10" height="10" fill="{PALETTE[n]}"/>'
                     f'<text x="{left + 24 + n * 150}" y="15">{escape(name)}</text>')  # fmt: skip
    return _svg(height, "".join(parts), title)
