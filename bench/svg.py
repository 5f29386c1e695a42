"""
Plots for the benchmarks' results, written as SVG directly: no plotting
library to install, and a file that diffs as text.
"""

from __future__ import annotations

from dataclasses import dataclass

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"]


def nice_step(span: float, ticks: int = 6) -> float:
    """A round step (1, 2 or 5 times a power of ten) that cuts ``span`` into about ``ticks`` parts."""
    raw = max(span, 1e-9) / ticks
    power = 10 ** int(f"{raw:e}".split("e")[1])
    return next(step * power for step in (1, 2, 5, 10) if step * power >= raw)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class Series:
    """
    One line of a panel: (x, y) points, in x order. Lines of the same
    ``group`` share a colour (dashed ones set against solid ones).
    """

    label: str
    points: list[tuple[float, float]]
    group: str = ""
    dashed: bool = False


@dataclass
class Panel:
    """One chart: its title, the y axis's unit, and its lines (the same colour for the same label in every panel)."""

    title: str
    unit: str
    series: list[Series]


def line_panels(title: str, x_label: str, panels: list[Panel], columns: int = 2) -> str:
    """
    Panels of line charts in a grid, each from 0 on both axes, with a
    legend of every series label under the title.
    """
    panel_w, panel_h, left, gap_x, gap_y = 360, 190, 64, 40, 74
    legend = list({series.label: series for panel in panels for series in panel.series}.values())
    groups = list(dict.fromkeys(series.group or series.label for series in legend))
    colours = {group: COLOURS[number % len(COLOURS)] for number, group in enumerate(groups)}

    def stroke(series: Series) -> str:
        dash = ' stroke-dasharray="6,4"' if series.dashed else ""
        return f'stroke="{colours[series.group or series.label]}" stroke-width="1.8"{dash}'

    rows = -(-len(panels) // columns)
    top = 48 + 18 * -(-len(legend) // 2)
    width = left + columns * (panel_w + gap_x)
    height = top + rows * (panel_h + gap_y) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    for number, series in enumerate(legend):
        x, y = left + (number % 2) * (panel_w + gap_x), 40 + 18 * (number // 2)
        parts.append(
            f'<line x1="{x}" y1="{y}" x2="{x + 26}" y2="{y}" {stroke(series)}/>'
            f'<text x="{x + 32}" y="{y + 4}">{escape(series.label)}</text>'
        )
    for number, panel in enumerate(panels):
        x0 = left + (number % columns) * (panel_w + gap_x)
        y0 = top + (number // columns) * (panel_h + gap_y) + 18
        points = [point for series in panel.series for point in series.points]
        x_span = max((x for x, _ in points), default=1.0) or 1.0
        y_span = max((y for _, y in points), default=1.0) or 1.0
        x_step, y_step = nice_step(x_span, 5), nice_step(y_span, 4)
        x_max, y_max = x_step * -(-x_span // x_step), y_step * -(-y_span // y_step)

        def at(x: float, y: float, x0: float = x0, y0: float = y0, x_max: float = x_max, y_max: float = y_max) -> str:
            return f"{x0 + x / x_max * panel_w:.1f},{y0 + panel_h - y / y_max * panel_h:.1f}"

        parts.append(f'<text x="{x0}" y="{y0 - 6}">{escape(panel.title)} ({escape(panel.unit)})</text>')
        tick = 0.0
        while tick <= y_max + 1e-9:
            y = y0 + panel_h - tick / y_max * panel_h
            parts.append(
                f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + panel_w}" y2="{y:.1f}" stroke="#e4e4e4"/>'
                f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>'
            )
            tick += y_step
        tick = 0.0
        while tick <= x_max + 1e-9:
            x = x0 + tick / x_max * panel_w
            parts.append(f'<text x="{x:.1f}" y="{y0 + panel_h + 15}" text-anchor="middle">{tick:,g}</text>')
            tick += x_step
        parts.append(
            f'<text x="{x0 + panel_w / 2}" y="{y0 + panel_h + 32}" text-anchor="middle" fill="#555">'
            f"{escape(x_label)}</text>"
        )
        for series in panel.series:
            line = " ".join(at(x, y) for x, y in series.points)
            parts.append(f'<polyline fill="none" {stroke(series)} points="{line}"/>')
            for x, y in series.points:
                cx, cy = at(x, y).split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colours[series.group or series.label]}"/>')
        parts.append(f'<rect x="{x0}" y="{y0}" width="{panel_w}" height="{panel_h}" fill="none" stroke="#333"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
