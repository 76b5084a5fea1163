"""The temperature chart of a shipment: its logger's readings over the trip, with the
product's allowed range as a band and the hard limits as dashed lines.

Drawn on the server, like the device charts (`devices/charts.py`, which this package may
not import), but as plain SVG markup with presentation attributes rather than pygal's
output: the shipment page embeds it inline, and the strict Content-Security-Policy refuses
the `<style>` element pygal writes. Accessible: `role="img"` with a title and a description
that states the range, the number of readings, the lowest and highest and the finding, so
a screen reader gets what the picture shows. Every text is escaped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from logistics.shipments.excursions import limits_of, readings_of
from logistics.shipments.models import Shipment
from logistics.shipments.temperature import Range, find_excursion

WIDTH, HEIGHT = 860, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 20, 40
INK, SUBTLE, LINE, BAND, ERROR = "#1f2933", "#9aa5b1", "#1d4ed8", "#d1fae5", "#b00020"


def _zone(zone: str | None) -> ZoneInfo:
    if zone is None:
        try:
            from flask_login import current_user

            zone = getattr(current_user, "timezone", None)
        except RuntimeError:  # outside a request
            zone = None
    try:
        return ZoneInfo(zone or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def shipment_chart_svg(session: Session, shipment_id: int, zone: str | None = None) -> str | None:
    """The chart of the shipment's readings (times on `zone`'s clock, the reader's by
    default), or None when its logger has sent nothing yet."""
    shipment = session.get(Shipment, shipment_id)
    if shipment is None:
        return None
    readings = readings_of(session, shipment_id)
    if not readings:
        return None
    return render(readings, limits_of(shipment), _zone(zone), f"Shipment #{shipment_id}")


def render(readings: list[tuple[datetime, float]], limits: Range, zone: ZoneInfo, name: str) -> str:
    """The SVG markup for `readings` (time, °C; any order) against `limits`."""
    points = sorted(readings)
    values = [c for _, c in points]
    low = min([*values, limits.hard_min_c, limits.min_c]) - 1
    high = max([*values, limits.hard_max_c, limits.max_c]) + 1
    start, end = points[0][0], points[-1][0]
    span = max((end - start).total_seconds(), 60.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: datetime) -> float:
        return LEFT + (at - start).total_seconds() / span * plot_w

    def y(celsius: float) -> float:
        return TOP + (high - celsius) / (high - low) * plot_h

    finding = find_excursion(points, limits)
    shape = "%d %b" if end - start > timedelta(days=2) else "%d %b %H:%M"
    first = start.astimezone(zone).strftime(shape)
    last = end.astimezone(zone).strftime(shape)
    zone_name = str(zone)
    summary = (
        f"{len(points)} readings from {first} to {last} ({zone_name}); lowest "
        f"{min(values):g} °C, highest {max(values):g} °C. Allowed {limits.min_c:g} to "
        f"{limits.max_c:g} °C, never beyond {limits.hard_min_c:g} to {limits.hard_max_c:g} °C. "
        + (finding.describe(limits) if finding else "No excursion.")
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" role="img" aria-labelledby="temp-title temp-desc" '
        f'data-testid="temperature-svg" font-family="system-ui, sans-serif" font-size="13">',
        f'<title id="temp-title">{escape(name)}: temperature on the way</title>',
        f'<desc id="temp-desc">{escape(summary)}</desc>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        # The allowed range, then the hard limits.
        f'<rect class="allowed-range" x="{LEFT}" y="{y(limits.max_c):.1f}" width="{plot_w}" '
        f'height="{y(limits.min_c) - y(limits.max_c):.1f}" fill="{BAND}"/>',
    ]
    for value, label in (
        (limits.max_c, f"max {limits.max_c:g}"),
        (limits.min_c, f"min {limits.min_c:g}"),
    ):
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" fill="{INK}">'
            f"{escape(label)}</text>"
        )
    for value in (limits.hard_max_c, limits.hard_min_c):
        parts.append(
            f'<line class="hard-limit" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" '
            f'y2="{y(value):.1f}" stroke="{ERROR}" stroke-width="2" stroke-dasharray="10,4"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" fill="{ERROR}">'
            f"{value:g}</text>"
        )
    parts += [
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="{SUBTLE}"/>',
        f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" '
        f'stroke="{SUBTLE}"/>',
        f'<text x="{LEFT}" y="{HEIGHT - 12}" fill="{INK}">{escape(first)}</text>',
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 12}" text-anchor="end" fill="{INK}">'
        f"{escape(last)} ({escape(zone_name)})</text>",
        f'<text x="14" y="{TOP + plot_h / 2:.1f}" fill="{INK}" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})" text-anchor="middle">°C</text>',
    ]
    path = " ".join(f"{x(at):.1f},{y(c):.1f}" for at, c in points)
    parts.append(
        f'<polyline class="readings" points="{path}" fill="none" stroke="{LINE}" stroke-width="2"/>'
    )
    for at, c in points:
        if limits.distance_out(c) > 0:
            when = at.astimezone(zone).strftime("%d %b %H:%M")
            parts.append(
                f'<circle class="out-of-range" cx="{x(at):.1f}" cy="{y(c):.1f}" r="3.5" '
                f'fill="{ERROR}"><title>{escape(f"{c:g} °C at {when}")}</title></circle>'
            )
    parts.append("</svg>")
    return "".join(parts)
