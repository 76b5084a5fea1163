"""Mails about home visits, after the change commits (a receiver of `CHANGED`).

The nurse hears when a visit is assigned to her, moved to another time, taken from her
or cancelled; the site's staff hear when a visit is declined, missed, or completed with
findings flagged abnormal. Each mail has an outbox dedup key made of the event id, so a
repeated delivery sends it once. Mails name the subject number, the visit and the time in
the reader's zone; never the patient's name or address (the nurse reads those in the
platform, when the rules allow).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dct_platform import events, outbox
from dct_platform.mail import OutgoingMail
from dct_platform.models import SiteMembership, User
from dct_platform.models.users import SITE_ROLES
from dct_platform.timeutil import format_local
from logistics.dispatch.home_visits import CHANGED
from logistics.dispatch.models import HomeVisit

RECEIVER = "logistics.home-visit-mail"
NURSE_MESSAGES = {
    "assigned": "New home visit for you",
    "moved": "New home visit for you",
    "rescheduled": "Home visit moved to another time",
    "cancelled": "Home visit cancelled",
    "unassigned": "Home visit taken off your plan",
}
SITE_MESSAGES = {
    "declined": "Home visit declined by the nurse",
    "missed": "Home visit missed",
    "completed": "Home visit done: findings flagged abnormal",
}


def _when(home: HomeVisit, zone: str) -> str:
    if home.planned_start is None:
        return f"between {home.window_first.isoformat()} and {home.window_last.isoformat()}"
    return format_local(home.planned_start, zone)


def _site_staff(session: Session, site_id: int) -> list[str]:
    return sorted(
        email
        for email in session.scalars(
            select(User.email)
            .join(SiteMembership, SiteMembership.user_id == User.id)
            .where(
                SiteMembership.site_id == site_id,
                User.role.in_([str(r) for r in SITE_ROLES]),
                User.is_enabled,
                User.email.is_not(None),
            )
        )
        if email
    )


def _nurse_mail(home: HomeVisit, nurse: User, change: str, taken: bool) -> OutgoingMail | None:
    if not nurse.email:
        return None
    subject_line = NURSE_MESSAGES["unassigned" if taken and change != "cancelled" else change]
    visit = f"{home.planned_visit.name} for subject {home.patient.subject_number}"
    if taken:
        body = f"{visit} ({_when(home, nurse.timezone)}) is no longer on your plan."
    else:
        body = (
            f"{visit}, {_when(home, nurse.timezone)} ({home.duration_minutes} minutes).\n\n"
            "Open your visits in the platform to see the address and accept or decline it."
        )
    return OutgoingMail(to=[nurse.email], subject=subject_line, text=body)


@events.receiver(CHANGED, RECEIVER)
def send(session: Session, event: events.Event, now: datetime) -> None:
    home = session.get(HomeVisit, event.payload["home_visit_id"])
    if home is None:
        return
    change = str(event.payload["change"])
    mails: list[tuple[OutgoingMail, str]] = []
    holder, previous = event.payload.get("nurse_id"), event.payload.get("previous_nurse_id")
    if change in NURSE_MESSAGES and change not in ("cancelled", "unassigned") and holder:
        nurse = session.get(User, holder)
        if nurse is not None and (mail := _nurse_mail(home, nurse, change, taken=False)):
            mails.append((mail, f"home-visit:{event.id}:nurse:{nurse.id}"))
    if previous and previous != holder and change != "declined":
        nurse = session.get(User, previous)
        if nurse is not None and (mail := _nurse_mail(home, nurse, change, taken=True)):
            mails.append((mail, f"home-visit:{event.id}:previous:{nurse.id}"))
    if change in SITE_MESSAGES and (change != "completed" or home.findings_abnormal):
        to = _site_staff(session, home.site_id)
        if to:
            detail = {
                "declined": home.attention or "declined",
                "missed": "its window closed without a visit",
                "completed": "the nurse's findings are flagged abnormal; review them",
            }[change]
            mails.append(
                (
                    OutgoingMail(
                        to=to,
                        subject=f"{SITE_MESSAGES[change]}: subject {home.patient.subject_number}",
                        text=f"{home.planned_visit.name} of subject "
                        f"{home.patient.subject_number}: {detail}.",
                    ),
                    f"home-visit:{event.id}:site",
                )
            )
    for mail, key in mails:
        outbox.enqueue(session, now, mail, dedup_key=key)
