"""What the nurse does with an assignment: accept or decline it, check in and out, tick the
procedures, record vitals, notes and samples, and hand the samples to the courier.

Every step is audited with the nurse as the actor. Checking out completes the planned
visit (a date outside its protocol window is recorded as a deviation the site sees) and
records who was the site's investigator at the time. A decline returns the visit to the
dispatcher; the planner never offers it to the same nurse again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dct_platform import audit, policy
from dct_platform.errors import Conflict, ValidationFailed
from dct_platform.models import User
from dct_platform.services import ownership
from dct_platform.visits import planning
from dct_platform.visits.models import Modality, PlannedStatus
from logistics.dispatch import home_visits, providers
from logistics.dispatch.models import (
    HomeVisit,
    HomeVisitDecline,
    HomeVisitProcedure,
    HomeVisitSample,
    HomeVisitStatus,
)
from logistics.dispatch.policy import WORK

MAX_TEXT = 500
MAX_NOTES = 4000
# Vital signs a nurse records, with the range a value must be in to be stored at all
# (typing errors), and the range outside which the site is told (abnormal).
VITALS: dict[str, tuple[str, tuple[float, float], tuple[float, float]]] = {
    "systolic_bp": ("mmHg", (50, 260), (90, 140)),
    "diastolic_bp": ("mmHg", (30, 160), (60, 90)),
    "heart_rate": ("bpm", (20, 250), (50, 100)),
    "temperature": ("°C", (30, 44), (36.0, 38.0)),
    "spo2": ("%", (50, 100), (94, 100)),
    "respiratory_rate": ("/min", (4, 60), (12, 20)),
    "weight": ("kg", (2, 400), (2, 400)),
}


def _state(visit: HomeVisit) -> str:
    return visit.status.value.replace("_", " ")


def _mine(session: Session, actor: User, visit: HomeVisit, now: datetime) -> None:
    home_visits.lock(session, visit)
    policy.authorize(actor, WORK, visit, now=now)


def _text(field: str, value: str | None, limit: int, required: bool = True) -> str | None:
    text = (value or "").strip()
    if required and not text:
        raise ValidationFailed.on_field(field, "Required.")
    if len(text) > limit:
        raise ValidationFailed.on_field(field, f"Up to {limit} characters.")
    return text or None


def _location(lat: float | None, lon: float | None) -> tuple[float | None, float | None]:
    if lat is None and lon is None:
        return None, None
    if lat is None or lon is None:
        raise ValidationFailed.on_field("latitude", "Give both latitude and longitude, or none.")
    return providers.point(lat, lon)


def accept(session: Session, actor: User, visit: HomeVisit, now: datetime) -> HomeVisit:
    _mine(session, actor, visit, now)
    if visit.status == HomeVisitStatus.ACCEPTED:
        return visit  # a double tap
    if visit.status != HomeVisitStatus.ASSIGNED:
        raise Conflict(f"This visit is {_state(visit)}; nothing to accept.")
    with audit.acting(session, actor, now, what="Accept home visit"):
        visit.status = HomeVisitStatus.ACCEPTED
        visit.accepted_at = now
        visit.updated_at = now
    home_visits.record(session, visit, now)
    return visit


def decline(
    session: Session, actor: User, visit: HomeVisit, reason: str | None, now: datetime
) -> HomeVisit:
    """Back to the dispatcher, with her reason; the planner will not offer it to her again."""
    _mine(session, actor, visit, now)
    why = _text("reason", reason, MAX_TEXT)
    assert why is not None
    if visit.status not in (HomeVisitStatus.ASSIGNED, HomeVisitStatus.ACCEPTED):
        raise Conflict(f"This visit is {_state(visit)}; it cannot be declined.")
    with audit.acting(session, actor, now, why, what="Decline home visit"):
        session.add(
            HomeVisitDecline(home_visit_id=visit.id, nurse_id=actor.id, reason=why, declined_at=now)
        )
        visit.status = HomeVisitStatus.OPEN
        visit.nurse_id = None
        visit.planned_start = visit.planned_end = None
        visit.route_position = visit.travel_minutes = None
        visit.accepted_at = None
        visit.attention = f"declined by {actor.display_name}: {why}"[:300]
        visit.updated_at = now
        visit.planned_visit.status = PlannedStatus.PLANNED
        visit.planned_visit.updated_at = now
    home_visits.record(session, visit, now)
    home_visits.emit(session, visit, now, "declined", previous_nurse_id=actor.id)
    return visit


def check_in(
    session: Session,
    actor: User,
    visit: HomeVisit,
    now: datetime,
    latitude: float | None = None,
    longitude: float | None = None,
) -> HomeVisit:
    _mine(session, actor, visit, now)
    lat, lon = _location(latitude, longitude)
    if visit.status == HomeVisitStatus.IN_PROGRESS:
        return visit
    if visit.status not in (HomeVisitStatus.ACCEPTED, HomeVisitStatus.ASSIGNED):
        raise Conflict(f"This visit is {_state(visit)}; you cannot check in.")
    responsible = ownership.responsibility_at(session, visit.patient_id, now)
    with audit.acting(session, actor, now, what="Check in at home visit"):
        visit.status = HomeVisitStatus.IN_PROGRESS
        visit.accepted_at = visit.accepted_at or now
        visit.checked_in_at = now
        visit.checked_in_lat, visit.checked_in_lon = lat, lon
        visit.investigator_id = responsible.investigator_id
        visit.site_id = responsible.site_id
        visit.updated_at = now
    home_visits.record(session, visit, now)
    return visit


def _in_progress(visit: HomeVisit) -> None:
    if visit.status != HomeVisitStatus.IN_PROGRESS:
        raise Conflict(
            "Check in first: procedures, vitals and samples are recorded during the visit."
        )


def tick(
    session: Session,
    actor: User,
    visit: HomeVisit,
    code: str,
    now: datetime,
    note: str | None = None,
) -> HomeVisitProcedure:
    _mine(session, actor, visit, now)
    _in_progress(visit)
    known = {p["code"] for p in visit.procedures}
    if code not in known:
        raise ValidationFailed.on_field("code", f"Not on this visit's checklist: {code}.")
    existing = session.scalar(
        select(HomeVisitProcedure).where(
            HomeVisitProcedure.home_visit_id == visit.id, HomeVisitProcedure.code == code
        )
    )
    if existing is not None:
        return existing
    done = HomeVisitProcedure(
        home_visit_id=visit.id,
        code=code,
        done_at=now,
        done_by_id=actor.id,
        note=_text("note", note, MAX_TEXT, required=False),
    )
    with audit.acting(session, actor, now, what=f"Procedure done: {code}"):
        session.add(done)
    return done


def record_findings(
    session: Session,
    actor: User,
    visit: HomeVisit,
    now: datetime,
    *,
    vitals: Mapping[str, Any] | None = None,
    notes: str | None = None,
    abnormal: bool | None = None,
) -> HomeVisit:
    """Vitals (checked against plausible ranges), notes, and whether the nurse flags the
    findings abnormal; a vital outside its normal range flags them too."""
    _mine(session, actor, visit, now)
    _in_progress(visit)
    values = dict(visit.vitals or {})
    for name, raw in (vitals or {}).items():
        if name not in VITALS:
            raise ValidationFailed.on_field(f"vitals.{name}", f"Unknown vital sign: {name}.")
        if raw is None or raw == "":
            values.pop(name, None)
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValidationFailed.on_field(f"vitals.{name}", "A number.") from None
        unit, (low, high), _normal = VITALS[name]
        if not (math.isfinite(value) and low <= value <= high):
            raise ValidationFailed.on_field(
                f"vitals.{name}", f"Between {low:g} and {high:g} {unit}."
            )
        values[name] = value
    out_of_range = [n for n, v in values.items() if not (VITALS[n][2][0] <= v <= VITALS[n][2][1])]
    with audit.acting(session, actor, now, what="Record visit findings"):
        visit.vitals = values
        if notes is not None:
            visit.notes = _text("notes", notes, MAX_NOTES, required=False)
        visit.findings_abnormal = bool(abnormal) or bool(out_of_range)
        visit.updated_at = now
    return visit


def collect_sample(
    session: Session, actor: User, visit: HomeVisit, barcode: str, kind: str, now: datetime
) -> HomeVisitSample:
    _mine(session, actor, visit, now)
    _in_progress(visit)
    code = _text("barcode", barcode, 60)
    what = _text("kind", kind, 60)
    assert code is not None and what is not None
    sample = HomeVisitSample(
        home_visit_id=visit.id,
        barcode=code,
        kind=what,
        collected_at=now,
        collected_by_id=actor.id,
        created_at=now,
        updated_at=now,
    )
    try:
        what_done = f"Collect sample {code}"
        with session.begin_nested(), audit.acting(session, actor, now, what=what_done):
            session.add(sample)
    except IntegrityError:
        raise Conflict(f"Sample {code} is recorded already; scan the tube's own label.") from None
    return sample


def hand_over(
    session: Session,
    actor: User,
    visit: HomeVisit,
    now: datetime,
    courier: str,
    reference: str | None = None,
) -> list[HomeVisitSample]:
    """The chain of custody: every sample of the visit not handed over yet goes to the
    courier now."""
    _mine(session, actor, visit, now)
    name = _text("courier", courier, 100)
    ref = _text("courier_reference", reference, 100, required=False)
    pending = [s for s in visit.samples if s.handed_over_at is None]
    if not pending:
        raise Conflict("No sample is waiting for the courier.")
    with audit.acting(session, actor, now, what=f"Hand samples to {name}"):
        for sample in pending:
            sample.handed_over_at = now
            sample.courier = name
            sample.courier_reference = ref
            sample.updated_at = now
    return pending


def check_out(
    session: Session,
    actor: User,
    visit: HomeVisit,
    now: datetime,
    latitude: float | None = None,
    longitude: float | None = None,
) -> HomeVisit:
    """The visit is done: its planned visit completes (out of window: a deviation)."""
    _mine(session, actor, visit, now)
    lat, lon = _location(latitude, longitude)
    if visit.status == HomeVisitStatus.COMPLETED:
        return visit
    _in_progress(visit)
    with audit.acting(session, actor, now, what="Check out of home visit"):
        visit.status = HomeVisitStatus.COMPLETED
        visit.checked_out_at = now
        visit.checked_out_lat, visit.checked_out_lon = lat, lon
        visit.updated_at = now
        parts = home_visits.parts_of(session, visit)
        # A two-nurse visit is done when both parts are; it happened when the first began.
        if all(p.status == HomeVisitStatus.COMPLETED for p in parts):
            began = min(p.checked_in_at for p in parts if p.checked_in_at is not None)
            planning.record_done(session, visit.planned_visit, began, Modality.HOME_NURSE, now)
    home_visits.record(session, visit, now)
    home_visits.emit(session, visit, now, "completed")
    return visit
