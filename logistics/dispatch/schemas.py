"""Marshmallow schemas of the home-visit API (`dispatch/api.py`): every input and output,
with the descriptions and examples the OpenAPI document shows.

Instants are UTC with their offset; window dates and the hours of the day are the
patient's local ones, and `local` renders the planned time on the patient's clock. No
output carries a patient's name: a visit names its patient by subject number, and the
address appears only where the rules let the caller see it."""

from __future__ import annotations

from datetime import date

from marshmallow import Schema, fields, validate

from dct_platform.api.schemas import REASON_DOC, Id, UtcDateTime, doc
from dct_platform.visits.schemas import LocalTimeLabelSchema
from logistics.dispatch import nurse_work, runs
from logistics.dispatch.home_visits import MAX_REASON
from logistics.dispatch.models import HomeVisitStatus, PlanRunStatus

VITAL_SIGNS = ", ".join(f"{name} ({unit})" for name, (unit, _, _) in nurse_work.VITALS.items())
REASON = validate.Length(min=1, max=MAX_REASON)
LATITUDE = validate.Range(-90, 90, error="A latitude from -90 to 90.")
LONGITUDE = validate.Range(-180, 180, error="A longitude from -180 to 180.")


# --- queries -------------------------------------------------------------------------------


class HomeVisitQuerySchema(Schema):
    first_day = fields.Date(
        metadata=doc("Only visits whose window ends on or after this day", "2026-03-10")
    )
    last_day = fields.Date(
        metadata=doc("Only visits whose window starts on or before this day", "2026-03-16")
    )
    status = fields.List(
        fields.Enum(HomeVisitStatus, by_value=True),
        validate=validate.Length(max=len(HomeVisitStatus)),
        metadata=doc("Only visits in these statuses (repeat the parameter)", ["open"]),
    )
    site_id = Id(from_text=True, metadata=doc("Only this site's visits"))


class NurseDayQuerySchema(Schema):
    day = fields.Date(
        # Her day ends at the next midnight, which the calendar's last day does not have.
        validate=validate.Range(
            min=date(2000, 1, 1), max=date(2999, 12, 31), error="A day from 2000 to 2999."
        ),
        metadata=doc(
            "The day, on the nurse's calendar; today in her zone by default", "2026-03-10"
        ),
    )


# --- outputs -------------------------------------------------------------------------------


class HomeVisitSummarySchema(Schema):
    """A home visit as lists show it: never the address or the patient's name."""

    id = fields.Integer()
    status = fields.Enum(HomeVisitStatus, by_value=True)
    planned_visit_id = fields.Integer(metadata=doc("The protocol visit it carries out"))
    part = fields.Integer(
        metadata=doc("1; 2 for the second nurse's part of a visit that needs two", 1)
    )
    partner_id = fields.Integer(
        allow_none=True, metadata=doc("The first part, for the second part of a two-nurse visit")
    )
    link_kind = fields.String(
        allow_none=True,
        metadata=doc("How the second part is tied to the first: simultaneous, sequential"),
    )
    min_gap_minutes = fields.Integer(
        allow_none=True, metadata=doc("A sequential part starts at least this long after the first")
    )
    max_gap_minutes = fields.Integer(
        allow_none=True, metadata=doc("... and at most this long after it")
    )
    patient_id = fields.Integer()
    subject_number = fields.String(metadata=doc("The patient's subject number", "B1-001"))
    site_id = fields.Integer(metadata=doc("The site responsible for the visit"))
    visit_name = fields.String(metadata=doc("The protocol visit's name", "Week 4 visit"))
    zone = fields.String(
        metadata=doc("The patient's zone: the dates, hours and `local` are in it", "Europe/Berlin")
    )
    window_first = fields.Date(metadata=doc("First day it may be done (patient's calendar)"))
    window_last = fields.Date(metadata=doc("Last day it may be done (patient's calendar)"))
    day_start = fields.String(
        metadata=doc("Earliest local time of day it may start (patient's zone)", "08:00")
    )
    day_end = fields.String(metadata=doc("Local time of day it must end by", "18:00"))
    duration_minutes = fields.Integer(metadata=doc("How long it takes", 30))
    planned_start = UtcDateTime(allow_none=True, metadata=doc("Planned start; null: not planned"))
    planned_end = UtcDateTime(allow_none=True)
    local = fields.Nested(
        LocalTimeLabelSchema,
        allow_none=True,
        metadata=doc("The planned time on the patient's clock; null: not planned"),
    )
    route_position = fields.Integer(
        allow_none=True, metadata=doc("Its place in the nurse's route that day, from 1", 2)
    )
    travel_minutes = fields.Integer(
        allow_none=True, metadata=doc("Travel from the previous stop, in minutes", 12)
    )
    skills = fields.List(fields.String(), metadata=doc("Skills it needs", ["phlebotomy"]))
    nurse_id = fields.Integer(allow_none=True, metadata=doc("The nurse who holds it"))
    nurse_name = fields.String(allow_none=True, metadata=doc("Her name", "Ada Lovelace"))
    pinned_nurse_id = fields.Integer(
        allow_none=True, metadata=doc("The nurse a dispatcher pinned it to; null: any")
    )
    pinned_nurse_name = fields.String(allow_none=True, metadata=doc("Her name", "Bea Berg"))
    attention = fields.String(
        allow_none=True,
        metadata=doc(
            "Why the planner could not place it, or who declined it and why; null for "
            "trial managers",
            "no qualified nurse: every nurse lacks phlebotomy",
        ),
    )
    accepted_at = UtcDateTime(allow_none=True)
    checked_in_at = UtcDateTime(allow_none=True)
    checked_out_at = UtcDateTime(allow_none=True)


