"""Device health: the problems a patient cannot see for themselves, raised for their site.

Patients never see an error they could act on, so a periodic job looks at what each unit
held by a patient has (or has not) sent, and keeps one open alert per unit and kind:

- silent: no new data for `silent_after` (counted from the issue of the unit if it never
  sent any);
- low battery: the unit's latest battery report is at or below `low_battery_percent`;
- poor signal: the latest signal report is "poor" or "none";
- clock drift: the latest batch's device clock differs from the server's by more than
  `clock_drift`.

An alert is cleared by the same job once its condition is gone (data again, battery
charged, clock set, unit returned). Raising and clearing are on the audit trail as the
job's actions; staff acknowledge an alert (with a note) as their own. A raised alert is an
after-commit event; its receiver mails the site staff through the outbox.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dct_platform import audit, events, outbox, policy
from dct_platform.errors import ValidationFailed
from dct_platform.mail import OutgoingMail
from dct_platform.models import Patient, SiteMembership, User
from dct_platform.models.users import SITE_ROLES
from devices.models import AlertKind, DeviceAlert, DeviceAssignment, DeviceBatch, DeviceUnit
from devices.policy import ACKNOWLEDGE_ALERT

JOB = "devices.health"
# Status reports older than this say nothing about the unit now.
STATUS_HORIZON = timedelta(days=7)
POOR_SIGNALS = frozenset({"poor", "none"})
MAX_NOTE = 1000

ALERT_RAISED = events.declare(
    "devices.alert-raised", "A device alert was raised for a patient's site staff"
)

LABELS = {
    AlertKind.SILENT: "No data",
    AlertKind.LOW_BATTERY: "Low battery",
    AlertKind.POOR_SIGNAL: "Poor signal",
    AlertKind.CLOCK_DRIFT: "Clock off",
}


@dataclass(frozen=True)
class HealthSettings:
    silent_after: timedelta = timedelta(hours=24)
    low_battery_percent: int = 15
    clock_drift: timedelta = timedelta(minutes=2)


@dataclass(frozen=True)
class Finding:
    kind: AlertKind
    detail: str
    since: datetime | None = None
    value: float | None = None


@dataclass
class HealthReport:
    raised: list[int] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return f"raised {len(self.raised)}, cleared {len(self.cleared)} device alerts"


@dataclass(frozen=True)
class _Held:
    unit_id: int
    serial: str
    patient_id: int
    site_id: int
    held_since: datetime


def _held_units(session: Session) -> list[_Held]:
    rows = session.execute(
        select(
            DeviceAssignment.unit_id,
            DeviceUnit.serial_number,
            Patient.id,
            Patient.site_id,
            DeviceAssignment.valid_from,
        )
        .join(DeviceUnit, DeviceUnit.id == DeviceAssignment.unit_id)
        .join(Patient, Patient.id == DeviceAssignment.patient_id)
        .where(DeviceAssignment.valid_to.is_(None), DeviceUnit.retired_at.is_(None))
    )
    return [_Held(*row) for row in rows]


def _latest(
    session: Session, column: Any, unit_ids: list[int], since: datetime
) -> dict[int, tuple[Any, datetime]]:
    """Each unit's latest non-empty `column` of a batch received after `since`."""
    ranked = (
        select(
            DeviceBatch.unit_id,
            column.label("value"),
            DeviceBatch.received_at,
            func.row_number()
            .over(partition_by=DeviceBatch.unit_id, order_by=DeviceBatch.received_at.desc())
            .label("rank"),
        )
        .where(
            DeviceBatch.unit_id.in_(unit_ids),
            DeviceBatch.received_at >= since,
            column.is_not(None),
        )
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.unit_id, ranked.c.value, ranked.c.received_at).where(ranked.c.rank == 1)
    )
    return {unit_id: (value, at) for unit_id, value, at in rows}


