"""The remote-activity record: one timeline of every remote activity, per patient and site.

Each capability registers its activity types (`register_type`) and records each activity
it creates (`record_activity`) in the same transaction as its own record. The site and
principal investigator are those responsible for the patient at the activity's time
(`ownership.responsibility_at`), so per-site views stay right after a transfer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from dct_platform.models import Patient, RemoteActivity
from dct_platform.services.ownership import responsibility_at


class Originator(enum.StrEnum):
    """Who produced the activity's data."""

    PATIENT = "patient"
    NURSE = "nurse"
    STAFF = "staff"
    DEVICE = "device"
    SYSTEM = "system"


@dataclass(frozen=True)
class ActivityType:
    name: str
    label: str
    package: str


_types: dict[str, ActivityType] = {}


def register_type(name: str, label: str, package: str) -> ActivityType:
    """Declare an activity type ("televisit", "home-visit", ...); a package owns its types."""
    existing = _types.get(name)
    if existing is not None and existing.package != package:
        raise ValueError(f"activity type {name!r} belongs to {existing.package}")
    _types[name] = ActivityType(name, label, package)
    return _types[name]


def activity_types() -> list[ActivityType]:
    return sorted(_types.values(), key=lambda t: t.label)


def type_label(name: str) -> str:
    found = _types.get(name)
    return found.label if found else name


ENROLMENT = register_type("enrolment", "Enrolment", "dct_platform")
SITE_TRANSFER = register_type("site-transfer", "Site transfer", "dct_platform")


def record_activity(
    session: Session,
    now: datetime,
    *,
    activity_type: ActivityType,
    patient: Patient,
    occurred_at: datetime,
    record_table: str,
    record_id: str | int,
    status: str,
    summary: str,
    originator: Originator,
    originator_user_id: int | None = None,
    originator_ref: str | None = None,
    modality: str | None = None,
    location_type: str | None = None,
    ends_at: datetime | None = None,
    related_site_id: int | None = None,
) -> RemoteActivity:
    """Record (or, for the same record, update) one activity of `patient`.

    Recording the same (type, record) again updates its status and times instead of
    adding a second row, so callers may repeat themselves (retries, at-least-once events).
    """
    if _types.get(activity_type.name) != activity_type:
        raise ValueError(f"register the activity type {activity_type.name!r} first")
    existing = session.scalar(
        select(RemoteActivity).where(
            RemoteActivity.activity_type == activity_type.name,
            RemoteActivity.record_table == record_table,
            RemoteActivity.record_id == str(record_id),
        )
    )
    responsible = responsibility_at(session, patient.id, occurred_at)
    activity = existing or RemoteActivity(
        activity_type=activity_type.name,
        package=activity_type.package,
        record_table=record_table,
        record_id=str(record_id),
        patient_id=patient.id,
        trial_id=patient.trial_id,
        recorded_at=now,
    )
    activity.site_id = responsible.site_id
    activity.investigator_id = responsible.investigator_id
    activity.related_site_id = related_site_id
    activity.originator_kind = str(originator)
    activity.originator_user_id = originator_user_id
    activity.originator_ref = originator_ref
    activity.modality = modality
    activity.location_type = location_type
    activity.status = status
    activity.occurred_at = occurred_at
    activity.ends_at = ends_at
    activity.summary = summary[:200]
    activity.updated_at = now
    if existing is None:
        session.add(activity)
    session.flush()
    return activity


@dataclass(frozen=True)
class ActivityFilter:
    patient_id: int | None = None
    site_id: int | None = None
    activity_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def activity_query(visible: ColumnElement[bool], filters: ActivityFilter) -> Select[Any]:
    """The activities a caller may see (`visible` from the policy), filtered, newest first:
    the one query behind the API list and the pages."""
    query = select(RemoteActivity).where(visible)
    if filters.patient_id is not None:
        query = query.where(RemoteActivity.patient_id == filters.patient_id)
    if filters.site_id is not None:
        query = query.where(
            or_(
                RemoteActivity.site_id == filters.site_id,
                RemoteActivity.related_site_id == filters.site_id,
            )
        )
    if filters.activity_type:
        query = query.where(RemoteActivity.activity_type == filters.activity_type)
    if filters.since is not None:
        query = query.where(RemoteActivity.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(RemoteActivity.occurred_at < filters.until)
    return query.order_by(RemoteActivity.occurred_at.desc(), RemoteActivity.id.desc())
