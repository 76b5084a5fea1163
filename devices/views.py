"""Device pages for site staff, investigators and trial managers: the site's device alerts,
a patient's readings (chart, table, CSV), and the device sections of the core pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as WerkzeugResponse

from dct_platform import policy
from dct_platform.errors import DomainError
from dct_platform.extensions import db
from dct_platform.models import Patient, Site, User
from dct_platform.models.users import SITE_ROLES
from dct_platform.navigation import add_nav_item
from dct_platform.panels import add_panel
from dct_platform.roles import Role
from dct_platform.timeutil import format_local, utcnow
from dct_platform.web.guards import roles_required
from devices import charts, coverage, exports, health, registry, series
from devices.coverage import local_day_bounds
from devices.forms import AcknowledgeForm
from devices.metrics import METRICS
from devices.models import DeviceAlert
from devices.policy import DATA_READERS

bp = Blueprint("devices", __name__, template_folder="templates")

READERS = DATA_READERS
RANGES = (1, 7, 14, 30, 90)
DEFAULT_DAYS = 7
TABLE_ROWS = 100


@dataclass(frozen=True)
class AlertRow:
    alert: DeviceAlert
    label: str
    message: str


def _message(alert: DeviceAlert, zone: str) -> str:
    """The alert in words, with its time in the reader's zone (the stored detail is UTC)."""
    serial = alert.unit.serial_number
    since = format_local(alert.since, zone) if alert.since else ""
    if alert.kind == "silent":
        return f"No data from device {serial} since {since}."
    if alert.kind == "low_battery":
        return f"Device {serial} reported {alert.value:.0f}% battery at {since}."
    if alert.kind == "poor_signal":
        return f"Device {serial} reported a poor connection at {since}."
    offset = alert.value or 0.0
    way = "ahead of" if offset > 0 else "behind"
    return f"The clock of device {serial} is {abs(offset):.0f} seconds {way} the server's."


def _rows(alerts: list[DeviceAlert], zone: str) -> list[AlertRow]:
    return [AlertRow(a, health.LABELS[a.kind], _message(a, zone)) for a in alerts]


@bp.get("/devices/alerts")
@roles_required(*READERS)
def alerts() -> str:
    found = health.open_alerts(db.session(), current_user)
    return render_template(
        "devices/alerts.html",
        rows=_rows(found, current_user.timezone),
        form=AcknowledgeForm(formdata=None),
        can_acknowledge=current_user.role in SITE_ROLES,
    )


@bp.post("/devices/alerts/<int:alert_id>/acknowledge")
@roles_required(*SITE_ROLES)
def acknowledge(alert_id: int) -> WerkzeugResponse | tuple[str, int]:
    session = db.session()
    alert = policy.get_visible(session, current_user, DeviceAlert, alert_id)
    form = AcknowledgeForm()
    if form.validate_on_submit():
        try:
            health.acknowledge(session, current_user, alert, utcnow(), form.note.data)
        except DomainError as exc:
            flash(exc.message, "error")
        else:
            flash(f"Alert for {alert.patient.subject_number} acknowledged.", "success")
        return redirect(request.form.get("next") or url_for("devices.alerts"))
    found = health.open_alerts(session, current_user)
    return render_template(
        "devices/alerts.html",
        rows=_rows(found, current_user.timezone),
        form=form,
        failed_id=alert_id,
        can_acknowledge=True,
    ), 422


@dataclass(frozen=True)
class Period:
    first: date
    days: int
    start: datetime
    end: datetime


def _period(zone: ZoneInfo, today: date) -> tuple[Period, list[str]]:
    errors: list[str] = []
    raw = request.args.get("days", str(DEFAULT_DAYS))
    days = int(raw) if raw.isdigit() and int(raw) in RANGES else DEFAULT_DAYS
    if raw != str(days):
        errors.append(f"Choose a period of {', '.join(map(str, RANGES))} days.")
    last = today
    if request.args.get("until"):
        try:
            last = date.fromisoformat(request.args["until"])
        except ValueError:
            errors.append("Give the last day as a date, e.g. 2026-03-10.")
    first = last - timedelta(days=days - 1)
    start, end = local_day_bounds(zone, first, days)
    return Period(first, days, start, end), errors


def _metrics_of(session: Session, patient: Patient) -> list[str]:
    """What the patient's devices measure (from their models: no scan of the readings)."""
    found = {
        m for _a, unit in registry.units_of_patient(session, patient) for m in unit.model.metrics
    }
    return [code for code in METRICS if code in found]


