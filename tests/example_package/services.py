"""The package's domain rules, plain Python; its event and the receiver of that event."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from dct_platform import audit, events
from dct_platform.models import Patient, User
from dct_platform.services import activities
from tests.example_package.models import ExampleHomeVisit

HOME_VISIT = activities.register_type("example-home-visit", "Home visit (example)", __package__)
VISIT_BOOKED = events.declare("example.visit-booked", "A home visit was booked for a nurse")


def book_visit(
    session: Session, actor: User, now: datetime, patient: Patient, nurse: User, day: date
) -> ExampleHomeVisit:
    with audit.acting(session, actor, now, what="Book a home visit"):
        visit = ExampleHomeVisit(patient_id=patient.id, nurse_id=nurse.id, visit_date=day)
        session.add(visit)
    events.emit(session, VISIT_BOOKED, now, {"visit_id": visit.id}, subject=str(patient.id))
    return visit


@events.receiver(VISIT_BOOKED, "example.activity-timeline")
def _on_the_timeline(session: Session, event: events.Event, now: datetime) -> None:
    # After commit, in its own transaction; recording the same visit twice updates it.
    visit = session.get(ExampleHomeVisit, event.payload["visit_id"])
    patient = session.get(Patient, visit.patient_id)
    activities.record_activity(
        session,
        now,
        activity_type=HOME_VISIT,
        patient=patient,
        occurred_at=event.occurred_at,
        record_table=ExampleHomeVisit.__tablename__,
        record_id=visit.id,
        status="booked",
        summary=f"Home visit booked for {visit.visit_date.isoformat()}",
        originator=activities.Originator.STAFF,
        originator_user_id=visit.nurse_id,
        location_type="home",
    )
