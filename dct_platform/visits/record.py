"""The visit record: staff start a televisit, complete it with notes, or mark a no-show;
a visit with the patient's local healthcare provider is recorded from the provider's
report.

What the record carries, as regulators ask: the site and the investigator responsible at
the time of the visit (from the ownership history, not today's), who ran it, the modality
and where the patient was (their home, or elsewhere). Completing a visit whose date on the
patient's calendar is outside its window records a protocol deviation (planning.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from dct_platform import audit
from dct_platform.errors import Conflict, Forbidden, ValidationFailed
from dct_platform.models import User
from dct_platform.models.users import SITE_ROLES
from dct_platform.services import activities
from dct_platform.services.ownership import responsibility_at
from dct_platform.visits import planning
from dct_platform.visits.booking import record_televisit
from dct_platform.visits.models import (
    Booking,
    BookingStatus,
    Modality,
    PlannedStatus,
    PlannedVisit,
)

LOCATION_TYPES = {"patient_home": "Patient's home", "other": "Other location"}
MAX_NOTES = 10_000
# A visit cannot be started long before its time: a mistaken click on tomorrow's visit.
EARLIEST_START = timedelta(hours=1)

LOCAL_PROVIDER = activities.register_type(
    "local-provider-visit", "Visit with the local provider", "dct_platform"
)


def _staff_of_the_site(actor: User, booking: Booking) -> None:
    if actor.role not in SITE_ROLES or booking.site_id not in actor.site_ids:
        raise Forbidden("Only the staff of the patient's site can record this visit.")


def start(session: Session, actor: User, booking: Booking, now: datetime) -> Booking:
    _staff_of_the_site(actor, booking)
    if booking.status != BookingStatus.BOOKED:
        raise Conflict(f"This visit is {booking.status.value.replace('_', ' ')}.")
    if now < booking.starts_at - EARLIEST_START:
        raise Conflict("This visit starts later; start it when it is due.")
    what = f"Started {booking.planned_visit.name} of {booking.patient.subject_number}"
    with audit.acting(session, actor, now, what=what):
        booking.status = BookingStatus.STARTED
        booking.started_at = now
        booking.run_by_id = actor.id
        booking.investigator_id = responsibility_at(
            session, booking.patient_id, now
        ).investigator_id
        booking.updated_at = now
    record_televisit(session, booking, now)
    return booking


def complete(
    session: Session,
    actor: User,
    booking: Booking,
    now: datetime,
    *,
    notes: str,
    location_type: str = "patient_home",
) -> Booking:
    """Complete a started (or, recorded afterwards, a booked) visit with its notes."""
    _staff_of_the_site(actor, booking)
    if booking.status not in (BookingStatus.BOOKED, BookingStatus.STARTED):
        raise Conflict(f"This visit is {booking.status.value.replace('_', ' ')}.")
    text = (notes or "").strip()
    if not text:
        raise ValidationFailed.on_field("notes", "Write the visit notes.")
    if len(text) > MAX_NOTES:
        raise ValidationFailed.on_field(
            "notes", f"Visit notes are limited to {MAX_NOTES} characters."
        )
    if location_type not in LOCATION_TYPES:
        raise ValidationFailed.on_field(
            "location_type", f"Choose one of: {', '.join(LOCATION_TYPES)}."
        )
    started = booking.started_at or booking.starts_at
    if now < started:
        raise Conflict("A visit cannot be completed before it started.")
    what = f"Completed {booking.planned_visit.name} of {booking.patient.subject_number}"
    with audit.acting(session, actor, now, what=what):
        booking.status = BookingStatus.COMPLETED
        booking.started_at = started
        booking.ended_at = now
        booking.notes = text
        booking.location_type = location_type
        booking.run_by_id = booking.run_by_id or actor.id
        booking.investigator_id = responsibility_at(
            session, booking.patient_id, started
        ).investigator_id
        booking.updated_at = now
        planning.record_done(session, booking.planned_visit, started, Modality.TELEHEALTH, now)
    record_televisit(session, booking, now)
    return booking


def no_show(
    session: Session, actor: User, booking: Booking, now: datetime, *, notes: str = ""
) -> Booking:
    """The patient did not join: the time stays taken, the planned visit can be booked
    again while its window lasts."""
    _staff_of_the_site(actor, booking)
    if booking.status not in (BookingStatus.BOOKED, BookingStatus.STARTED):
        raise Conflict(f"This visit is {booking.status.value.replace('_', ' ')}.")
    if now < booking.starts_at:
        raise Conflict("A patient can only miss a visit once it has started.")
    what = f"No-show at {booking.planned_visit.name} of {booking.patient.subject_number}"
    with audit.acting(session, actor, now, what=what):
        booking.status = BookingStatus.NO_SHOW
        booking.notes = (notes or "").strip()[:MAX_NOTES] or None
        booking.run_by_id = booking.run_by_id or actor.id
        booking.updated_at = now
        booking.planned_visit.status = PlannedStatus.PLANNED
        booking.planned_visit.updated_at = now
    record_televisit(session, booking, now)
    return booking


def record_local_provider_visit(
    session: Session,
    actor: User,
    visit: PlannedVisit,
    now: datetime,
    *,
    done_at: datetime,
    provider_name: str,
    provider_address: str,
    results: str,
) -> PlannedVisit:
    """A visit done by the patient's local healthcare provider, entered by site staff from
    the provider's report."""
    if actor.role not in SITE_ROLES or visit.site_id not in actor.site_ids:
        raise Forbidden("Only the staff of the patient's site can record this visit.")
    if Modality.LOCAL_PROVIDER not in visit.modalities:
        raise ValidationFailed.on_field(
            "modality", f"{visit.name} cannot be done by a local provider."
        )
    if visit.status in (PlannedStatus.COMPLETED, PlannedStatus.CANCELLED):
        raise Conflict(f"{visit.name} is {visit.status.value} already.")
    if done_at.tzinfo is None:
        raise ValidationFailed.on_field("done_at", "Give the time of the visit with its offset.")
    if done_at > now:
        raise ValidationFailed.on_field("done_at", "The visit cannot be in the future.")
    fields = {
        "provider_name": (provider_name, 200),
        "provider_address": (provider_address, 500),
        "results": (results, MAX_NOTES),
    }
    for field, (value, limit) in fields.items():
        if not (value or "").strip() or len(value.strip()) > limit:
            raise ValidationFailed.on_field(
                field, f"Fill in {field.replace('_', ' ')} (up to {limit} characters)."
            )
    what = f"Recorded {visit.name} of {visit.patient.subject_number} by a local provider"
    with audit.acting(session, actor, now, what=what):
        visit.provider_name = provider_name.strip()
        visit.provider_address = provider_address.strip()
        visit.provider_results = results.strip()
        planning.record_done(session, visit, done_at, Modality.LOCAL_PROVIDER, now)
    activities.record_activity(
        session,
        now,
        activity_type=LOCAL_PROVIDER,
        patient=visit.patient,
        occurred_at=done_at,
        record_table=PlannedVisit.__tablename__,
        record_id=visit.id,
        status="completed",
        summary=f"{visit.name} with {visit.provider_name}"[:200],
        originator=activities.Originator.STAFF,
        originator_user_id=actor.id,
        modality=Modality.LOCAL_PROVIDER.value,
        location_type="other",
    )
    return visit