@bp.get("/devices/patients/<int:patient_id>/readings")
@roles_required(*READERS)
def readings(patient_id: int) -> tuple[str, int]:
    session = db.session()
    patient = policy.get_visible(session, current_user, Patient, patient_id)
    zone = ZoneInfo(patient.timezone)
    now = utcnow()
    period, errors = _period(zone, now.astimezone(zone).date())
    available = _metrics_of(session, patient)
    metric = request.args.get("metric") or (available[0] if available else "heart_rate")
    if metric not in METRICS:
        errors.append(f"Unknown measurement {metric!r}; choose one from the list.")
        metric = available[0] if available else "heart_rate"
    definition = METRICS[metric]
    chart, totals = _chart(session, patient, metric, period, zone)
    rows = exports.readings_for(
        session,
        patient,
        metric=metric,
        start=period.start,
        end=period.end,
        limit=TABLE_ROWS,
        newest_first=True,
    )
    return render_template(
        "devices/readings.html",
        patient=patient,
        metric=definition,
        metrics=[METRICS[m] for m in available] or [definition],
        period=period,
        ranges=RANGES,
        chart=chart,
        totals=totals,
        rows=rows,
        table_rows=TABLE_ROWS,
        errors=errors,
        zone=patient.timezone,
    ), (422 if errors else 200)


def _chart(
    session: Session, patient: Patient, metric: str, period: Period, zone: ZoneInfo
) -> tuple[str, list[tuple[date, float]]]:
    definition = METRICS[metric]
    if definition.interval:
        by_day = series.daily_totals(session, patient.id, metric, period.start, period.end, zone)
        days = [period.first + timedelta(days=i) for i in range(period.days)]
        totals = [(d, by_day.get(d, 0.0)) for d in days]
        labels = [d.strftime("%d %b") for d in days]
        return charts.bars(labels, [v for _, v in totals], definition.unit.symbol, None), totals
    found, _bucket = series.points(session, patient.id, metric, period.start, period.end)
    return charts.line(found, zone, definition.unit.symbol), []


@bp.get("/devices/patients/<int:patient_id>/readings.csv")
@roles_required(*READERS)
def readings_csv(patient_id: int) -> Response:
    session = db.session()
    patient = policy.get_visible(session, current_user, Patient, patient_id)
    zone = ZoneInfo(patient.timezone)
    period, _errors = _period(zone, utcnow().astimezone(zone).date())
    metric = request.args.get("metric") or None
    if metric is not None and metric not in METRICS:
        metric = None
    lines = exports.readings_csv(
        session, patient, metric=metric, start=period.start, end=period.end
    )
    name = f"{patient.subject_number}-readings-{period.first.isoformat()}.csv"
    return Response(
        "".join(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- sections of the core pages ---------------------------------------------------------


def _site_home_panel(
    session: Session, viewer: User, now: datetime, _subject: Any
) -> dict[str, Any] | None:
    found = health.open_alerts(session, viewer, limit=6)
    if not found:
        return None
    return {"rows": _rows(found[:5], viewer.timezone), "more": len(found) > 5}


def _patient_panel(
    session: Session, viewer: User, now: datetime, patient: Patient
) -> dict[str, Any] | None:
    units = registry.units_of_patient(session, patient)
    if not units:
        return None
    zone = ZoneInfo(patient.timezone)
    today = now.astimezone(zone).date()
    days = coverage.patient_coverage(session, patient, today, days=14)
    chart = charts.bars(
        [d.day.strftime("%d %b") for d in days], [d.hours for d in days], "hours", 24
    )
    found = health.open_alerts(session, viewer, patient_ids=[patient.id])
    return {
        "patient": patient,
        "units": units,
        "coverage": days,
        "chart": chart,
        "rows": _rows(found, viewer.timezone),
    }


def _trial_panel(
    session: Session, viewer: User, now: datetime, _subject: Any
) -> dict[str, Any] | None:
    sites = coverage.site_coverage(session, policy.visible(viewer, Site, session=session), now)
    if not any(s.patients_with_devices or s.patients_with_data for s in sites):
        return None
    chart = charts.bars(
        [s.site.site_number for s in sites], [s.mean_hours_per_day for s in sites], "hours", 24
    )
    return {"sites": sites, "chart": chart}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    add_nav_item(app, list(SITE_ROLES), "Device alerts", "devices.alerts", order=40)
    add_nav_item(app, [Role.TRIAL_MANAGER], "Device alerts", "devices.alerts", order=40)
    add_panel(app, "site.home", "devices/_home_panel.html", _site_home_panel, order=10)
    add_panel(app, "site.patient", "devices/_patient_panel.html", _patient_panel, order=10)
    add_panel(app, "trial.home", "devices/_trial_panel.html", _trial_panel, order=10)
