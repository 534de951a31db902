"""Server-rendered SVG line charts for the run page (no JavaScript library): loss and F1 per epoch."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def line_chart(*, title: str, series: dict[str, list[tuple[float, float | None]]], width: int = 420,
               height: int = 200, y_min: float | None = None, y_max: float | None = None) -> SafeString:
    """An SVG with one polyline (and dots) per series; x is the epoch. Points with None are skipped."""
    points = [(x, y) for values in series.values() for x, y in values if y is not None]
    left, right, top, bottom = 44, 10, 24, 26
    svg = [f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
           f'<text x="{left}" y="15" font-size="12" font-weight="bold">{escape(title)}</text>']
    if not points:
        svg.append(f'<text x="{left}" y="{height // 2}" font-size="11">–</text></svg>')
        return mark_safe("".join(svg))
    xs = [x for x, _y in points]
    ys = [y for _x, y in points]
    x0, x1 = min(xs), max(xs)
    y0 = min(ys) if y_min is None else y_min
    y1 = max(ys) if y_max is None else y_max
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * plot_h

    svg.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
               'stroke="#888"/>')
    svg.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>')
    for value in (y0, y1):
        svg.append(f'<text x="{left - 4}" y="{py(value) + 4:.1f}" font-size="10" '
                   f'text-anchor="end">{value:.3g}</text>')
    for value in sorted({int(x0), int(x1)}):
        svg.append(f'<text x="{px(value):.1f}" y="{height - 8}" font-size="10" '
                   f'text-anchor="middle">{value}</text>')
    for k, (name, values) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        coords = [(px(x), py(y)) for x, y in values if y is not None]
        if coords:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in coords)
            svg.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
            svg += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{color}"/>' for a, b in coords]
        svg.append(f'<text x="{left + 8 + 110 * k}" y="{top + 12}" font-size="10" fill="{color}">'
                   f'{escape(name)}</text>')
    svg.append("</svg>")
    return mark_safe("".join(svg))