class HomeVisitProcedureSchema(Schema):
    code = fields.String(metadata=doc("The checklist item's code", "blood_draw"))
    label = fields.String(metadata=doc("What it is", "Blood draw (2 tubes)"))
    done = fields.Boolean(metadata=doc("Ticked by the nurse"))
    done_at = UtcDateTime(allow_none=True)
    note = fields.String(allow_none=True, metadata=doc("The nurse's note", "Left arm"))


class HomeVisitSampleSchema(Schema):
    id = fields.Integer()
    barcode = fields.String(metadata=doc("The tube's label", "TUBE-0001"))
    kind = fields.String(metadata=doc("What it is", "serum"))
    collected_at = UtcDateTime()
    handed_over_at = UtcDateTime(allow_none=True, metadata=doc("Given to the courier"))
    courier = fields.String(allow_none=True, metadata=doc("Who took it", "MedCourier"))
    courier_reference = fields.String(
        allow_none=True, metadata=doc("The courier's reference", "MC-77")
    )


class HomeVisitAddressSchema(Schema):
    line1 = fields.String(allow_none=True, metadata=doc("Street and number", "Hauptstr. 1"))
    line2 = fields.String(allow_none=True, metadata=doc("More of the address", "3rd floor"))
    postal_code = fields.String(allow_none=True, metadata=doc("Postal code", "10115"))
    city = fields.String(allow_none=True, metadata=doc("City", "Berlin"))
    country = fields.String(allow_none=True, metadata=doc("ISO 3166 code", "DE"))
    latitude = fields.Float(allow_none=True, metadata=doc("The home point", 52.52))
    longitude = fields.Float(allow_none=True, metadata=doc("The home point", 13.405))
    access_notes = fields.String(
        allow_none=True, metadata=doc("How to get in", "Ring twice; lift to the 3rd floor")
    )
    one_line = fields.String(metadata=doc("For people", "Hauptstr. 1, 10115 Berlin"))
    directions_url = fields.String(
        allow_none=True,
        metadata=doc("A maps link a phone opens in its navigation app; null without a point"),
    )


class HomeVisitSchema(HomeVisitSummarySchema):
    """One home visit with what the nurse records there."""

    procedures = fields.List(
        fields.Nested(HomeVisitProcedureSchema), metadata=doc("The checklist, in its order")
    )
    vitals = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        metadata=doc("Vital signs recorded, by name: " + VITAL_SIGNS, {"heart_rate": 72.0}),
    )
    findings_abnormal = fields.Boolean(
        metadata=doc("The nurse flagged the findings, or a vital sign is outside its normal range")
    )
    notes = fields.String(
        allow_none=True,
        metadata=doc(
            "The nurse's notes: the assigned nurse and the site's staff only (null for others)"
        ),
    )
    samples = fields.List(fields.Nested(HomeVisitSampleSchema))
    cancel_reason = fields.String(
        allow_none=True, metadata=doc("Why it was cancelled; null for trial managers")
    )
    address = fields.Nested(
        HomeVisitAddressSchema,
        allow_none=True,
        metadata=doc(
            "The patient's address, only when the caller may see it now: the site's staff, "
            "and the assigned nurse from the day before the visit until it ends; else null"
        ),
    )


class PlanRunDaySchema(Schema):
    day = fields.Date(metadata=doc("The day planned"))
    assigned = fields.Integer(metadata=doc("Visits given to a nurse for the first time"))
    moved = fields.Integer(metadata=doc("Visits moved to another nurse or time"))
    kept = fields.Integer(metadata=doc("Visits kept as they were"))
    unassigned = fields.Integer(metadata=doc("Visits left open, each with its reason"))
    stale = fields.Integer(metadata=doc("Visits changed while planning; the next run has them"))
    travel_minutes = fields.Integer(metadata=doc("Travel of all routes that day"))