def _last_data(session: Session, unit_ids: list[int], horizon: datetime) -> dict[int, datetime]:
    """The latest time each unit's readings cover. Batches of the last days first (a
    bounded read on the (unit, received) index); the whole history only for units that
    sent nothing lately, which are few."""

    def newest(ids: list[int], since: datetime | None) -> dict[int, datetime]:
        query = select(DeviceBatch.unit_id, func.max(DeviceBatch.newest_reading_at)).where(
            DeviceBatch.unit_id.in_(ids), DeviceBatch.newest_reading_at.is_not(None)
        )
        if since is not None:
            query = query.where(DeviceBatch.received_at >= since)
        return {u: at for u, at in session.execute(query.group_by(DeviceBatch.unit_id)) if at}

    found = newest(unit_ids, horizon)
    quiet = [u for u in unit_ids if u not in found]
    if quiet:
        found.update(newest(quiet, None))
    return found


def findings(
    session: Session, now: datetime, settings: HealthSettings
) -> tuple[list[_Held], dict[int, list[Finding]]]:
    """What is wrong with each held unit now (units with nothing wrong are left out)."""
    held = _held_units(session)
    ids = [h.unit_id for h in held]
    if not ids:
        return held, {}
    horizon = now - STATUS_HORIZON
    last_data = _last_data(session, ids, horizon)
    battery = _latest(session, DeviceBatch.battery_percent, ids, horizon)
    signal = _latest(session, DeviceBatch.signal, ids, horizon)
    clock = _latest(session, DeviceBatch.clock_offset_seconds, ids, horizon)
    found: dict[int, list[Finding]] = {}
    for unit in held:
        problems = found.setdefault(unit.unit_id, [])
        last = last_data.get(unit.unit_id)
        # Data from an earlier holder says nothing about this patient wearing the unit.
        quiet_since = max(last, unit.held_since) if last else unit.held_since
        if now - quiet_since >= settings.silent_after:
            hours = int((now - quiet_since).total_seconds() // 3600)
            problems.append(
                Finding(
                    AlertKind.SILENT,
                    f"No data from device {unit.serial} for {hours} hours",
                    since=quiet_since,
                )
            )
        if unit.unit_id in battery:
            percent, at = battery[unit.unit_id]
            if percent <= settings.low_battery_percent and at >= unit.held_since:
                problems.append(
                    Finding(
                        AlertKind.LOW_BATTERY,
                        f"Device {unit.serial} reported {percent}% battery",
                        since=at,
                        value=float(percent),
                    )
                )
        if unit.unit_id in signal:
            quality, at = signal[unit.unit_id]
            if quality in POOR_SIGNALS and at >= unit.held_since:
                problems.append(
                    Finding(
                        AlertKind.POOR_SIGNAL,
                        f"Device {unit.serial} reported {quality} signal",
                        since=at,
                    )
                )
        if unit.unit_id in clock:
            offset, at = clock[unit.unit_id]
            if abs(offset) > settings.clock_drift.total_seconds() and at >= unit.held_since:
                way = "ahead" if offset > 0 else "behind"
                problems.append(
                    Finding(
                        AlertKind.CLOCK_DRIFT,
                        f"Device {unit.serial} clock is {abs(offset):.0f} s {way}",
                        since=at,
                        value=float(offset),
                    )
                )
        if not problems:
            del found[unit.unit_id]
    return held, found


def check(session: Session, now: datetime, settings: HealthSettings) -> HealthReport:
    """Raise an alert for each new problem and clear those that are gone (the job)."""
    held, found = findings(session, now, settings)
    holders = {h.unit_id: h for h in held}
    open_alerts = {
        (a.unit_id, a.kind): a
        for a in session.scalars(select(DeviceAlert).where(DeviceAlert.cleared_at.is_(None)))
    }
    report = HealthReport()
    with audit.acting(session, None, now, system=JOB, what="Device health check"):
        for (unit_id, kind), alert in open_alerts.items():
            holder = holders.get(unit_id)
            if holder is None or holder.patient_id != alert.patient_id:
                _clear(alert, now, "the device was returned", report)
            elif not any(f.kind == kind for f in found.get(unit_id, [])):
                _clear(alert, now, _CLEARED[kind], report)
        session.flush()
        for unit_id, problems in sorted(found.items()):
            holder = holders[unit_id]
            for finding in problems:
                known = open_alerts.get((unit_id, finding.kind))
                if known is not None and known.cleared_at is None:
                    # Keep the figure current (e.g. the battery going on down).
                    if finding.value is not None and known.value != finding.value:
                        known.value, known.detail = finding.value, finding.detail
                    continue
                alert = DeviceAlert(
                    unit_id=unit_id,
                    patient_id=holder.patient_id,
                    site_id=holder.site_id,
                    kind=finding.kind,
                    raised_at=now,
                    detail=finding.detail,
                    since=finding.since,
                    value=finding.value,
                )
                session.add(alert)
                session.flush()
                report.raised.append(alert.id)
                events.emit(
                    session,
                    ALERT_RAISED,
                    now,
                    {"alert_id": alert.id},
                    subject=f"patient:{holder.patient_id}",
                )
    return report


_CLEARED = {
    AlertKind.SILENT: "data arrived again",
    AlertKind.LOW_BATTERY: "the battery was charged",
    AlertKind.POOR_SIGNAL: "the signal is good again",
    AlertKind.CLOCK_DRIFT: "the device clock is right again",
}


def _clear(alert: DeviceAlert, now: datetime, because: str, report: HealthReport) -> None:
    alert.cleared_at, alert.cleared_because = now, because
    report.cleared.append(alert.id)


def acknowledge(
    session: Session, actor: User, alert: DeviceAlert, now: datetime, note: str | None
) -> DeviceAlert:
    """Staff say they have seen the alert and are on it (a call to the patient, say)."""
    policy.authorize(actor, ACKNOWLEDGE_ALERT, alert, now=now)
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        message = f"Keep the note under {MAX_NOTE} characters."
        raise ValidationFailed(message, {"fields": {"note": [message]}})
    # Locked, so that two colleagues acknowledging at once record one acknowledgement.
    session.refresh(alert, with_for_update=True)
    if alert.cleared_at is not None:
        raise ValidationFailed("This alert was cleared already; nothing to do.")
    if alert.acknowledged_at is not None:
        return alert  # a double click acknowledges once
    with audit.acting(session, actor, now, what=f"Acknowledged device alert {alert.id}"):
        alert.acknowledged_at, alert.acknowledged_by_id, alert.note = now, actor.id, note
        session.flush()
    return alert


def open_alerts(
    session: Session,
    actor: User,
    *,
    patient_ids: Iterable[int] | None = None,
    limit: int = 500,
) -> list[DeviceAlert]:
    """The open alerts `actor` may see, newest first."""
    query = select(DeviceAlert).where(
        DeviceAlert.cleared_at.is_(None), policy.visible(actor, DeviceAlert, session=session)
    )
    if patient_ids is not None:
        query = query.where(DeviceAlert.patient_id.in_(list(patient_ids)))
    return list(
        session.scalars(query.order_by(DeviceAlert.raised_at.desc(), DeviceAlert.id).limit(limit))
    )


@events.receiver(ALERT_RAISED, "devices.alert-mail")
def _mail_site_staff(session: Session, event: events.Event, now: datetime) -> None:
    alert = session.get(DeviceAlert, event.payload["alert_id"])
    if alert is None or alert.cleared_at is not None:
        return  # cleared before the mail went: nothing to chase
    patient = alert.patient
    to = [
        email
        for email in session.scalars(
            select(User.email)
            .join(SiteMembership, SiteMembership.user_id == User.id)
            .where(
                SiteMembership.site_id == patient.site_id,
                User.role.in_([str(r) for r in SITE_ROLES]),
                User.is_enabled,
                User.email.is_not(None),
            )
        )
        if email
    ]
    if not to:
        return
    text = (
        f"{LABELS[alert.kind]} for subject {patient.subject_number}: {alert.detail}.\n\n"
        "Open the platform's device alerts to see it and acknowledge it."
    )
    outbox.enqueue(
        session,
        now,
        OutgoingMail(
            to=sorted(to),
            subject=f"Device alert: {LABELS[alert.kind]}, subject {patient.subject_number}",
            text=text,
        ),
        dedup_key=f"device-alert:{alert.id}",
    )
