"""The one write path for diary entries (the portal's form and the API both call `submit`),
and staff corrections.

ALCOA+: an entry is attributable (the patient's own account), contemporaneous (the
server's clock decides on time, late or refused, and the device's clock is kept as
reported), original (one entry per occurrence, a database key; a patient cannot change
it) and corrections are recorded with who, why, the old and the new value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dct_platform import audit, policy
from dct_platform.errors import Conflict, Forbidden, NotFound, ValidationFailed
from dct_platform.models import Patient, User
from dct_platform.services import activities
from devices.ediary import occurrences as occ
from devices.ediary.instruments import check_answers, score
from devices.ediary.models import ChangeRequest, Entry, Occurrence, Outcome
from devices.ediary.policy import CORRECT, SUBMIT
from devices.ediary.schedules import as_window, instrument_of

DIARY_ENTRY = activities.register_type("ediary-entry", "Diary entry", "devices")
MAX_CLIENT_ID = 64
MAX_REASON = 500


@dataclass(frozen=True)
class Submitted:
    entry: Entry
    # False when this was a resend of an entry stored before (same client id).
    created: bool


def _refuse_window(row: Occurrence, at: datetime) -> ValidationFailed:
    if at < row.opens_at:
        message = "This diary is not open yet."
    else:
        message = "The time for this diary is over: it can no longer be filled in."
    return ValidationFailed(message, {"fields": {"occurrence_id": [message]}})


def submit(
    session: Session,
    actor: User,
    patient: Patient,
    occurrence_id: int,
    answers: object,
    now: datetime,
    *,
    client_id: str,
    device_time: str | None = None,
    source: str = "portal",
) -> Submitted:
    """Store the patient's answers for one occurrence, once."""
    policy.authorize(actor, SUBMIT, patient, now=now)
    client_id = (client_id or "").strip()
    if not client_id or len(client_id) > MAX_CLIENT_ID:
        message = f"Send a client id of 1 to {MAX_CLIENT_ID} characters with the entry."
        raise ValidationFailed(message, {"fields": {"client_id": [message]}})
    earlier = session.scalar(
        select(Entry).where(Entry.patient_id == patient.id, Entry.client_id == client_id)
    )
    if earlier is not None:
        if earlier.occurrence_id != occurrence_id:
            raise Conflict("This client id was used for another entry; send a new one.")
        return Submitted(earlier, created=False)
    row = session.scalar(
        select(Occurrence)
        .where(Occurrence.id == occurrence_id, Occurrence.patient_id == patient.id)
        .with_for_update()
    )
    if row is None:
        raise NotFound(f"Diary {occurrence_id} was not found.")
    done = session.scalar(select(Entry).where(Entry.occurrence_id == row.id))
    if done is not None:
        raise Conflict("This diary was filled in already.")
    verdict = occ.submission_verdict(as_window(row), now)
    if verdict == "refused":
        raise _refuse_window(row, now)
    instrument = instrument_of(row.schedule.instrument_version)
    clean, errors = check_answers(instrument, answers)
    if errors:
        raise ValidationFailed("Some answers need attention.", {"fields": {"answers": errors}})
    entry = Entry(
        occurrence_id=row.id,
        patient_id=patient.id,
        instrument_version_id=row.schedule.instrument_version_id,
        answers=clean,
        score=score(instrument, clean),
        submitted_at=now,
        device_time=(device_time or "")[:40] or None,
        late=verdict == "late",
        source=source,
        client_id=client_id,
    )
    what = f"{patient.subject_number} filled in {instrument.title} for {row.local_date}"
    try:
        with session.begin_nested(), audit.acting(session, actor, now, what=what):
            session.add(entry)
            session.flush()
    except IntegrityError:
        # The same submission sent twice at once: the database kept the first.
        again = session.scalar(
            select(Entry).where(Entry.patient_id == patient.id, Entry.client_id == client_id)
        )
        if again is not None and again.occurrence_id == occurrence_id:
            return Submitted(again, created=False)
        raise Conflict("This diary was filled in already.") from None
    row.outcome = Outcome.LATE if entry.late else Outcome.ON_TIME
    activities.record_activity(
        session,
        now,
        activity_type=DIARY_ENTRY,
        patient=patient,
        occurred_at=now,
        record_table="ediary_entries",
        record_id=entry.id,
        status="late" if entry.late else "on time",
        summary=f"{instrument.title}, {row.local_date.isoformat()}",
        originator=activities.Originator.PATIENT,
        originator_user_id=actor.id,
        location_type="home",
        modality="ediary",
    )
    session.flush()
    return Submitted(entry, created=True)


def correct(
    session: Session,
    actor: User,
    entry: Entry,
    link_id: str,
    new_value: Any,
    reason: str,
    now: datetime,
) -> ChangeRequest:
    """Site staff correct one answer with a reason; the trail keeps old and new."""
    if actor.role == "patient":
        raise Forbidden("A submitted diary cannot be changed; ask your site to correct it.")
    policy.authorize(actor, CORRECT, entry, now=now)
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        message = f"Say why the answer is corrected (up to {MAX_REASON} characters)."
        raise ValidationFailed(message, {"fields": {"reason": [message]}})
    instrument = instrument_of(entry.occurrence.schedule.instrument_version)
    answers = dict(entry.answers)
    if link_id not in {item.link_id for item in instrument.items}:
        message = f"{link_id!r} is not a question of {instrument.title}."
        raise ValidationFailed(message, {"fields": {"link_id": [message]}})
    old = answers.get(link_id)
    if new_value is None or new_value == "":
        answers.pop(link_id, None)
    else:
        answers[link_id] = new_value
    clean, errors = check_answers(instrument, answers)
    if errors:
        raise ValidationFailed(
            "The corrected answers are not valid.", {"fields": {"answers": errors}}
        )
    if clean.get(link_id) == old:
        raise ValidationFailed("The new value is the same as the recorded one.")
    what = f"Corrected {link_id} of a diary of {entry.occurrence.patient.subject_number}"
    with audit.acting(session, actor, now, reason, what=what):
        request = ChangeRequest(
            entry_id=entry.id,
            link_id=link_id,
            old_value=old,
            new_value=clean.get(link_id),
            reason=reason,
            requested_by_id=actor.id,
            requested_at=now,
        )
        session.add(request)
        entry.answers = clean
        entry.score = score(instrument, clean)
        session.flush()
    return request