class PlanRunSummarySchema(Schema):
    days = fields.List(fields.Nested(PlanRunDaySchema), metadata=doc("Each day planned so far"))


class PlanRunSchema(Schema):
    id = fields.Integer()
    status = fields.Enum(PlanRunStatus, by_value=True)
    provider_id = fields.Integer(
        allow_none=True, metadata=doc("The provider whose nurses it plans; null: every one")
    )
    first_day = fields.Date()
    days = fields.Integer(metadata=doc("How many days from the first", 1))
    requested_by_id = fields.Integer(allow_none=True, metadata=doc("null: the scheduler"))
    requested_at = UtcDateTime()
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)
    progress = fields.String(allow_none=True, metadata=doc("Where it is", "day 2 of 3"))
    summary = fields.Nested(PlanRunSummarySchema)
    error = fields.String(allow_none=True, metadata=doc("Why it failed"))


class DispatchNurseSchema(Schema):
    id = fields.Integer(metadata=doc("The nurse's user id: `nurse_id` of a pin"))
    name = fields.String(metadata=doc("Her name", "Ada Lovelace"))
    provider_id = fields.Integer()
    provider_name = fields.String(metadata=doc("Her agency", "Spree Home Care"))
    skills = fields.List(fields.String(), metadata=doc("Her skills", ["phlebotomy"]))
    languages = fields.List(fields.String(), metadata=doc("Languages she speaks", ["de", "en"]))


# --- inputs --------------------------------------------------------------------------------


class HomeVisitDeclineSchema(Schema):
    reason = fields.String(
        required=True,
        validate=REASON,
        metadata=doc("Why, for the dispatcher and the audit trail", "My car broke down"),
    )


class HomeVisitCancelSchema(Schema):
    reason = fields.String(
        required=True, validate=REASON, metadata=doc(REASON_DOC, "The patient is in hospital")
    )


class HomeVisitLocationSchema(Schema):
    latitude = fields.Float(
        load_default=None,
        allow_none=True,
        validate=LATITUDE,
        metadata=doc("Where the nurse is (with longitude), or neither", 52.52),
    )
    longitude = fields.Float(
        load_default=None,
        allow_none=True,
        validate=LONGITUDE,
        metadata=doc("Where the nurse is (with latitude), or neither", 13.405),
    )


class ProcedureTickSchema(Schema):
    code = fields.String(
        required=True,
        validate=validate.Length(min=1, max=40),
        metadata=doc("A procedure of the visit's checklist", "blood_draw"),
    )
    note = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=nurse_work.MAX_TEXT),
        metadata=doc("A note on it", "Left arm, second attempt"),
    )


class HomeVisitFindingsSchema(Schema):
    vitals = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=40)),
        values=fields.Float(allow_none=True),
        load_default=dict,
        metadata=doc(
            "Vital signs by name: " + VITAL_SIGNS + ". A value outside the plausible range "
            "is refused; one outside the normal range flags the findings abnormal; null "
            "removes a value",
            {"heart_rate": 72, "systolic_bp": 128},
        ),
    )
    notes = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=nurse_work.MAX_NOTES),
        metadata=doc("The nurse's notes (replace earlier ones)", "Patient well, no complaints."),
    )
    abnormal = fields.Boolean(
        load_default=None,
        allow_none=True,
        metadata=doc("The nurse flags the findings abnormal for the site", False),
    )


class SampleCollectSchema(Schema):
    barcode = fields.String(
        required=True,
        validate=validate.Length(min=1, max=60),
        metadata=doc("The tube's own label, scanned", "TUBE-0001"),
    )
    kind = fields.String(
        required=True, validate=validate.Length(min=1, max=60), metadata=doc("What", "serum")
    )


class SampleHandOverSchema(Schema):
    courier = fields.String(
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata=doc("Who takes the samples", "MedCourier"),
    )
    reference = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=100),
        metadata=doc("The courier's reference", "MC-77"),
    )


class HomeVisitPinSchema(Schema):
    nurse_id = Id(
        required=True,
        allow_none=True,
        metadata=doc("A nurse from GET /nurses; null unpins the visit", 7),
    )


class PlanRunCreateSchema(Schema):
    first_day = fields.Date(
        required=True, metadata=doc("The first day to plan (local dates)", "2026-03-10")
    )
    days = fields.Integer(
        load_default=1,
        strict=True,
        validate=validate.Range(
            1, runs.MAX_DAYS, error=f"Plan 1 to {runs.MAX_DAYS} days at a time."
        ),
        metadata=doc("How many days from the first", 2),
    )
