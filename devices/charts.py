"""Charts of device data, drawn on the server as SVG with pygal: no script, no outside
network, and the page embeds them as images (`data:` URIs) under its strict CSP. Every
chart sits next to a table of the same figures, which is what screen readers read."""

from __future__ import annotations

import base64
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pygal
from pygal.style import Style

# pygal puts an import hook for its map plugins on sys.meta_path; it lacks find_spec, so
# every later import through it warns (ImportWarning). The platform uses no pygal maps.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]

# The platform's colours (app.css); large type, because the page is read on laptops.
STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#9aa5b1",
    colors=("#1d4ed8", "#b45309", "#047857"),
    font_family="system-ui, sans-serif",
    label_font_size=13,
    major_label_font_size=13,
    value_font_size=13,
    title_font_size=15,
)
WIDTH, HEIGHT = 860, 300


def _uri(svg: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def _config(**extra: object) -> dict[str, object]:
    return {
        "style": STYLE,
        "width": WIDTH,
        "height": HEIGHT,
        "js": [],  # pygal's tooltips load a script from the internet: none here
        "show_legend": False,
        "show_dots": False,
        "disable_xml_declaration": False,
        "no_data_text": "No data in this period",
        **extra,
    }


def line(points: Sequence[tuple[datetime, float]], zone: ZoneInfo, unit: str) -> str:
    """Values over time, times shown in `zone` (days only when the points span days)."""
    span = points[-1][0] - points[0][0] if points else timedelta(0)
    shape = "%d %b" if span > timedelta(days=2) else "%d %b %H:%M"
    chart = pygal.DateTimeLine(
        **_config(
            x_value_formatter=lambda t: t.astimezone(zone).strftime(shape),
            y_title=unit,
            x_label_rotation=0,
            truncate_label=-1,
            show_minor_x_labels=False,
            x_labels_major_count=6,
        )
    )
    chart.add("", list(points))
    return _uri(chart.render())


def bars(
    labels: Sequence[str],
    values: Sequence[float],
    y_title: str,
    top: float | None,
    threshold: float | None = None,
) -> str:
    """One bar per label (a day, a site); with `threshold`, a dashed horizontal line at that
    value, labelled on the axis, drawn over the bars so that none hides it."""
    extra: dict[str, object] = {"y_title": y_title, "x_label_rotation": 0}
    if threshold is not None and top is None:
        top = max([threshold, *values]) or 1.0  # a scale of 0 to 0 has no line to draw
    if top is not None:
        extra["range"] = (0, top)
    if threshold is not None and top is not None:
        extra["y_labels"] = _ticks_with(top, threshold)
        # The only major guide: the filter below finds the threshold's line by it.
        extra["y_labels_major"] = [threshold]
    chart = pygal.Bar(**_config(**extra))
    if threshold is not None:
        chart.add_xml_filter(_threshold_on_top)
    chart.x_labels = list(labels)
    chart.add("", list(values))
    return _uri(chart.render())


THRESHOLD_COLOUR = "#b00020"  # app.css --error: the line marks where a row gets flagged


def _ticks_with(top: float, threshold: float) -> list[object]:
    """Five even steps up to `top`, and the threshold, labelled; a step too close to the
    threshold is left out so that the two labels do not overlap."""
    steps = [top * i / 5 for i in range(6)]
    kept: list[object] = [s for s in steps if abs(s - threshold) > top / 12]
    kept.append({"value": threshold, "label": f"{threshold:g}"})
    return kept


def _threshold_on_top(root: Any) -> Any:
    """pygal draws guides under the bars: move the threshold's guide (the one major guide)
    to the end of the plot, drawn in the error colour."""
    plot = next((g for g in root.iter("g") if g.get("class") == "plot"), None)
    found = next(
        (
            (group, path)
            for group in root.iter("g")
            for path in group.findall("path")
            if "major" in (path.get("class") or "").split()
        ),
        None,
    )
    if plot is None or found is None:  # no data: pygal drew no axes
        return root
    group, path = found
    group.remove(path)
    path.set("class", "threshold")
    path.set(
        "style",
        f"stroke: {THRESHOLD_COLOUR}; stroke-width: 2.5; stroke-dasharray: 10,4; fill: none",
    )
    plot.append(path)
    return root
