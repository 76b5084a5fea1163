"""The eDiary API: a patient's due diaries and their entries (the portal's form goes through
the same service), and staff corrections."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from dct_platform import policy
from dct_platform.api.schemas import UtcDateTime, doc
from dct_platform.auth import api_actor
from dct_platform.errors import Forbidden, NotFound
from dct_platform.extensions import db
from dct_platform.models import Patient, Trial
from dct_platform.roles import Role
from dct_platform.timeutil import utcnow
from devices.ediary import entries, fhir_api, schedules
from devices.ediary import occurrences as occ
from devices.ediary.models import Entry, Occurrence, Schedule, ScheduleKind
from devices.ediary.schedules import as_window, instrument_of

blp = Blueprint(
    "ediary_api", __name__, url_prefix="/api/v1/ediary", description="eDiary (ePRO) entries"
)

RECENT = timedelta(days=7)


class OccurrenceSchema(Schema):
    id = fields.Integer()
    instrument = fields.String(metadata=doc("The questionnaire's code"))
    title = fields.String()
    version = fields.Integer()
    local_date = fields.Date(metadata=doc("The day it is for, in the patient's zone"))
    zone = fields.String(metadata=doc("The IANA zone its window was computed in"))
    opens_at = UtcDateTime()
    closes_at = UtcDateTime()
    late_until = UtcDateTime(metadata=doc("Late entries are accepted, flagged, until then"))
    state = fields.String(metadata=doc("upcoming, open, late_window, missed or done", ["open"]))
    definition = fields.Dict(metadata=doc("The questionnaire (devices/ediary/instruments.py)"))


class EntryInSchema(Schema):
    occurrence_id = fields.Integer(required=True)
    answers = fields.Dict(required=True, metadata=doc("Answers by item link id"))
    device_time = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=40),
        metadata=doc("The device's own clock when the patient submitted, as it reads"),
    )
    client_id = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=entries.MAX_CLIENT_ID),
        metadata=doc("Your id for this submission; resending it stores nothing new "
                     "(or send the Idempotency-Key header)"),
    )  # fmt: skip


class EntryOutSchema(Schema):
    id = fields.Integer()
    occurrence_id = fields.Integer()
    answers = fields.Dict()
    score = fields.Float(allow_none=True)
    submitted_at = UtcDateTime()
    late = fields.Boolean()
    source = fields.String()


class CorrectionInSchema(Schema):
    link_id = fields.String(required=True, validate=validate.Length(min=1, max=40))
    value = fields.Raw(
        required=True, allow_none=True, metadata=doc("The corrected answer; null removes it")
    )
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class CorrectionOutSchema(Schema):
    id = fields.Integer()
    entry_id = fields.Integer()
    link_id = fields.String()
    old_value = fields.Raw(allow_none=True)
    new_value = fields.Raw(allow_none=True)
    reason = fields.String()
    requested_at = UtcDateTime()


def _own_patient() -> Patient:
    actor = api_actor()
    if actor is None or actor.role != Role.PATIENT:
        raise Forbidden("Only a patient fills in their diary.")
    patient = db.session.scalar(select(Patient).where(Patient.user_id == actor.id))
    if patient is None:
        raise NotFound("No study record is linked to this account.")
    return patient


def _shown(row: Occurrence, now: Any, done: bool) -> dict[str, Any]:
    version = row.schedule.instrument_version
    instrument = instrument_of(version)
    return {
        "id": row.id,
        "instrument": instrument.code,
        "title": instrument.title,
        "version": instrument.version,
        "local_date": row.local_date,
        "zone": row.zone,
        "opens_at": row.opens_at,
        "closes_at": row.closes_at,
        "late_until": row.late_until,
        "state": occ.state_at(as_window(row), now, done),
        "definition": version.definition,
    }


@blp.route("/occurrences")
class Occurrences(MethodView):
    @blp.response(200, OccurrenceSchema(many=True))
    @blp.alt_response(403, description="Not a patient's account")
    def get(self) -> list[dict[str, Any]]:
        """The signed-in patient's diaries: open now, coming in the next two days, and
        those of the last seven days (done or missed), by opening time."""
        patient, now = _own_patient(), utcnow()
        rows = list(
            db.session.scalars(
                select(Occurrence)
                .where(
                    Occurrence.patient_id == patient.id,
                    Occurrence.closes_at > now - RECENT,
                    Occurrence.opens_at < now + timedelta(days=2),
                )
                .order_by(Occurrence.opens_at)
            )
        )
        done = set(
            db.session.scalars(
                select(Entry.occurrence_id).where(Entry.occurrence_id.in_([r.id for r in rows]))
            )
        )
        return [_shown(row, now, row.id in done) for row in rows]


@blp.route("/entries")
class Entries(MethodView):
    @blp.arguments(EntryInSchema)
    @blp.response(201, EntryOutSchema)
    @blp.alt_response(200, schema=EntryOutSchema, description="A resend: the entry stored before")
    @blp.alt_response(403, description="Not the patient's own account")
    @blp.alt_response(404, description="No such diary of this patient")
    @blp.alt_response(409, description="This diary was filled in already")
    def post(self, body: dict[str, Any]) -> tuple[Entry, int]:
        """Submit a diary. The server's clock decides: in the window it is on time, after
        it (where the schedule allows) late, otherwise refused with a reason."""
        patient = _own_patient()
        actor = api_actor()
        assert actor is not None
        client_id = body["client_id"] or request.headers.get("Idempotency-Key", "").strip()
        done = entries.submit(
            db.session(),
            actor,
            patient,
            body["occurrence_id"],
            body["answers"],
            utcnow(),
            client_id=client_id,
            device_time=body["device_time"],
            source="api",
        )
        return done.entry, (201 if done.created else 200)


@blp.route("/entries/<int:entry_id>/corrections")
class Corrections(MethodView):
    @blp.arguments(CorrectionInSchema)
    @blp.response(201, CorrectionOutSchema)
    @blp.alt_response(403, description="Patients cannot change a submitted diary")
    @blp.alt_response(404, description="No such entry for the caller")
    def post(self, body: dict[str, Any], entry_id: int) -> Any:
        """Site staff correct one answer, with a reason (kept with old and new value)."""
        actor = api_actor()
        if actor is not None and actor.role == Role.PATIENT:
            raise Forbidden("A submitted diary cannot be changed; ask your site to correct it.")
        entry = policy.get_visible(db.session(), actor, Entry, entry_id)
        assert actor is not None
        return entries.correct(
            db.session(), actor, entry, body["link_id"], body["value"], body["reason"], utcnow()
        )


class ScheduleInSchema(Schema):
    trial_id = fields.Integer(required=True)
    instrument = fields.String(required=True, metadata=doc("The questionnaire's code"))
    version = fields.Integer(required=True, validate=validate.Range(min=1))
    kind = fields.Enum(ScheduleKind, by_value=True, required=True)
    window_start = fields.String(required=True, metadata=doc("Local time HH:MM", "18:00"))
    window_end = fields.String(
        required=True, metadata=doc("Local time HH:MM; at or before the start: next day", "24:00")
    )
    first_date = fields.Date(load_default=None, allow_none=True)
    last_date = fields.Date(load_default=None, allow_none=True)
    every_n = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(1, 365))
    study_days = fields.List(
        fields.Integer(validate=validate.Range(1, 10000)), load_default=None, allow_none=True
    )
    window_days = fields.Integer(load_default=0, validate=validate.Range(0, 30))
    late_allowed_minutes = fields.Integer(load_default=0, validate=validate.Range(0, 7 * 1440))
    remind_before_close_minutes = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(1, 7 * 1440)
    )
    patient_id = fields.Integer(
        load_default=None, allow_none=True, metadata=doc("For one patient only")
    )
    arm = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=40),
        metadata=doc("For the patients of one treatment arm only"),
    )  # fmt: skip


class ScheduleOutSchema(Schema):
    id = fields.Integer()
    trial_id = fields.Integer()
    instrument_version_id = fields.Integer()
    kind = fields.Enum(ScheduleKind, by_value=True)
    window_start = fields.String()
    window_end = fields.String()
    first_date = fields.Date(allow_none=True)
    last_date = fields.Date(allow_none=True)
    every_n = fields.Integer(allow_none=True)
    study_days = fields.List(fields.Integer(), allow_none=True)
    window_days = fields.Integer()
    late_allowed_minutes = fields.Integer()
    remind_before_close_minutes = fields.Integer(allow_none=True)
    patient_id = fields.Integer(allow_none=True)
    arm = fields.String(allow_none=True)
    active = fields.Boolean()


@blp.route("/schedules")
class Schedules(MethodView):
    @blp.arguments(ScheduleInSchema)
    @blp.response(201, ScheduleOutSchema)
    @blp.alt_response(403, description="Only the trial's managers schedule diaries")
    @blp.alt_response(404, description="No such trial, questionnaire version or patient")
    def post(self, body: dict[str, Any]) -> Schedule:
        """Schedule a published questionnaire for the trial's patients (or one arm, or one
        patient). Windows are local times in each patient's zone; the first occurrences
        are written at once."""
        actor = api_actor()
        policy.require_role(actor, Role.TRIAL_MANAGER)
        session, now = db.session(), utcnow()
        trial = policy.get_visible(session, actor, Trial, body.pop("trial_id"))
        version = fhir_api.version_by_code(body.pop("instrument"), body.pop("version"))
        patient_id = body.pop("patient_id")
        patient = None
        if patient_id is not None:
            patient = policy.get_visible(session, actor, Patient, patient_id)
        schedule = schedules.add_schedule(
            session, actor, now, trial=trial, version=version, patient=patient, **body
        )
        schedules.refresh(session, now)
        return schedule

    @blp.response(200, ScheduleOutSchema(many=True))
    def get(self) -> list[Schedule]:
        """The schedules of the trials the caller manages."""
        actor = api_actor()
        policy.require_role(actor, Role.TRIAL_MANAGER)
        trials = select(Trial.id).where(policy.visible(actor, Trial))
        return list(
            db.session.scalars(
                select(Schedule).where(Schedule.trial_id.in_(trials)).order_by(Schedule.id)
            )
        )
