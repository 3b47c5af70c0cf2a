"""Small charts as inline SVG, rendered by the server: no JavaScript, no external files.

Every chart is an ``<svg role="img">`` with an ``aria-label`` saying what it shows, and
each bar or point has a ``<title>`` (the browser's tooltip) with its numbers. Colours
follow the admin's: calls in the admin's blue, errors in its error red.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

CALLS_COLOUR = "#79aec8"
ERRORS_COLOUR = "#ba2121"
P50_COLOUR = "#417690"
P95_COLOUR = "#e0a800"
AXIS_COLOUR = "#999"


def _num(value: float) -> str:
    """A coordinate: one decimal, no trailing zeros."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def bar_chart(points: Sequence[tuple[str, int, int]], *, label: str, width: int = 600, height: int = 120) -> SafeString:
    """Calls per period as bars, the errors among them in red over each bar's foot.

    ``points`` are ``(period label, calls, errors)``, oldest first."""
    top = 14  # room for the scale
    bottom = 14  # room for the first/last period labels
    plot = height - top - bottom
    peak = max((calls for _, calls, _ in points), default=0)
    step = width / max(1, len(points))
    bars = []
    for index, (period, calls, errors) in enumerate(points):
        x = index * step + step * 0.1
        w = max(1.0, step * 0.8)
        h = plot * calls / peak if peak else 0.0
        eh = plot * min(errors, calls) / peak if peak else 0.0
        title = f"{period}: {calls} call{'s' if calls != 1 else ''}, {errors} error{'s' if errors != 1 else ''}"
        bars.append(
            format_html(
                '<g><title>{}</title><rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="transparent"/></g>',
                title,
                _num(x),
                _num(top + plot - h),
                _num(w),
                _num(h),
                CALLS_COLOUR,
                _num(x),
                _num(top + plot - eh),
                _num(w),
                _num(eh),
                ERRORS_COLOUR,
                _num(index * step),
                top,
                _num(step),
                plot,  # the whole column shows the tooltip
            )
        )
    first = points[0][0] if points else ""
    last = points[-1][0] if points else ""
    return format_html(
        '<svg class="plugin-chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" height="{}" '
        'preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">'
        '<text x="0" y="10" font-size="10" fill="{}">{}</text>'
        '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="1"/>'
        "{}"
        '<text x="0" y="{}" font-size="10" fill="{}">{}</text>'
        '<text x="{}" y="{}" font-size="10" fill="{}" text-anchor="end">{}</text>'
        "</svg>",
        f"{label}: peak {peak} calls",
        width,
        height,
        width,
        height,
        AXIS_COLOUR,
        f"peak {peak}",
        top + plot,
        width,
        top + plot,
        AXIS_COLOUR,
        mark_safe("".join(bars)),  # noqa: S308 - each part built with format_html
        height - 2,
        AXIS_COLOUR,
        first,
        width,
        height - 2,
        AXIS_COLOUR,
        last,
    )


def line_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    *,
    label: str,
    unit: str = "ms",
    width: int = 600,
    height: int = 120,
) -> SafeString:
    """Lines over periods: ``series`` are ``(name, colour, values)``; None is a gap."""
    top, bottom = 14, 14
    plot = height - top - bottom
    values = [v for _, _, vs in series for v in vs if v is not None]
    peak = max(values, default=0.0)
    count = max(1, len(labels))
    step = width / count

    def y(value: float) -> float:
        return top + plot - (plot * value / peak if peak else 0.0)

    parts = []
    for name, colour, vs in series:
        runs: list[list[str]] = [[]]
        for index, value in enumerate(vs):
            if value is None:
                runs.append([])
                continue
            runs[-1].append(f"{_num(index * step + step / 2)},{_num(y(value))}")
        for run in runs:
            if len(run) > 1:
                parts.append(
                    format_html(
                        '<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"/>', " ".join(run), colour
                    )
                )
        for index, value in enumerate(vs):
            if value is not None:
                parts.append(
                    format_html(
                        '<circle cx="{}" cy="{}" r="2" fill="{}"><title>{} {}: {} {}</title></circle>',
                        _num(index * step + step / 2),
                        _num(y(value)),
                        colour,
                        labels[index],
                        name,
                        f"{value:.2f}",
                        unit,
                    )
                )
    legend = format_html_join("", '<tspan fill="{}">{} </tspan>', ((colour, f"■ {name}") for name, colour, _ in series))
    return format_html(
        '<svg class="plugin-chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" height="{}" '
        'preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">'
        '<text x="0" y="10" font-size="10" fill="{}">{} {}</text>'
        '<text x="{}" y="10" font-size="10" text-anchor="end">{}</text>'
        '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="1"/>'
        "{}"
        '<text x="0" y="{}" font-size="10" fill="{}">{}</text>'
        '<text x="{}" y="{}" font-size="10" fill="{}" text-anchor="end">{}</text>'
        "</svg>",
        f"{label}: peak {peak:.2f} {unit}",
        width,
        height,
        width,
        height,
        AXIS_COLOUR,
        f"{peak:.2f}",
        unit,
        width,
        legend,
        top + plot,
        width,
        top + plot,
        AXIS_COLOUR,
        mark_safe("".join(parts)),  # noqa: S308 - each part built with format_html
        height - 2,
        AXIS_COLOUR,
        labels[0] if labels else "",
        width,
        height - 2,
        AXIS_COLOUR,
        labels[-1] if labels else "",
    )


def sparkline(
    calls: Sequence[int], errors: Sequence[int], *, label: str, width: int = 96, height: int = 20
) -> SafeString:
    """A tiny bar chart for a list row: calls per period, errors in red."""
    peak = max(calls, default=0)
    step = width / max(1, len(calls))
    bars = []
    for index, (n, e) in enumerate(zip(calls, errors, strict=True)):
        if not n:
            continue
        h = max(1.0, height * n / peak)
        bars.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>',
                _num(index * step),
                _num(height - h),
                _num(max(1.0, step - 1)),
                _num(h),
                CALLS_COLOUR,
            )
        )
        if e:
            eh = max(1.0, height * min(e, n) / peak)
            bars.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>',
                    _num(index * step),
                    _num(height - eh),
                    _num(max(1.0, step - 1)),
                    _num(eh),
                    ERRORS_COLOUR,
                )
            )
    return format_html(
        '<svg class="plugin-sparkline" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" height="{}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{}</title>'
        '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="0.5"/>{}</svg>',
        label,
        width,
        height,
        width,
        height,
        label,
        height - 0.25,
        width,
        height - 0.25,
        AXIS_COLOUR,
        mark_safe("".join(bars)),  # noqa: S308 - each part built with format_html
    )
