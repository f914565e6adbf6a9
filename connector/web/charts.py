"""Charts drawn on the server as inline SVG: histograms (one or two series), tier bars, and a score trend line."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

COLORS = {"relationship": "#2f6fdb", "experience": "#1f9d74", "published": "#8a94a6", "draft": "#d9822b",
          "A": "#1f9d74", "B": "#2f6fdb", "C": "#8a94a6"}
_W, _H, _PAD_L, _PAD_B, _PAD_T = 420, 180, 36, 26, 10


def _frame(body: str, label: str, width: int = _W, height: int = _H) -> Markup:
    return Markup(f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
                  f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>{body}</svg>')


def _nice(n: int) -> int:
    """The smallest round number (1, 2 or 5 times a power of ten, at least 2) not below n, for even grid lines."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= max(n, 2):
                return m * step
        step *= 10


def _y_axis(top: int, plot_h: int, width: int) -> str:
    out = []
    for frac in (0, 0.5, 1):
        y = _PAD_T + plot_h * (1 - frac)
        out.append(f'<line x1="{_PAD_L}" x2="{width - 4}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{_PAD_L - 4}" y="{y + 4:.1f}" class="tick" text-anchor="end">{top * frac:g}</text>')
    return "".join(out)


def histogram(series: dict[str, Sequence[int]], labels: Sequence[str], title: str) -> Markup:
    """Bars per bin; with two series the bars stand side by side (e.g. published vs draft)."""
    bins = len(labels)
    top = _nice(max([max(s) if len(s) else 0 for s in series.values()] + [1]))
    plot_w, plot_h = _W - _PAD_L - 6, _H - _PAD_T - _PAD_B
    slot = plot_w / max(bins, 1)
    width = slot * 0.8 / max(len(series), 1)
    parts = [_y_axis(top, plot_h, _W)]
    for k, (name, counts) in enumerate(series.items()):
        color = COLORS.get(name, "#2f6fdb")
        for i, n in enumerate(counts):
            h = plot_h * n / top
            x = _PAD_L + i * slot + slot * 0.1 + k * width
            parts.append(f'<rect x="{x:.1f}" y="{_PAD_T + plot_h - h:.1f}" width="{width:.1f}" height="{h:.1f}" '
                         f'fill="{color}"><title>{escape(name)} {escape(labels[i])}: {n}</title></rect>')
    for i, label in enumerate(labels):
        if i % 2 == 0 or bins <= 6:
            x = _PAD_L + i * slot + slot / 2
            parts.append(f'<text x="{x:.1f}" y="{_H - 8}" class="tick" text-anchor="middle">{escape(label)}</text>')
    return _frame("".join(parts), title)


def tier_bars(tiers: dict[str, int], title: str) -> Markup:
    """One horizontal bar per tier with its count."""
    total = max(sum(tiers.values()), 1)
    height = 28 * len(tiers) + 8
    parts = []
    for i, (tier, n) in enumerate(tiers.items()):
        w = (_W - 150) * n / total
        y = 6 + i * 28
        parts.append(f'<text x="4" y="{y + 15}" class="label">Tier {escape(tier)}</text>'
                     f'<rect x="56" y="{y}" width="{w:.1f}" height="20" fill="{COLORS.get(tier, "#888")}"/>'
                     f'<text x="{60 + w:.1f}" y="{y + 15}" class="label">{n} ({100 * n / total:.0f}%)</text>')
    return _frame("".join(parts), title, height=height)


def trend(points: Sequence[tuple[datetime, float | None, float | None]], title: str) -> Markup:
    """Relationship and experience over time (0-100), one line each, a dot per snapshot."""
    plot_w, plot_h = _W - _PAD_L - 10, _H - _PAD_T - _PAD_B
    parts = [_y_axis(100, plot_h, _W)]
    if not points:
        parts.append(f'<text x="{_W / 2}" y="{_H / 2}" class="label" text-anchor="middle">no history yet</text>')
        return _frame("".join(parts), title)
    start, end = points[0][0].timestamp(), points[-1][0].timestamp()
    span = max(end - start, 1.0)

    def xy(t: datetime, v: float) -> tuple[float, float]:
        x = _PAD_L + (plot_w * (t.timestamp() - start) / span if len(points) > 1 else plot_w / 2)
        return x, _PAD_T + plot_h * (1 - v / 100)

    for idx, name in ((1, "relationship"), (2, "experience")):
        coords = [xy(p[0], float(p[idx])) for p in points if p[idx] is not None]  # type: ignore[arg-type]
        if not coords:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{COLORS[name]}" stroke-width="2"/>')
        parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{COLORS[name]}"/>' for x, y in coords[-60:])
    for t in (points[0][0], points[-1][0]):
        x, _ = xy(t, 0)
        parts.append(f'<text x="{x:.1f}" y="{_H - 8}" class="tick" text-anchor="middle">{t.date().isoformat()}</text>')
    return _frame("".join(parts), title)
